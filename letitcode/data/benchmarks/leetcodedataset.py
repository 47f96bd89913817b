"""newfacade/LeetCodeDataset (MIT): LeetCode problems with reference solutions and tests, two layouts.

- v0.2.0 (train 1,890 / test 200): `meta.difficulty`, `meta.question_id`, `meta.question_title` (which holds
  the full statement), `query`/`response` for SFT. Its test split has "Meidum" in 21 rows.
- v0.3.1 (test 228): top-level `difficulty`, `tags`, `estimated_date`, `problem_description`,
  `starter_code`; dated after the train split, so it is a contamination-resistant test set.

Both have `prompt` (the imports and ListNode/TreeNode helpers every solution runs after), `completion` (the
reference), `entry_point` ("Solution().twoSum") and `test` (`def check(candidate): assert ...`). Files are
already split; the split is read from the file name.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from letitcode.data.benchmarks._io import (
    Benchmark,
    Rows,
    compile_check,
    file_version,
    labelled_rows,
    locate,
    pick_files,
)
from letitcode.data.benchmarks.registry import HUB_DEFAULTS
from letitcode.data.problem import Problem, normalize_difficulty
from letitcode.errors import DataError

NAME = "leetcodedataset"
SPLITS = ("train", "test")
INSTEAD = (
    "a local file, e.g. --dataset ../shared/data/leetcodedataset/LeetCodeDataset-v0.3.1-test.jsonl.gz "
    "(a .jsonl/.jsonl.gz/.parquet file or folder of newfacade/LeetCodeDataset)"
)
# The sandbox's timeout covers a job's whole test list, and v0.3.1 problems carry about 100 asserts each:
# its slowest reference (find-the-number-of-subsequences-with-equal-gcd, 106 asserts) needs about 28 s of
# CPU here. So the budget grows with the number of asserts, and stays at the usual 10 s for short lists.
MIN_TIMEOUT_S = 10.0
TIMEOUT_PER_TEST_S = 0.5
_FENCE = re.compile(r"```(?:python3?|py)?[ \t]*\n(.*?)```", re.S)


def split_tests(test: str, source: str, row: int | str) -> tuple[tuple[str, ...], str]:
    """(test_list, check_code): the one-line asserts of `check(candidate)` as separate statements, so that
    passes can be counted; the whole `test` as check_code where it has anything else (multi-line asserts,
    helpers, a differently named parameter)."""
    try:
        tree = ast.parse(test)
    except SyntaxError as e:
        raise DataError(source, row, "test", f"does not parse: {e.msg} (line {e.lineno})") from e
    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if not checks:
        raise DataError(source, row, "test", "defines no check(candidate) function")
    check = checks[0]
    simple = (
        len(tree.body) == 1
        and [a.arg for a in check.args.args] == ["candidate"]
        and bool(check.body)
        and all(isinstance(s, ast.Assert) and s.lineno == s.end_lineno for s in check.body)
    )
    if not simple:
        return (), test
    lines = re.split(r"\r\n|\r|\n", test)  # the line breaks ast counts (str.splitlines knows more)
    # One line each: the statement is the line's text from the assert on (ast offsets are UTF-8 bytes).
    return tuple(
        lines[s.lineno - 1].encode()[s.col_offset : s.end_col_offset].decode() for s in check.body
    ), ""


def _starter_from_query(query: str) -> str:
    blocks = _FENCE.findall(query or "")
    return blocks[-1].rstrip() + "\n" if blocks else ""


def _title(slug: str) -> str:
    # Neither layout has the title; the slug is the title, hyphenated and lower-cased.
    return " ".join(w.capitalize() for w in slug.split("-"))


def problem_from_row(row: dict[str, Any], index: int, rows: Rows) -> Problem:
    src = rows.source
    task_id = rows.get(row, index, "task_id")
    where: int | str = task_id
    for key in ("prompt", "completion", "entry_point", "test"):
        rows.get(row, where, key)
    if "meta" in row:  # v0.2.0
        meta = rows.get(row, where, "meta", kind=dict)
        difficulty = meta.get("difficulty")
        description = meta.get("question_title") or rows.get(row, where, "query")
        starter = _starter_from_query(row.get("query", ""))
        tags: tuple[str, ...] = ()
        release_date = None
        question_id = meta.get("question_id")
    else:  # v0.3.1
        if "difficulty" not in row:
            raise DataError(
                src, index, "difficulty", f"missing column (nor `meta`); columns found: {', '.join(row)}"
            )
        difficulty = row["difficulty"]
        description = rows.get(row, where, "problem_description")
        starter = row.get("starter_code") or _starter_from_query(row.get("query", ""))
        tags = tuple(rows.get(row, where, "tags", kind=list))
        release_date = row.get("estimated_date") or None
        question_id = row.get("question_id")
    test_list, check_code = split_tests(row["test"], src, where)
    compile_check(src, where, "completion", row["completion"])
    preamble = row["prompt"] if row["prompt"].endswith("\n") else row["prompt"] + "\n"
    return Problem(
        task_id=task_id,
        source=NAME,
        title=_title(task_id),
        description=description,
        entry_point=row["entry_point"],
        difficulty=normalize_difficulty(difficulty, source=src, row=where),
        tags=tags,
        starter_code=starter,
        preamble=preamble,
        reference=row["completion"],
        test_list=test_list,
        check_code=check_code,
        release_date=str(release_date) if release_date else None,
        slug=task_id,
        timeout_s=max(MIN_TIMEOUT_S, TIMEOUT_PER_TEST_S * max(len(test_list), row["test"].count("assert"))),
        extra={"question_id": question_id, "input_output": row.get("input_output")},
    )


def problems_from_rows(raw: list[dict[str, Any]], source: str) -> list[Problem]:
    rows = Rows(raw, source)
    rows.require_columns(("task_id",), ("completion",), ("entry_point",), ("test",), ("prompt",))
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(raw):
        p = problem_from_row(row, i, rows)
        if p.task_id in seen:
            raise DataError(source, i, "task_id", f"duplicate of row {seen[p.task_id] + 1} ({p.task_id!r})")
        seen[p.task_id] = i
        problems.append(p)
    return problems


def load(dataset: str | None = None, split: str | None = None, revision: str | None = None) -> Benchmark:
    spec = dataset or HUB_DEFAULTS[NAME]
    root, source, rev, from_hub = locate(NAME, spec, revision=revision, instead=INSTEAD)
    files, split = pick_files(NAME, root, split, splits=SPLITS, default="test")
    problems = []
    for rows, label in labelled_rows(files, root, spec):
        problems += problems_from_rows(rows, f"{NAME} {label}")
    return Benchmark(
        name=NAME,
        problems=problems,
        source=source,
        revision=rev,
        version=file_version(files),
        split=split,
    )
