"""Code-quality signals for extracted solutions: ruff violations by rule family, radon cyclomatic
complexity, and lines of code; aggregated for passing and for failing solutions.

ruff runs once over a temporary folder holding every solution (one process, not one per sample). A
solution is linted after its problem's preamble (the imports and helper classes the harness provides), so
names like `List` or `ListNode` are not reported as undefined; diagnostics on preamble lines are dropped.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from letitcode.scoring.refmetrics import unsafe_reason

log = logging.getLogger(__name__)

# A broad, fixed rule set (ruff's defaults only cover E4/E7/E9/F). Recorded in results for reproducibility.
RUFF_SELECT = ("E", "W", "F", "B", "C4", "SIM", "UP", "N", "PL", "RUF", "PERF")
# Ignored because the benchmark, not the model, decides them: LeetCode's camelCase signatures (N802/N803),
# `List[int]` in starter code (UP006/UP035), magic numbers natural in algorithms (PLR2004); E402/F811 and
# F403/F405 (names from the preamble's `from typing import *`) fire only because of the prepended preamble.
RUFF_IGNORE = ("N802", "N803", "UP006", "UP035", "PLR2004", "E402", "F811", "F403", "F405")
RUFF_LINE_LENGTH = 120
RUFF_TIMEOUT_S = 300.0  # one ruff call lints every solution of a run
QUALITY_KEYS = ("ruff_violations", "ruff_total", "cc_max", "cc_mean", "loc")
_FAMILY = re.compile(r"^([A-Z]+)")


def ruff_config() -> dict[str, Any]:
    return {"select": list(RUFF_SELECT), "ignore": list(RUFF_IGNORE), "line_length": RUFF_LINE_LENGTH}


def rule_family(code: str | None) -> str:
    """`F401` -> `F`, `PLR0912` -> `PLR`, `SIM108` -> `SIM`; ruff's `invalid-syntax` (or no code) -> `syntax`."""
    m = _FAMILY.match(code or "")
    return m.group(1) if m and code and code[len(m.group(1)) :].isdigit() else "syntax"


