"""Intervals over problems (Wilson for one sample per problem, BCa bootstrap for several) and paired
comparisons."""

import numpy as np
import pytest
from scipy.stats import binomtest

from letitcode.errors import UserError
from letitcode.scoring import stats


def _records(outcomes, *, difficulty=None, prefix="p"):
    """One record per (problem, sample): outcomes[i] is a list of booleans for problem i."""
    out = []
    for i, samples in enumerate(outcomes):
        for s, ok in enumerate(samples):
            out.append(
                {
                    "task_id": f"{prefix}{i}",
                    "sample_index": s,
                    "passed": bool(ok),
                    "difficulty": difficulty[i] if difficulty else None,
                }
            )
    return out


def test_bootstrap_ci_covers_the_true_rate_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    true_p, n_problems, reps = 0.3, 100, 200
    covered = 0
    for rep in range(reps):
        values = rng.random(n_problems) < true_p
        lo, hi = stats.bootstrap_ci(values, n_boot=1000, seed=rep)
        covered += lo <= true_p <= hi
    # BCa bootstrap at n=100: nominal 95%; 200 draws give a binomial sd of about 1.5 points
    assert 0.90 <= covered / reps <= 0.99, covered / reps


def test_bootstrap_ci_shrinks_with_more_problems_and_is_deterministic():
    small = stats.bootstrap_ci([1, 0] * 10)
    large = stats.bootstrap_ci([1, 0] * 500)
    assert small[0] < 0.5 < small[1] and large[0] < 0.5 < large[1]
    assert (large[1] - large[0]) < (small[1] - small[0]) / 4
    assert stats.bootstrap_ci([1, 0, 1], seed=3) == stats.bootstrap_ci([1, 0, 1], seed=3)
    # all equal: not the zero-width [1, 1] of a percentile bootstrap, but Wilson's interval for 3 of 3
    assert (
        stats.bootstrap_ci([1, 1, 1]) == pytest.approx(stats.wilson_ci(3, 3))
        and stats.wilson_ci(3, 3)[0] < 0.6
    )
    with pytest.raises(ValueError):
        stats.bootstrap_ci([])


def test_pass_at_k_cis_by_difficulty():
    outcomes = [[True, False, True, False]] * 10 + [[False] * 4] * 10
    levels = ["Easy"] * 10 + ["Hard"] * 10
    ci = stats.pass_at_k_cis(_records(outcomes, difficulty=levels), [1, 2])
    lo, hi = ci["pass@1"]
    assert lo < 0.25 < hi
    # 0 of 10 Hard problems solved: an interval that admits a real rate, not [0, 0]
    h_lo, h_hi = ci["by_difficulty"]["Hard"]["pass@1"]
    assert h_lo == 0 and 0.25 < h_hi < 0.35
    e_lo, e_hi = ci["by_difficulty"]["Easy"]["pass@2"]
    assert e_lo < 1 - 1 / 6 < e_hi  # every Easy problem: 2 of 4 correct, yet n=10 is uncertain
    assert "BCa" in ci["method"] and ci["n"] == 20 and ci["small_n"] is True
    assert ci["by_difficulty"]["Easy"]["n"] == 10
    assert stats.pass_at_k_cis([], [1]) == {}


def test_paired_comparison_mcnemar_exact():
    # 60 shared problems: A solves 30, B solves 12 of those plus 3 others
    a = [[i < 30] for i in range(60)]
    b = [[i < 12 or 30 <= i < 33] for i in range(60)]
    cmp = stats.paired_comparison(_records(a), _records(b), labels=("lora", "zero_shot"))
    assert cmp["test"] == "mcnemar_exact"
    assert cmp["discordant"] == {"a_only": 18, "b_only": 3}
    assert cmp["p_value"] == pytest.approx(binomtest(18, 21, 0.5).pvalue)
    assert cmp["difference"] == pytest.approx((30 - 15) / 60)
    assert cmp["ci"][0] > 0 and cmp["verdict"] == "lora better"
    reverse = stats.paired_comparison(_records(b), _records(a), labels=("zero_shot", "lora"))
    assert reverse["verdict"] == "lora better" and reverse["difference"] < 0


def test_paired_comparison_no_difference_and_partial_overlap():
    a = [[i % 2 == 0] for i in range(40)]
    same = stats.paired_comparison(_records(a), _records(a))
    assert (
        same["p_value"] == 1.0 and same["difference"] == 0 and same["verdict"] == "no significant difference"
    )
    # B ran 10 problems A did not: only the 40 shared ones are compared
    b = a + [[True]] * 10
    part = stats.paired_comparison(_records(a), _records(b))
    assert part["n_problems"] == 40 and part["only_in_b"] == 10 and part["only_in_a"] == 0
    with pytest.raises(UserError, match="no problem in common"):
        stats.paired_comparison(_records(a), _records(a, prefix="q"))


def test_paired_comparison_bootstrap_for_several_samples():
    rng = np.random.default_rng(0)
    a = [list(rng.random(5) < 0.7) for _ in range(80)]
    b = [list(rng.random(5) < 0.3) for _ in range(80)]
    cmp = stats.paired_comparison(_records(a), _records(b))
    assert cmp["test"] == "paired_bootstrap"
    assert cmp["p_value"] < 0.01 and cmp["ci"][0] > 0.2 and cmp["verdict"] == "A better"
    close = stats.paired_comparison(_records(a), _records(a[1:] + a[:1]))
    assert close["p_value"] > 0.05 and close["verdict"] == "no significant difference"


def test_zero_of_two_is_not_certain():
    """issue #14: 0 of 2 printed 0.000 [0.000, 0.000]."""
    ci = stats.pass_at_k_cis(_records([[False], [False]]), [1])
    assert ci["pass@1"][0] == 0 and ci["pass@1"][1] > 0.5 and "Wilson" in ci["method"]
    assert ci["n"] == 2 and ci["small_n"]
    assert stats.format_ci(0.0, ci["pass@1"], ci["n"]) == "0.000 [0.000, 0.658] (n=2, small n)"
    assert stats.format_ci(0.5, [0.4, 0.6], 100) == "0.500 [0.400, 0.600] (n=100)"
    assert stats.format_ci(None) == "-"


def test_wilson_matches_scipy_and_the_closed_form():
    lo, hi = stats.wilson_ci(3, 10)
    ref = binomtest(3, 10).proportion_ci(method="wilson")
    assert (lo, hi) == pytest.approx((ref.low, ref.high))
    assert stats.wilson_ci(3.0000001, 10) == pytest.approx((lo, hi), abs=1e-6)  # fractional counts
