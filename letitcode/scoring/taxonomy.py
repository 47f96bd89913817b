"""Error taxonomy: one category per failed sample, counted overall and by difficulty, with an example each.

Categories are the sandbox statuses, with `runtime_error` split by exception type:
`syntax_error`, `runtime_error:TypeError`, `runtime_error:IndexError`, ..., `wrong_answer`, `timeout`,
`memory_limit`, `no_code`, `killed`. A passed sample has no category (None).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from letitcode.data.problem import DIFFICULTIES, Problem

FAILURE_STATUSES = (
    "syntax_error",
    "runtime_error",
    "wrong_answer",
    "timeout",
    "memory_limit",
    "no_code",
    "killed",
)
# The last "SomethingError: message" line of a traceback names the exception when the record lacks it.
_EXC_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Iteration))\b", re.M)
_EXAMPLE_CHARS = 1500  # qualitative examples are for reading; cap what goes into results.json


def exception_name(record: Mapping[str, Any]) -> str:
    """The exception type of a runtime error: the record's `exception_type`, else parsed from `error`."""
    exc = record.get("exception_type")
    if exc:
        return str(exc).rsplit(".", 1)[-1]
    found = _EXC_LINE.findall(str(record.get("error") or ""))
    return found[-1].rsplit(".", 1)[-1] if found else "UnknownError"


def categorize(record: Mapping[str, Any]) -> str | None:
    """The error category of one record; None for a passed sample."""
    status = record.get("status")
    if record.get("passed") or status == "passed":
        return None
    if status == "runtime_error":
        return f"runtime_error:{exception_name(record)}"
    if status in FAILURE_STATUSES:
        return str(status)
    raise ValueError(f"record {record.get('task_id')!r}: unknown status {status!r}")


def category_family(category: str) -> str:
    """`runtime_error:TypeError` -> `runtime_error`; other categories are their own family."""
    return category.split(":", 1)[0]


def _sorted_counts(counter: Counter) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def counts(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Category -> number of samples, most frequent first (passed samples are not counted)."""
    return _sorted_counts(Counter(c for r in records if (c := r.get("error_category", categorize(r)))))


def _clip(text: Any, limit: int = _EXAMPLE_CHARS) -> Any:
    if isinstance(text, str) and len(text) > limit:
        return text[:limit] + f"\n... [{len(text) - limit} more characters]"
    return text


def example(record: Mapping[str, Any], problem: Problem | None = None) -> dict[str, Any]:
    """A qualitative example: the problem, the extracted code, the first failing test and the error."""
    out: dict[str, Any] = {
        "task_id": record.get("task_id"),
        "sample_index": record.get("sample_index"),
        "difficulty": record.get("difficulty"),
        "title": problem.title if problem else None,
        "problem": _clip(problem.description, 600) if problem else None,
        "code": _clip(record.get("code")),
        "first_failure": _clip(record.get("first_failure"), 600),
        "error": _clip(record.get("error"), 600),
    }
    if record.get("code") is None:
        out["completion"] = _clip(record.get("completion"), 600)  # what the model wrote instead of code
    return out


def examples(
    records: Sequence[Mapping[str, Any]], problems: Mapping[str, Problem] | None = None
) -> dict[str, dict[str, Any]]:
    """One example per category: the one with the shortest code (easiest to read), ties by record order."""
    best: dict[str, tuple[int, int, Mapping[str, Any]]] = {}
    for i, r in enumerate(records):
        cat = r.get("error_category", categorize(r))
        if not cat:
            continue
        size = len(r.get("code") or r.get("completion") or "")
        if cat not in best or (size, i) < best[cat][:2]:
            best[cat] = (size, i, r)
    order = counts(records)
    return {
        cat: example(best[cat][2], (problems or {}).get(str(best[cat][2].get("task_id")))) for cat in order
    }


def taxonomy(
    records: Sequence[Mapping[str, Any]], problems: Mapping[str, Problem] | None = None
) -> dict[str, Any]:
    """results.json's `error_taxonomy`: counts overall, by family and by difficulty, and one example each."""
    by_difficulty = {}
    for level in DIFFICULTIES:
        sub = [r for r in records if r.get("difficulty") == level]
        if sub:
            by_difficulty[level] = counts(sub)
    cats = counts(records)
    families: Counter = Counter()
    for cat, n in cats.items():
        families[category_family(cat)] += n
    return {
        "n_samples": len(records),
        "n_failed": sum(cats.values()),
        "counts": cats,
        "families": _sorted_counts(families),
        "by_difficulty": by_difficulty,
        "examples": examples(records, problems),
    }
