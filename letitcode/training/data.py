"""SFT data: load rows, map their columns to problems, format prompt/completion pairs, split, decontaminate.

The prompt of every example is the evaluator's own zero-shot prompt (`letitcode.prompts.sft_example`), so a
fine-tuned model is scored on exactly the format it was trained on. Only the completion is trained on
(TRL's prompt/completion format gives completion-only loss).

Column layouts are detected from the columns present (`PRESETS`, tried in order); a `column_map`
(``description=query,target=response`` or a dict) overrides single fields. When neither finds the
description and target columns, loading fails and lists the columns that were found.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from letitcode.data.benchmarks import _io
from letitcode.data.benchmarks._io import Rows
from letitcode.data.benchmarks.leetcodedataset import problem_from_row
from letitcode.data.benchmarks.raybernard import parse_instruction
from letitcode.data.overlap import Decontaminator
from letitcode.data.problem import Problem, description_hash, normalize_difficulty, slugify
from letitcode.errors import DataError, UserError
from letitcode.extract import extract_code
from letitcode.prompts import sft_example

CompletionFormat = Literal["code", "code+explanation"]
Style = Literal["chat", "completion"]

DEFAULT_DATASET = "RayBernard/leetcode"
FIELDS = ("description", "target", "input", "title", "slug", "difficulty", "starter_code", "task_id")
REQUIRED = ("description", "target")

# Known layouts, tried in this order; dotted paths reach into nested columns (`meta.difficulty`), and `a|b`
# takes the first alternative present.
# Only `description` and `target` must be present for a layout to match; the other fields are used when there.
PRESETS: dict[str, dict[str, str]] = {
    # newfacade/LeetCodeDataset: query = description + starter code, response = explanation + fenced code.
    "leetcodedataset": {
        "description": "query",
        "target": "response",
        "task_id": "task_id",
        "slug": "task_id",
        "difficulty": "meta.difficulty|difficulty",  # v0.2.0 | v0.3.1
        "starter_code": "meta.lang_code|starter_code",
    },
    # greengerong/leetcode (what RayBernard/leetcode is derived from): python = fenced solution + explanation.
    "greengerong": {
        "description": "content",
        "target": "python",
        "title": "title",
        "slug": "slug",
        "difficulty": "difficulty",
        "task_id": "id",
    },
    # Alpaca (RayBernard/leetcode): instruction (+ input) -> output.
    "alpaca": {"description": "instruction", "input": "input", "target": "output"},
    "problem_solution": {
        "description": "problem",
        "target": "solution",
        "title": "title",
        "slug": "slug",
        "difficulty": "difficulty",
        "starter_code": "starter_code",
    },
    "description_solution": {
        "description": "description",
        "target": "solution",
        "title": "title",
        "slug": "slug",
        "difficulty": "difficulty",
        "starter_code": "starter_code",
    },
}

# LeetCodeDataset ends each query with the starter code; the zero-shot template shows the starter code itself.
_LCD_TAIL = re.compile(
    r"\s*Please complete the following python code precisely:\s*```python\n(.*?)```\s*$", re.S
)
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.S | re.I)


# ---------------------------------------------------------------------------------------------- loading


@dataclass
class RawData:
    rows: list[dict[str, Any]]
    columns: list[str]
    source: str  # as given, without @revision
    revision: str | None
    version: str  # sha256[:16] of a local file, or the datasets fingerprint of a Hub split
    split: str
    from_hub: bool

    def manifest(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "revision": self.revision,
            "version": self.version,
            "split": self.split,
            "from_hub": self.from_hub,
            "rows": len(self.rows),
        }


_SPLITS = ("train", "validation", "test")
_INSTEAD = "--dataset PATH (a local .jsonl/.jsonl.gz/.json/.parquet file or folder)"


def load_rows(spec: str, *, split: str = "train", revision: str | None = None) -> RawData:
    """Rows of a local JSONL/JSON/Parquet file (or folder of them), or of a Hub dataset `ORG/NAME[@REV]`.

    Uses the evaluator's own loader (`letitcode.data.benchmarks._io`): Hub ids are snapshot-downloaded (data files
    only) and read like a local folder; in a folder the files named for `split` are taken, the newest
    version (`v0.3.1` over `v0.2.0`) where a repo holds several. Offline, a Hub id fails with
    `HubUnavailable` saying to pass --dataset PATH.
    """

    root, source, rev, from_hub = _io.locate("--dataset", spec, revision=revision, instead=_INSTEAD)
    files, got_split = _io.pick_files("--dataset", root, split, splits=_SPLITS, default=split)
    rows: list[dict[str, Any]] = []
    for f in files:
        rows += _io.read_rows(f, source if f == root else f"{source}:{f.relative_to(root)}")
    columns: dict[str, None] = {}
    for r in rows[:200]:
        columns.update(dict.fromkeys(r))
    return RawData(rows, list(columns), source, rev, _io.file_version(files), got_split, from_hub)


# ------------------------------------------------------------------------------------------- columns


def parse_column_map(value: str | Mapping[str, str] | None) -> dict[str, str]:
    """`description=query,target=response`, a JSON object, or a dict (YAML) -> {field: column}."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as e:
                raise UserError(f"--column_map is not valid JSON: {e}") from e
        else:
            pairs = [p for p in re.split(r"[,\s]+", text) if p]
            bad = [p for p in pairs if p.count("=") != 1]
            if bad:
                raise UserError(
                    f"--column_map: {bad[0]!r} is not FIELD=COLUMN (e.g. description=query,target=response)"
                )
            value = dict(p.split("=") for p in pairs)
    if not isinstance(value, Mapping):
        raise UserError(f"--column_map must map fields to columns, got {type(value).__name__}")
    unknown = sorted(set(value) - set(FIELDS))
    if unknown:
        raise UserError(f"--column_map: unknown field(s) {unknown}; fields are {', '.join(FIELDS)}")
    return {str(k): str(v) for k, v in value.items() if v}


