import itertools
from math import comb

import pytest

from letitcode.scoring.passk import pass_at_k, pass_at_k_table
from letitcode.scoring.summary import summarize


def brute_force(n: int, c: int, k: int) -> float:
    """Enumerate every k-subset of n samples (c correct) and count those with a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize(
    "n,c,k", [(n, c, k) for n in range(1, 8) for c in range(n + 1) for k in range(1, n + 1)]
)
def test_unbiased_estimator_matches_brute_force(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k), abs=1e-12)
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k), abs=1e-12)


def test_k_larger_than_n_is_an_error():
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 5)


def _recs(task, difficulty, outcomes):
    return [
        {
            "task_id": task,
            "difficulty": difficulty,
            "passed": o,
            "status": "passed" if o else "wrong_answer",
            "tests_passed": 1 if o else 0,
            "tests_total": 1,
        }
        for o in outcomes
    ]


def test_summary_by_difficulty_and_status():
    recs = (
        _recs("a", "Easy", [True] * 5)
        + _recs("b", "Medium", [True, False, False, False, False])
        + _recs("c", "Hard", [False] * 5)
    )
    res = summarize(recs)
    assert res["pass@1"] == pytest.approx((1 + 0.2 + 0) / 3)
    assert res["pass@5"] == pytest.approx((1 + 1 + 0) / 3)
    assert set(res["by_difficulty"]) == {"Easy", "Medium", "Hard"}
    assert res["by_difficulty"]["Medium"]["pass@1"] == pytest.approx(0.2)
    assert res["status_counts"] == {"passed": 6, "wrong_answer": 9}
    assert pass_at_k_table([]) == {}
