"""Uncertainty: confidence intervals over problems for pass@k, and paired comparisons.

Problems are the unit: samples of one problem are not independent. With one sample per problem pass@1 is a
proportion of problems and gets the Wilson score interval, honest at small n (0 of 2: [0, 0.658]); with
several samples per problem the CI of pass@k is scipy's BCa bootstrap over problems of their unbiased
per-problem pass@k. Every interval carries its n, and n < 30 is flagged.
A paired comparison of two result sets uses only the problems both have. With one sample per problem the
outcomes are binary and the exact McNemar test applies (scipy's binomial test on the discordant pairs);
with more samples the p-value comes from the paired bootstrap. "A beats B" needs both the difference CI
to exclude 0 and p < alpha.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from letitcode.data.problem import DIFFICULTIES
from letitcode.errors import UserError
from letitcode.scoring.passk import pass_at_k, per_problem_correct

N_BOOT = 2000
ALPHA = 0.05


def per_problem_pass_at_k(records: Sequence[Mapping[str, Any]], k: int) -> dict[str, float]:
    """task_id -> the unbiased pass@k estimate of that problem."""
    return {t: pass_at_k(n, c, k) for t, (n, c) in per_problem_correct(records).items()}


SMALL_N = 30  # below this many problems, reports and the leaderboard flag an interval as small-n


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, *, n_boot: int = N_BOOT, alpha: float = ALPHA, seed: int = 0
) -> tuple[float, float]:
    """BCa bootstrap CI (scipy.stats.bootstrap) of the mean of `values` (one value per problem).

    The percentile bootstrap claimed certainty at small n (0 of 2 gave [0, 0]); BCa corrects its bias and
    skew. Where every value is the same (the bootstrap distribution is a point), the Wilson interval of the
    mean as a proportion of len(values) is used instead: never a zero-width interval."""
    from scipy.stats import bootstrap

    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if v.size < 3 or np.all(v == v[0]):
        return wilson_ci(float(v.sum()), int(v.size), alpha=alpha)
    res = bootstrap(
        (v,), np.mean, method="BCa", n_resamples=n_boot, confidence_level=1 - alpha, random_state=seed
    )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return wilson_ci(float(v.sum()), int(v.size), alpha=alpha)
    return max(0.0, lo), min(1.0, hi)


def wilson_ci(successes: float, n: int, *, alpha: float = ALPHA) -> tuple[float, float]:
    """Wilson score interval of a proportion: 0 of 2 gives [0, 0.658]. scipy's `binomtest(...).proportion_ci`
    for whole counts; its closed form (Wilson 1927) where the count is an average, as for pass@k > 1."""
    if n <= 0:
        raise ValueError("wilson_ci needs n >= 1")
    if float(successes).is_integer():
        from scipy.stats import binomtest

        ci = binomtest(int(successes), n).proportion_ci(confidence_level=1 - alpha, method="wilson")
        return float(ci.low), float(ci.high)
    from scipy.stats import norm

    z = float(norm.ppf(1 - alpha / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def interval_method(records: Sequence[Mapping[str, Any]], k: int) -> str:
    """ "wilson" where each problem has one sample (pass@1 is a proportion of problems), else "bca"."""
    counts = per_problem_correct(records)
    return "wilson" if k == 1 and all(n == 1 for n, _ in counts.values()) else "bca"


def pass_at_k_ci(
    records: Sequence[Mapping[str, Any]],
    k: int = 1,
    *,
    n_boot: int = N_BOOT,
    alpha: float = ALPHA,
    seed: int = 0,
) -> tuple[float, float]:
    """95% CI of pass@k over problems: Wilson with one sample per problem, BCa bootstrap with several."""
    if interval_method(records, k) == "wilson":
        counts = per_problem_correct(records)
        return wilson_ci(sum(c for _, c in counts.values()), len(counts), alpha=alpha)
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
    """results.json's `ci`: {"pass@k": [lo, hi]} for each k, "n" (problems), "method" and "small_n", plus
    "by_difficulty": {level: {...}} with the same keys."""

    def block(recs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        n = len(per_problem_correct(recs))
        out: dict[str, Any] = {
            f"pass@{k}": [round(x, 6) for x in pass_at_k_ci(recs, k, n_boot=n_boot, alpha=alpha, seed=seed)]
            for k in ks
        }
        methods = {interval_method(recs, k) for k in ks}
        out.update(n=n, small_n=n < SMALL_N, method=_method_text(methods, n_boot, alpha))
        return out

    if not records:
        return {}
    out = block(records)
    by_diff = {}
    for level in DIFFICULTIES:
        sub = [r for r in records if r.get("difficulty") == level]
        if sub:
            by_diff[level] = block(sub)
    if by_diff:
        out["by_difficulty"] = by_diff
    return out


def _method_text(methods: set[str], n_boot: int, alpha: float) -> str:
    pct = int(round((1 - alpha) * 100))
    parts = []
    if "wilson" in methods:
        parts.append(f"Wilson score interval (one sample per problem), {pct}%")
    if "bca" in methods:
        parts.append(f"BCa bootstrap over problems, {n_boot} resamples, {pct}%")
    return "; ".join(parts)


def format_ci(
    value: float | None,
    ci: Sequence[float] | None = None,
    n: int | None = None,
    *,
    digits: int = 3,
    signed: bool = False,
) -> str:
    """The one way numbers with intervals are printed: `0.000 [0.000, 0.658] (n=2, small n)`; a difference
    (`signed`) says its direction: `+0.125 [-0.050, 0.300]`."""
    if value is None:
        return "-"
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    if ci is not None and len(ci) == 2 and None not in ci:
        text += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    if n is not None:
        text += f" (n={n}{', small n' if n < SMALL_N else ''})"
    return text


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