def _has(columns: Sequence[str], path: str) -> bool:
    return any(p.split(".", 1)[0] in columns for p in path.split("|"))


def _pick(columns: Sequence[str], path: str) -> str:
    """The first alternative of `a|b` whose top-level column is present."""
    return next((p for p in path.split("|") if p.split(".", 1)[0] in columns), path)


def detect_columns(
    columns: Sequence[str], column_map: Mapping[str, str] | None = None, *, source: str = "dataset"
) -> tuple[str | None, dict[str, str]]:
    """(preset name or None, {field: column path}) for these columns. Fails listing the columns found."""
    overrides = dict(column_map or {})
    missing = [f"{f}={c}" for f, c in overrides.items() if not _has(columns, c)]
    if missing:
        raise UserError(
            f"{source}: --column_map names column(s) that are not there ({', '.join(missing)}); "
            f"columns found: {', '.join(columns)}"
        )
    for name, preset in PRESETS.items():
        if not all(_has(columns, preset[f]) for f in REQUIRED):  # a layout is recognised by its own columns
            continue
        merged = {**preset, **overrides}
        if all(_has(columns, merged[f]) for f in REQUIRED):
            used = {f: _pick(columns, c) for f, c in merged.items() if f in overrides or _has(columns, c)}
            return name, used
    if all(f in overrides for f in REQUIRED):
        return None, overrides
    known = ", ".join(f"{n} ({p['description']}/{p['target']})" for n, p in PRESETS.items())
    raise UserError(
        f"{source}: cannot tell which columns hold the problem and the solution; columns found: "
        f"{', '.join(columns)}. Pass --column_map description=COLUMN,target=COLUMN "
        f"(known layouts: {known})"
    )