def _ruff_bin() -> str | None:
    try:
        from ruff.__main__ import find_ruff_bin

        return str(find_ruff_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("ruff")


def ruff_violations(
    codes: Sequence[str | None], preambles: Sequence[str] | None = None
) -> list[dict[str, int] | None]:
    """Violations per rule family for each code (None where the code is None), in one ruff call."""
    preambles = list(preambles) if preambles is not None else [""] * len(codes)
    out: list[dict[str, int] | None] = [None if c is None else {} for c in codes]
    if all(c is None for c in codes):
        return out
    exe = _ruff_bin()
    if exe is None:
        log.warning("ruff is not installed: code-quality lint counts are not recorded")
        return [None] * len(codes)
    offsets: dict[str, tuple[int, int]] = {}  # file name -> (sample index, preamble line count)
    with tempfile.TemporaryDirectory(prefix="letitcode-ruff-") as tmp:
        for i, (code, pre) in enumerate(zip(codes, preambles, strict=True)):
            if code is None:
                continue
            pre = pre if not pre or pre.endswith("\n") else pre + "\n"
            name = f"s{i}.py"
            # a lone surrogate cannot be written as UTF-8: lint the text with it replaced
            Path(tmp, name).write_bytes((pre + code).encode("utf-8", "replace"))
            offsets[name] = (i, pre.count("\n"))
        cmd = [exe, "check", "--isolated", "--no-cache", "--exit-zero", "--output-format", "json"]
        cmd += ["--select", ",".join(RUFF_SELECT), "--ignore", ",".join(RUFF_IGNORE)]
        cmd += ["--line-length", str(RUFF_LINE_LENGTH), "--target-version", "py310", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RUFF_TIMEOUT_S)
            if proc.returncode != 0:
                raise RuntimeError(f"exit status {proc.returncode}: {proc.stderr.strip()[:300]}")
            diagnostics = json.loads(proc.stdout or "[]")
        except (subprocess.TimeoutExpired, RuntimeError, ValueError) as e:
            # the lint is a side signal: a run never fails on it (the records say lint None)
            log.warning("ruff could not lint these solutions (%s): lint counts not recorded", e)
            return [None] * len(codes)
    for d in diagnostics:
        i, skip = offsets[Path(d["filename"]).name]
        if (d.get("location") or {}).get("row", skip + 1) <= skip:
            continue  # a violation inside the preamble is not the model's
        fam = rule_family(d.get("code"))
        counts = out[i]
        assert counts is not None
        counts[fam] = counts.get(fam, 0) + 1
    return [dict(sorted(c.items())) if c is not None else None for c in out]


def complexity(code: str) -> tuple[int, float] | None:
    """(max, mean) radon cyclomatic complexity over the functions and methods; the module's own
    complexity where there is no function. None when the code does not parse."""
    from radon.complexity import cc_visit
    from radon.visitors import ComplexityVisitor, Function

    if unsafe_reason(code):  # radon recurses over Python's ast: deep code raised RecursionError
        return None
    try:
        blocks = [b for b in cc_visit(code) if isinstance(b, Function)]
        if not blocks:
            cc = ComplexityVisitor.from_code(code).complexity
            return int(cc), float(cc)
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        return None
    values = [b.complexity for b in blocks]
    return int(max(values)), float(np.mean(values))


def lines_of_code(code: str) -> int:
    """Source lines (radon's sloc: no blank lines, comments or docstring lines); a plain count of
    non-blank, non-comment lines when the code does not parse."""
    import ast

    from radon.raw import analyze

    try:
        # radon re-tokenizes broken code again and again (minutes on 10,000 unclosed brackets): only code
        # that parses goes to it
        ast.parse(code)
        if unsafe_reason(code):
            raise ValueError
        return int(analyze(code).sloc)
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError, UnicodeError):
        return sum(1 for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def quality_signals(
    codes: Sequence[str | None], preambles: Sequence[str] | None = None
) -> list[dict[str, Any] | None]:
    """Per-solution signals (keys QUALITY_KEYS); None where there is no code."""
    lint = ruff_violations(codes, preambles)
    out: list[dict[str, Any] | None] = []
    for code, fams in zip(codes, lint, strict=True):
        if code is None:
            out.append(None)
            continue
        cc = complexity(code)
        out.append(
            {
                "ruff_violations": fams,
                "ruff_total": sum(fams.values()) if fams is not None else None,
                "cc_max": cc[0] if cc else None,
                "cc_mean": round(cc[1], 3) if cc else None,
                "loc": lines_of_code(code),
            }
        )
    return out


def _mean(values: Sequence[float | int | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(float(np.mean(vals)), 3) if vals else None


def _group(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    with_code = [r for r in records if r.get("loc") is not None]
    linted = [r for r in with_code if isinstance(r.get("ruff_violations"), dict)]
    fams: Counter = Counter()
    for r in linted:
        fams.update(r["ruff_violations"])
    n = len(linted)
    return {
        "n": len(with_code),
        "ruff_per_sample": _mean([r.get("ruff_total") for r in linted]),
        "ruff_by_family_per_sample": {f: round(c / n, 3) for f, c in fams.most_common()} if n else {},
        "clean_fraction": round(sum(1 for r in linted if not r["ruff_violations"]) / n, 3) if n else None,
        "cc_max_mean": _mean([r.get("cc_max") for r in with_code]),
        "cc_mean_mean": _mean([r.get("cc_mean") for r in with_code]),
        "loc_mean": _mean([r.get("loc") for r in with_code]),
        "loc_median": float(np.median([r["loc"] for r in with_code])) if with_code else None,
    }


def aggregate(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """results.json's `quality`: signals over all solutions with code, and separately passing / failing."""
    return {
        "all": _group(records),
        "passing": _group([r for r in records if r.get("passed")]),
        "failing": _group([r for r in records if not r.get("passed")]),
        "ruff": ruff_config(),
    }
