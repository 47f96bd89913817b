"""The aggregation of scored records into results.json: pass@k overall and by difficulty, status counts,
and (`enrich`) CIs, reference metrics, the error taxonomy, code quality, latency and cost."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from letitcode.data.problem import DIFFICULTIES
from letitcode.sandbox import STATUSES as SANDBOX_STATUSES
from letitcode.scoring import quality, refmetrics, stats, taxonomy
from letitcode.scoring.passk import pass_at_k_table

# Every status a record can have: the sandbox's, plus "no_code" (nothing to run was extracted).
STATUSES = (*SANDBOX_STATUSES, "no_code")


def summarize(records: Sequence[dict[str, Any]], ks: Sequence[int] | None = None) -> dict[str, Any]:
    """results.json body: pass@k overall and by difficulty, status counts, per-test pass rate."""
    overall = pass_at_k_table(records, ks)
    by_diff: dict[str, Any] = {}
    for level in DIFFICULTIES:
        sub = [r for r in records if r.get("difficulty") == level]
        if sub:
            by_diff[level] = {
                "n_problems": len({r["task_id"] for r in sub}),
                "n_samples": len(sub),
                **pass_at_k_table(sub, [int(k.split("@")[1]) for k in overall]),
            }
    status_counts = Counter(r["status"] for r in records)
    totals = [(r.get("tests_passed") or 0, r.get("tests_total") or 0) for r in records]
    test_rate = [p / t for p, t in totals if t]
    return {
        **overall,
        "n_problems": len({r["task_id"] for r in records}),
        "n_samples": len(records),
        "by_difficulty": by_diff,
        "status_counts": {s: status_counts.get(s, 0) for s in STATUSES if status_counts.get(s, 0)},
        "test_pass_rate": float(np.mean(test_rate)) if test_rate else None,
    }


def latency_summary(records: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Median and 95th percentile of per-request generation latency (absent for scored-only runs)."""
    lat = [float(r["latency_s"]) for r in records if r.get("latency_s") is not None]
    if not lat:
        return {"latency_p50_s": None, "latency_p95_s": None}
    p50, p95 = np.percentile(lat, [50, 95])
    return {"latency_p50_s": round(float(p50), 4), "latency_p95_s": round(float(p95), 4)}


def tokens_per_solved(records: Sequence[dict[str, Any]]) -> float | None:
    """Generated tokens spent per passing sample: the cost side of accuracy (None if nothing passed)."""
    tokens = [r.get("n_tokens") for r in records]
    solved = sum(1 for r in records if r.get("passed"))
    if not solved or all(t is None for t in tokens):
        return None
    return round(sum(t or 0 for t in tokens) / solved, 2)


def enrich(
    results: dict[str, Any],
    records: Sequence[dict[str, Any]],
    problems: dict[str, Any],
    *,
    reference_metrics: bool = True,
) -> dict[str, Any]:
    """Add what `summarize` leaves out: bootstrap CIs, corpus BLEU/CodeBLEU where references exist (and
    `reference_metrics` is on), the error taxonomy, code-quality aggregates, latency and cost. Records must
    have been finalized (`pipeline.outputs.finalize`: per-sample reference metrics, quality signals, `error_category`)."""

    ks = [int(k.split("@")[1]) for k in results if k.startswith("pass@")]
    results["ci"] = stats.pass_at_k_cis(records, ks)
    for level, row in results.get("by_difficulty", {}).items():
        if level in results["ci"].get("by_difficulty", {}):
            row["ci"] = results["ci"]["by_difficulty"][level]
    pairs = (
        [refmetrics.reference_pair(r, problems.get(r["task_id"])) for r in records]
        if reference_metrics
        else []
    )
    corpus = refmetrics.corpus_metrics(pairs) if pairs else None
    results["bleu"] = corpus["bleu"] if corpus else None
    results["codebleu"] = corpus["codebleu"] if corpus else None
    if corpus:
        results["reference_metrics"] = corpus
        for level, row in results.get("by_difficulty", {}).items():
            sub = [p for p, r in zip(pairs, records, strict=True) if r.get("difficulty") == level]
            lvl = refmetrics.corpus_metrics(sub)
            if lvl:
                row["bleu"], row["codebleu"] = lvl["bleu"], lvl["codebleu"]
    results["error_taxonomy"] = taxonomy.taxonomy(records, problems)
    results["quality"] = quality.aggregate(records)
    results.update(latency_summary(records))
    results["tokens_per_solved"] = tokens_per_solved(records)
    return results
