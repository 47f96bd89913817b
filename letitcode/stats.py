"""Uncertainty: bootstrap confidence intervals over problems for pass@k, and paired comparisons.

Problems are the unit of resampling: samples of one problem are not independent, so the CI of a pass@k
comes from resampling problems (with replacement) and averaging their unbiased per-problem pass@k.
A paired comparison of two result sets uses only the problems both have. With one sample per problem the
outcomes are binary and the exact McNemar test applies (scipy's binomial test on the discordant pairs);
with more samples the p-value comes from the paired bootstrap. "A beats B" needs both the difference CI
to exclude 0 and p < alpha.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from letitcode.errors import UserError
from letitcode.metrics import pass_at_k, per_problem_correct
from letitcode.problems import DIFFICULTIES

N_BOOT = 2000
ALPHA = 0.05


def per_problem_pass_at_k(records: Sequence[Mapping[str, Any]], k: int) -> dict[str, float]:
    """task_id -> the unbiased pass@k estimate of that problem."""
    return {t: pass_at_k(n, c, k) for t, (n, c) in per_problem_correct(records).items()}


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, *, n_boot: int = N_BOOT, alpha: float = ALPHA, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `values` (one value per problem)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def pass_at_k_ci(
    records: Sequence[Mapping[str, Any]],
    k: int = 1,
    *,
    n_boot: int = N_BOOT,
    alpha: float = ALPHA,
    seed: int = 0,
) -> tuple[float, float]:
    vals = list(per_problem_pass_at_k(records, k).values())
    return bootstrap_ci(vals, n_boot=n_boot, alpha=alpha, seed=seed)


def pass_at_k_cis(
    records: Sequence[Mapping[str, Any]],
    ks: Sequence[int],
    *,
    n_boot: int = N_BOOT,
    alpha: float = ALPHA,
    seed: int = 0,
) -> dict[str, Any]:
    """results.json's `ci`: {"pass@k": [lo, hi]} for each k, plus "by_difficulty": {level: {...}}."""
    out: dict[str, Any] = {}
    if not records:
        return out
    for k in ks:
        out[f"pass@{k}"] = [
            round(x, 6) for x in pass_at_k_ci(records, k, n_boot=n_boot, alpha=alpha, seed=seed)
        ]
    by_diff = {}
    for level in DIFFICULTIES:
        sub = [r for r in records if r.get("difficulty") == level]
        if sub:
            by_diff[level] = {
                f"pass@{k}": [
                    round(x, 6) for x in pass_at_k_ci(sub, k, n_boot=n_boot, alpha=alpha, seed=seed)
                ]
                for k in ks
            }
    if by_diff:
        out["by_difficulty"] = by_diff
    out["method"] = (
        f"percentile bootstrap over problems, {n_boot} resamples, {int(round((1 - alpha) * 100))}%"
    )
    return out


def paired_comparison(
    records_a: Sequence[Mapping[str, Any]],
    records_b: Sequence[Mapping[str, Any]],
    *,
    k: int = 1,
    n_boot: int = N_BOOT,
    alpha: float = ALPHA,
    seed: int = 0,
    labels: tuple[str, str] = ("A", "B"),
) -> dict[str, Any]:
    """Compare pass@k of A and B on the problems both were run on: difference (A - B) with a paired
    bootstrap CI, a p-value (exact McNemar for one sample per problem, else paired bootstrap), a verdict."""
    pa, pb = per_problem_pass_at_k(records_a, k), per_problem_pass_at_k(records_b, k)
    common = sorted(set(pa) & set(pb))
    if not common:
        raise UserError(
            f"{labels[0]} and {labels[1]} have no problem in common: a paired comparison needs the same problems"
        )
    va = np.array([pa[t] for t in common])
    vb = np.array([pb[t] for t in common])
    d = va - vb
    diff = float(d.mean())
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    lo, hi = (float(x) for x in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    na, nb = per_problem_correct(records_a), per_problem_correct(records_b)
    binary = k == 1 and all(na[t][0] == 1 and nb[t][0] == 1 for t in common)
    out: dict[str, Any] = {
        "k": k,
        "labels": list(labels),
        "n_problems": len(common),
        "only_in_a": len(set(pa) - set(pb)),
        "only_in_b": len(set(pb) - set(pa)),
        "a": float(va.mean()),
        "b": float(vb.mean()),
        "difference": diff,
        "ci": [lo, hi],
    }
    if binary:
        from scipy.stats import binomtest

        a_only = int(np.sum((va == 1) & (vb == 0)))
        b_only = int(np.sum((va == 0) & (vb == 1)))
        p = 1.0 if a_only + b_only == 0 else float(binomtest(a_only, a_only + b_only, 0.5).pvalue)
        out.update(test="mcnemar_exact", discordant={"a_only": a_only, "b_only": b_only}, p_value=p)
    else:
        # two-sided paired-bootstrap p-value: how often the resampled difference falls on the other side of 0
        p = float(min(1.0, 2 * min(np.mean(boot <= 0), np.mean(boot >= 0))))
        out.update(test="paired_bootstrap", p_value=p)
    if lo > 0 and out["p_value"] < alpha:
        verdict = f"{labels[0]} better"
    elif hi < 0 and out["p_value"] < alpha:
        verdict = f"{labels[1]} better"
    else:
        verdict = "no significant difference"
    out["verdict"] = verdict
    return out
