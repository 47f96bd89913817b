"""Error taxonomy on crafted records, and on records the real sandbox produced."""

import pytest

from letitcode.data.problem import Problem
from letitcode.scoring import taxonomy


def _rec(task_id, status, difficulty="Easy", code="x = 1", **kw):
    return {
        "task_id": task_id,
        "sample_index": 0,
        "difficulty": difficulty,
        "code": code,
        "completion": kw.pop("completion", f"```python\n{code}\n```"),
        "passed": status == "passed",
        "status": status,
        "error": kw.pop("error", ""),
        "exception_type": kw.pop("exception_type", None),
        "first_failure": kw.pop("first_failure", None),
        **kw,
    }


CRAFTED = [
    _rec("p1", "passed"),
    _rec(
        "p2",
        "runtime_error",
        exception_type="TypeError",
        error="TypeError: unsupported operand",
        first_failure="assert candidate(1, 'a') == 2",
    ),
    _rec(
        "p3",
        "runtime_error",
        "Medium",
        code="def f(n):\n    return f(n)\n",
        exception_type="RecursionError",
        error="RecursionError: maximum recursion depth exceeded",
    ),
    _rec(
        "p4",
        "runtime_error",
        "Medium",
        code="xs = []\nxs[3]",
        exception_type="IndexError",
        error="IndexError: list index out of range",
    ),
    _rec(
        "p5",
        "runtime_error",
        "Hard",
        code="def f():\n    return {}['k']\n# a longer program than p6's\n",
        exception_type=None,
        error="Traceback (most recent call last):\n  ...\nKeyError: 'k'",
    ),
    _rec(
        "p6",
        "runtime_error",
        "Hard",
        code="{}['k']",
        exception_type="builtins.KeyError",
        error="KeyError: 'k'",
        first_failure="assert candidate([]) == 0",
    ),
    _rec("p7", "syntax_error", code="def f(:", error="SyntaxError: invalid syntax"),
    _rec("p8", "wrong_answer", "Hard", first_failure="assert candidate(2) == 4", error="AssertionError"),
    _rec("p9", "timeout", "Hard", code="while True: pass", error="timed out after 10 s"),
    _rec("p10", "memory_limit", code="x = [0] * 10**12", error="MemoryError"),
    _rec("p11", "no_code", code=None, completion="I cannot solve this.", error="the model wrote no code"),
    _rec(
        "p12", "killed", code="import os\nos.kill(os.getppid(), 9)", error="the job killed its sandbox worker"
    ),
    _rec("p13", "runtime_error", "Medium", code="1 / 0", error="something went wrong"),
]
PROBLEMS = {
    f"p{i}": Problem(
        task_id=f"p{i}", source="t", title=f"Problem {i}", description=f"Do thing {i}.", entry_point="f"
    )
    for i in range(1, 14)
}


def test_categorize_splits_runtime_errors_by_exception_type():
    cats = [taxonomy.categorize(r) for r in CRAFTED]
    assert cats == [
        None,
        "runtime_error:TypeError",
        "runtime_error:RecursionError",
        "runtime_error:IndexError",
        "runtime_error:KeyError",  # parsed from the traceback's last line
        "runtime_error:KeyError",  # a dotted exception type is shortened
        "syntax_error",
        "wrong_answer",
        "timeout",
        "memory_limit",
        "no_code",
        "killed",
        "runtime_error:UnknownError",  # nothing names the exception
    ]
    with pytest.raises(ValueError, match="unknown status"):
        taxonomy.categorize({"task_id": "x", "status": "exploded", "passed": False})


def test_taxonomy_counts_families_difficulty_and_examples():
    tax = taxonomy.taxonomy(CRAFTED, PROBLEMS)
    assert tax["n_samples"] == 13 and tax["n_failed"] == 12
    assert tax["counts"]["runtime_error:KeyError"] == 2
    assert list(tax["counts"])[0] == "runtime_error:KeyError"  # most frequent first
    assert tax["families"]["runtime_error"] == 6 and tax["families"]["no_code"] == 1
    assert tax["by_difficulty"]["Hard"] == {"runtime_error:KeyError": 2, "timeout": 1, "wrong_answer": 1}
    assert tax["by_difficulty"]["Medium"]["runtime_error:RecursionError"] == 1
    assert "passed" not in tax["counts"]
    ex = tax["examples"]
    assert set(ex) == set(tax["counts"])  # one qualitative example per category
    key = ex["runtime_error:KeyError"]
    assert key["task_id"] == "p6"  # the shorter of the two programs
    assert key["title"] == "Problem 6" and key["problem"] == "Do thing 6."
    assert (
        key["code"] == "{}['k']"
        and key["first_failure"] == "assert candidate([]) == 0"
        and key["error"] == "KeyError: 'k'"
    )
    assert ex["wrong_answer"]["first_failure"] == "assert candidate(2) == 4"
    assert ex["no_code"]["code"] is None and ex["no_code"]["completion"] == "I cannot solve this."


def test_stored_error_category_wins_and_long_text_is_clipped():
    recs = [
        _rec(
            "p1",
            "runtime_error",
            exception_type="ValueError",
            error_category="runtime_error:ValueError",
            code="x" * 5000,
        )
    ]
    tax = taxonomy.taxonomy(recs)
    assert tax["counts"] == {"runtime_error:ValueError": 1}
    code = tax["examples"]["runtime_error:ValueError"]["code"]
    assert len(code) < 1600 and code.endswith("more characters]")
    assert tax["examples"]["runtime_error:ValueError"]["title"] is None  # no problems given


def test_taxonomy_of_real_sandbox_records():
    """The categories of records produced by executing programs: the sandbox's exception types flow through."""
    from letitcode.pipeline import execute

    p = Problem(
        task_id="t",
        source="t",
        title="t",
        description="",
        entry_point="f",
        test_list=("assert candidate(2) == 4", "assert candidate(3) == 9"),
        timeout_s=2.0,
    )
    programs = {
        "ok": "def f(x):\n    return x * x\n",
        "type": "def f(x):\n    return x + 'a'\n",
        "index": "def f(x):\n    return [][x]\n",
        "recursion": "def f(x):\n    return f(x)\n",
        "syntax": "def f(x) return x\n",
        "wrong": "def f(x):\n    return x + 2\n",
        "timeout": "def f(x):\n    while True:\n        pass\n",
        "none": None,
    }
    items = [
        (p, {"task_id": "t", "sample_index": i, "difficulty": "Easy", "completion": ""}, code, "solution")
        for i, code in enumerate(programs.values())
    ]
    records, _ = execute(items, workers=2, progress=False)
    cats = dict(zip(programs, (taxonomy.categorize(r) for r in records), strict=True))
    assert cats == {
        "ok": None,
        "type": "runtime_error:TypeError",
        "index": "runtime_error:IndexError",
        "recursion": "runtime_error:RecursionError",
        "syntax": "syntax_error",
        "wrong": "wrong_answer",
        "timeout": "timeout",
        "none": "no_code",
    }
    ex = taxonomy.examples(records)
    assert ex["wrong_answer"]["first_failure"] == "assert candidate(3) == 9"  # 2 + 2 == 4 passes
    assert "TypeError" in ex["runtime_error:TypeError"]["error"]
