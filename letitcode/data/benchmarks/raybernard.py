"""RayBernard/leetcode: 2,359 Alpaca-style rows (`instruction`, `input`, `output`, `text`) for SFT.

It is derived from greengerong/leetcode: the instruction asks for an explanation and code and names the
problem on its second line ("Please explain ... in python:\\nTwo Sum\\n\\n<statement>"); the output is a
fenced solution followed by the explanation. There are no tests, so these problems serve fine-tuning and
exemplars, not scoring: `test_list` is empty and `check_code` is "". Only a `train` split exists.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from letitcode.data.benchmarks._io import (
    Benchmark,
    Rows,
    file_version,
    labelled_rows,
    locate,
    pick_files,
)
from letitcode.data.benchmarks.registry import HUB_DEFAULTS
from letitcode.data.problem import Problem, normalize_difficulty, slugify
from letitcode.errors import UserError

NAME = "raybernard"
INSTEAD = "a local .jsonl/.json/.parquet export of RayBernard/leetcode (instruction/input/output columns) via --dataset"
_FENCE = re.compile(r"```[ \t]*([\w+#-]*)[ \t]*\n(.*?)```", re.S)


# The first line of every instruction is a request, not the problem: "Please explain the following problem in
# detail and provide code in python:", "Please write the following solution using python:", ...
_REQUEST = re.compile(r"^\s*please\b.*:\s*$", re.I)
_LANGUAGE = re.compile(r"\b(?:in|using)\s+(python3?|java|c\+\+|javascript|typescript|c#|go|rust|kotlin|swift|"
                       r"scala|ruby|php|c|dart|erlang|elixir|lisp|haskell|perl|r|lua|julia|mojo|"
                       r"f#|clojure|scheme|objective-c|fortran|groovy|pascal|smalltalk|vb\.net|visual basic \.net|"
                       r"ansi c|object pascal|cobol)\s*:\s*$", re.I)  # fmt: skip


def parse_instruction(instruction: str) -> tuple[str, str, str | None]:
    """(title, description, language) of a RayBernard/greengerong instruction.

    "Please explain ... in python:\nTwo Sum\n\n<statement>" -> ("Two Sum", "<statement>", "python"). The request
    line is dropped (it is the same boilerplate on every row and would teach nothing, and it hides the
    statement from decontamination by description); an instruction without one is returned whole, untitled.
    """
    lines = instruction.strip().splitlines()
    if not lines or not _REQUEST.match(lines[0]):
        return "", instruction.strip(), None
    lang_m = _LANGUAGE.search(lines[0])
    language = lang_m.group(1).lower() if lang_m else None
    rest = lines[1:]
    while rest and not rest[0].strip():
        rest.pop(0)
    title = ""
    if (
        len(rest) > 1
        and rest[0].strip()
        and len(rest[0].strip()) <= 100
        and not rest[0].rstrip().endswith(".")
    ):
        title = rest.pop(0).strip()
    return title, "\n".join(rest).strip(), language


def _title(instruction: str) -> str:
    title, _, _ = parse_instruction(instruction)
    if title:
        return title
    lines = [ln.strip() for ln in instruction.strip().splitlines()]
    return lines[0][:100] if lines else ""


def _code(output: str) -> str:
    """The first Python (or untagged) fenced block of the output, else the output itself."""
    for lang, body in _FENCE.findall(output):
        if lang.lower() in ("", "python", "python3", "py"):
            return body
    return output


def _entry_point(code: str) -> str:
    """`Solution().method` for a LeetCode class, else the first top-level function; "" when unknown."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return ""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Solution":
            methods = [
                n.name for n in node.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("__")
            ]
            if methods:
                return f"Solution().{methods[0]}"
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            return node.name
    return ""


def problems_from_rows(raw: list[dict[str, Any]], source: str) -> list[Problem]:
    rows = Rows(raw, source)
    rows.require_columns(("instruction",), ("output",))
    problems = []
    used: set[str] = set()
    for i, row in enumerate(raw):
        instruction = rows.get(row, i, "instruction")
        output = rows.get(row, i, "output")
        extra_input = row.get("input") or ""
        if not isinstance(extra_input, str):
            extra_input = str(extra_input)
        parsed_title, statement, _ = parse_instruction(instruction)
        title = str(row.get("title") or parsed_title or _title(instruction))
        slug = str(row.get("slug") or slugify(title) or f"row-{i}")
        task_id = str(row["id"]) if row.get("id") not in (None, "") else slug
        if task_id in used:
            task_id = f"{task_id}-{i}"
        used.add(task_id)
        description = (statement or instruction.strip()) + (
            f"\n\n{extra_input.strip()}" if extra_input.strip() else ""
        )
        problems.append(
            Problem(
                task_id=task_id,
                source=NAME,
                title=title,
                description=description,
                entry_point=_entry_point(_code(output)),
                difficulty=normalize_difficulty(row.get("difficulty"), source=source, row=i, required=False),
                tags=(),
                reference=output,
                test_list=(),
                check_code="",
                slug=slug,
                extra={"input": extra_input, **({"text": row["text"]} if row.get("text") else {})},
            )
        )
    return problems


def load(dataset: str | None = None, split: str | None = None, revision: str | None = None) -> Benchmark:
    if split not in (None, "train"):
        raise UserError(f"{NAME}: RayBernard/leetcode has only a 'train' split, not {split!r}")
    spec = dataset or HUB_DEFAULTS[NAME]
    root, source, rev, _ = locate(NAME, spec, revision=revision, instead=INSTEAD)
    files, _ = pick_files(NAME, root, "train", splits=("train", "test", "validation"), default="train")
    problems = []
    for rows, label in labelled_rows(files, root, spec):
        problems += problems_from_rows(rows, f"{NAME} {label}")
    return Benchmark(
        name=NAME, problems=problems, source=source, revision=rev, version=file_version(files), split="train"
    )