def _get(row: Mapping[str, Any], path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


# ------------------------------------------------------------------------------------------ formatting


def split_solution(text: str) -> tuple[str | None, str]:
    """(code, explanation): the solution code (via `letitcode.extract`, the evaluator's own extractor) and the
    prose around its fenced block."""
    got = extract_code(text)
    if got.code is None:
        return None, text.strip()
    explanation = text
    m = next((m for m in _FENCE.finditer(text) if m.group(1).strip() == got.code.strip()), None) or next(
        iter(_FENCE.finditer(text)), None
    )
    if m is not None:
        explanation = (text[: m.start()] + "\n\n" + text[m.end() :]).strip()
    elif got.method == "unfenced":
        explanation = (
            text[: text.find(got.code.strip()[:40])].strip() if got.code.strip()[:40] in text else ""
        )
    return got.code.strip("\n"), re.sub(r"\n{3,}", "\n\n", explanation)


def format_completion(
    target: str, fmt: CompletionFormat, style: Style, *, source: str, row: int, column: str
) -> str:
    """The completion text for one row, in the shape the evaluator's prompt asks for.

    chat: a ```python block (plus the original explanation with `code+explanation`).
    completion: the prompt already opened a ```python block, so the completion is the code, a closing fence,
    then the explanation (if kept).
    """
    if fmt not in ("code", "code+explanation"):
        raise UserError(f"--completion_format must be 'code' or 'code+explanation', not {fmt!r}")
    if style == "chat" and fmt == "code+explanation":
        return target.strip()
    code, explanation = split_solution(target)
    if code is None or not code.strip():
        raise DataError(
            source,
            row,
            column,
            "no Python code found (no ```python block and the text is not code); "
            "use --completion_format code+explanation to train on it as is",
        )
    if style == "chat":
        return f"```python\n{code}\n```"
    text = f"{code}\n```"
    if fmt == "code+explanation" and explanation:
        text += f"\n\n{explanation}"
    return text


def starter_from_code(code: str) -> tuple[str, str]:
    """(starter code, function name) derived from a solution: its class and method headers, or a function's
    header. Used where a row has no starter code, so the prompt has the same shape as the evaluator's."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return "", ""
    lines = code.splitlines()

    def header(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> str:
        end = node.body[0].lineno - 1 if node.body else node.lineno
        start = node.lineno - 1 - len(node.decorator_list)
        return "\n".join(lines[start:end]).rstrip()

    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            methods = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
            public = [m for m in methods if not m.name.startswith("_")] or methods
            if public:
                return f"{header(node)}\n{header(public[0])}", public[0].name
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return header(node), node.name
    return "", ""


class OtherLanguage(Exception):
    """A row whose instruction asks for code in another language than Python (it is skipped, and counted)."""

    def __init__(self, language: str):
        super().__init__(language)
        self.language = language


@dataclass
class SFTRow:
    index: int  # row index in the source
    problem: Problem
    completion: str
    group: str  # problem key: rows of one problem stay on one side of the split
    style: Style  # the completion was formatted for this prompt style
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    def example(self) -> dict[str, Any]:
        """The TRL prompt/completion example: the evaluator's zero-shot prompt and this row's completion."""

        return sft_example(self.problem, self.completion, self.style)


def row_to_sft(
    row: Mapping[str, Any],
    index: int,
    columns: Mapping[str, str],
    *,
    source: str,
    preset: str | None,
    completion_format: CompletionFormat,
    style: Style,
) -> SFTRow:
    def text(name: str, required: bool = False) -> str | None:
        col = columns.get(name)
        value = _get(row, col) if col else None
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise DataError(source, index, col or name, "missing or empty")
            return None
        if not isinstance(value, str):
            if name in ("task_id", "difficulty") and isinstance(value, int):
                return str(value)
            raise DataError(source, index, col or name, f"expected text, got {type(value).__name__}")
        return value

    description = text("description", True)
    target = text("target", True)
    assert description is not None and target is not None
    parsed_title = ""
    if preset == "alpaca":
        # RayBernard/leetcode: drop the request line, take the title (and so the slug) from the next one

        parsed_title, statement, language = parse_instruction(description)
        if language and language not in ("python", "python3"):
            raise OtherLanguage(language)
        description = statement or description
    extra_input = text("input")
    if extra_input:
        description = f"{description.rstrip()}\n\n{extra_input.strip()}"
    starter = text("starter_code") or ""
    tail = _LCD_TAIL.search(description)
    if tail:  # the template shows the starter code itself
        description = description[: tail.start()].rstrip()
        starter = starter or tail.group(1).rstrip()
    code, _ = split_solution(target)
    derived_starter, fn = starter_from_code(code or "")
    starter = starter or derived_starter
    title = text("title") or parsed_title
    slug = text("slug")
    slug = slugify(slug) if slug else (slugify(title) if title else None)
    difficulty_raw = _get(row, columns["difficulty"]) if "difficulty" in columns else None
    difficulty = normalize_difficulty(difficulty_raw, source=source, row=index, required=False)
    task_id = text("task_id") or slug or f"row-{index}"
    completion = format_completion(
        target, completion_format, style, source=source, row=index, column=columns["target"]
    )
    problem = Problem(
        task_id=task_id,
        source=source,
        title=title,
        description=description.strip(),
        entry_point=f"Solution().{fn}" if "class Solution" in starter and fn else (fn or "solution"),
        difficulty=difficulty,
        starter_code=starter,
        slug=slug,
        reference=code,
    )
    group = slug or (slugify(title) if title else description_hash(description))
    return SFTRow(index, problem, completion, group, style, dict(row))


# ------------------------------------------------------------------------------------------ decontamination


# ------------------------------------------------------------------------------------------------ split


def _bucket(key: str, seed: int) -> float:
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:12], 16) / 16**12


def split_by_problem(
    rows: Sequence[SFTRow], val_fraction: float, seed: int = 0
) -> tuple[list[SFTRow], list[SFTRow]]:
    """Deterministic train/validation split by problem (hash of the problem key), independent of row order.

    With a non-zero fraction and at least two problems, validation gets at least one problem and train keeps
    at least one, so tiny datasets still produce an eval loss.
    """
    if not 0 <= val_fraction < 1:
        raise UserError(f"--val_fraction must be in [0, 1), got {val_fraction}")
    groups = sorted({r.group for r in rows}, key=lambda g: _bucket(g, seed))
    val_groups = {g for g in groups if _bucket(g, seed) < val_fraction}
    if val_fraction > 0 and len(groups) >= 2:
        if not val_groups:
            val_groups = {groups[0]}
        if len(val_groups) == len(groups):
            val_groups.discard(groups[-1])
    train = [r for r in rows if r.group not in val_groups]
    val = [r for r in rows if r.group in val_groups]
    return train, val


# ------------------------------------------------------------------------------------------------ all of it


@dataclass
class SFTData:
    train: list[SFTRow]
    validation: list[SFTRow]
    raw: RawData
    preset: str | None
    columns: dict[str, str]
    style: Style
    completion_format: CompletionFormat
    stats: dict[str, Any]
    decontamination: dict[str, Any]

    @property
    def has_tests(self) -> bool:
        """Rows carry executable tests (LeetCodeDataset layout), so the evaluator can score them."""
        return self.preset == "leetcodedataset" and all(
            "test" in r.raw and "entry_point" in r.raw for r in self.train[:5] + self.validation[:5]
        )

    def datasets(self) -> tuple[Any, Any]:
        """(train, validation) as `datasets.Dataset`s of TRL prompt/completion examples."""
        from datasets import Dataset

        def build(rows: list[SFTRow]) -> Any:
            return Dataset.from_list([r.example() for r in rows]) if rows else None

        return build(self.train), build(self.validation)

    def manifest(self) -> dict[str, Any]:
        return {
            **self.raw.manifest(),
            "layout": self.preset,
            "columns": self.columns,
            "prompt_style": self.style,
            "completion_format": self.completion_format,
            "counts": self.stats,
            "decontamination": self.decontamination,
        }


def build_sft_data(
    dataset: str,
    *,
    revision: str | None = None,
    split: str = "train",
    column_map: str | Mapping[str, str] | None = None,
    completion_format: CompletionFormat = "code+explanation",
    style: Style = "chat",
    val_fraction: float = 0.1,
    split_seed: int = 0,
    decontaminate_against: Sequence[Problem] | None = None,
    decontamination_info: Mapping[str, Any] | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    raw: RawData | None = None,
) -> SFTData:
    """Load, map, format, decontaminate and split. `decontaminate_against=None` skips decontamination (the
    manifest says so)."""
    raw = raw or load_rows(dataset, split=split, revision=revision)
    if not raw.rows:
        raise UserError(f"--dataset {dataset}: no rows")
    label = raw.source
    preset, columns = detect_columns(raw.columns, parse_column_map(column_map), source=label)
    rows = []
    other_language: Counter[str] = Counter()
    titled = 0
    for i, r in enumerate(raw.rows):
        try:
            row = row_to_sft(
                r, i, columns, source=label, preset=preset, completion_format=completion_format, style=style
            )
        except OtherLanguage as e:
            other_language[e.language] += 1
            continue
        titled += bool(row.problem.title)
        rows.append(row)
    if not rows:
        raise UserError(f"--dataset {dataset}: no Python rows (other languages: {dict(other_language)})")
    overridden = set(parse_column_map(column_map))
    if preset == "leetcodedataset" and not overridden & {"description", "starter_code", "title"}:
        rows = _with_source_problems(rows, raw, label)
    removed: Counter[str] = Counter()
    removed_ids: list[str] = []
    if decontaminate_against is not None:
        deco = Decontaminator(decontaminate_against)
        kept = []
        for r in rows:
            why = deco.reason(r.problem)
            if why is None:
                kept.append(r)
            else:
                removed[why] += 1
                removed_ids.append(r.problem.task_id)
        rows = kept
        deco_info: dict[str, Any] = {
            **(decontamination_info or {}),
            "enabled": True,
            "benchmark_problems": deco.n,
            "removed": sum(removed.values()),
            "removed_by": dict(removed),
            "removed_task_ids": removed_ids[:200],
        }
    else:
        deco_info = {**(decontamination_info or {}), "enabled": False, "removed": 0}
    if not rows:
        raise UserError(
            f"--dataset {dataset}: every row was removed by decontamination against the eval benchmark"
        )
    train, val = split_by_problem(rows, val_fraction, split_seed)
    if max_train_samples is not None:
        train = train[:max_train_samples]
    if max_eval_samples is not None:
        val = val[:max_eval_samples]
    stats = {
        "rows": len(raw.rows),
        "skipped_other_language": sum(other_language.values()),
        "titled": titled,
        "removed_by_decontamination": deco_info["removed"],
        "after_decontamination": len(rows),
        "problems": len({r.group for r in rows}),
        "train": len(train),
        "validation": len(val),
        "val_fraction": val_fraction,
        "split_seed": split_seed,
    }
    return SFTData(train, val, raw, preset, columns, style, completion_format, stats, deco_info)


def _with_source_problems(rows: list[SFTRow], raw: RawData, label: str) -> list[SFTRow]:
    """LeetCodeDataset rows get their Problem from the evaluator's own source adapter, so the SFT prompt is
    the one `evaluate/run.py --benchmark leetcodedataset` renders for the same problem."""
    from dataclasses import replace

    if not all(k in raw.columns for k in ("task_id", "prompt", "completion", "entry_point", "test")):
        return rows
    helper = Rows(raw.rows, label)
    out = []
    for r in rows:
        p = problem_from_row(raw.rows[r.index], r.index, helper)
        out.append(replace(r, problem=replace(p, source=label, reference=r.problem.reference)))
    return out


def write_rows(rows: Sequence[SFTRow], path: str | Path) -> Path:
    """The source rows of `rows`, as JSONL (what the evaluator reads for --eval-after)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r.raw, ensure_ascii=False, default=str) + "\n")
    return path
