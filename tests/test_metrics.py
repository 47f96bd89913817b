"""Reference metrics (BLEU, CodeBLEU), code-quality signals, per-sample finalisation, and the custom
`evaluate` metrics loaded offline from their folders."""

import json
import os
import random
import subprocess
import sys

import pytest
from conftest import REPO

from letitcode.data.problem import Problem
from letitcode.pipeline.outputs import finalize
from letitcode.scoring import quality, refmetrics
from letitcode.scoring.passk import pass_at_k
from letitcode.scoring.summary import summarize

TWO_SUM = """class Solution:
    def twoSum(self, nums: List[int], target: int) -> List[int]:
        seen = {}
        for i, x in enumerate(nums):
            if target - x in seen:
                return [seen[target - x], i]
            seen[x] = i
        return []
"""


def _shuffled(code: str, seed: int = 0) -> str:
    tokens = code.split()
    random.Random(seed).shuffle(tokens)
    return " ".join(tokens)


def test_identical_code_scores_maximal_and_shuffled_lower():
    same = refmetrics.sample_metrics(TWO_SUM, TWO_SUM)
    assert same["bleu"] == 100.0
    assert same["codebleu"] == pytest.approx(1.0)
    for key in ("codebleu_ngram", "codebleu_weighted_ngram", "codebleu_syntax", "codebleu_dataflow"):
        assert same[key] == pytest.approx(1.0), key
    shuffled = refmetrics.sample_metrics(_shuffled(TWO_SUM), TWO_SUM)
    assert shuffled["bleu"] < 60
    assert shuffled["codebleu"] < 0.6
    assert shuffled["codebleu_syntax"] < 0.5
    # a near miss (one renamed variable) sits between the two
    near = refmetrics.sample_metrics(TWO_SUM.replace("seen", "memo"), TWO_SUM)
    assert shuffled["bleu"] < near["bleu"] < 100
    assert shuffled["codebleu"] < near["codebleu"] < 1.0


def test_corpus_metrics_and_absence_without_reference():
    assert refmetrics.sample_metrics(TWO_SUM, None) is None  # no reference: absent, not 0
    assert refmetrics.sample_metrics(TWO_SUM, "  ") is None
    assert refmetrics.sample_metrics(None, TWO_SUM) == dict.fromkeys(refmetrics.SAMPLE_KEYS, 0.0)
    assert refmetrics.corpus_metrics([(TWO_SUM, None), (None, None)]) is None
    corpus = refmetrics.corpus_metrics([(TWO_SUM, TWO_SUM), (TWO_SUM, None), (_shuffled(TWO_SUM), TWO_SUM)])
    assert corpus["n_with_reference"] == 2
    assert 0 < corpus["bleu"] < 100 and 0 < corpus["codebleu"] < 1
    assert corpus["bleu_signature"].startswith("nrefs:1|")
    assert refmetrics.corpus_metrics([(TWO_SUM, TWO_SUM)])["bleu"] == pytest.approx(100.0)


def test_reference_pair_puts_completion_and_body_reference_in_their_prompt():
    p = Problem(
        task_id="HumanEval/0",
        source="humaneval",
        title="add",
        description="",
        entry_point="add",
        prompt='def add(a, b):\n    """Add."""\n',
        reference="    return a + b\n",
    )
    hyp, ref = refmetrics.reference_pair({"code": "    return a + b\n", "extraction": "completion"}, p)
    assert hyp == ref == p.prompt + "    return a + b\n"
    full = "def add(a, b):\n    return b + a\n"
    hyp, ref = refmetrics.reference_pair({"code": full, "extraction": "fenced"}, p)
    assert hyp == full and ref.startswith("def add")
    assert refmetrics.reference_pair({"code": full}, None) == (None, None)


def test_rule_families_and_preamble_lines_are_not_counted():
    assert quality.rule_family("F401") == "F"
    assert quality.rule_family("PLR0912") == "PLR"
    assert quality.rule_family("SIM108") == "SIM"
    assert quality.rule_family("invalid-syntax") == "syntax"
    assert quality.rule_family(None) == "syntax"
    codes = [
        "import os\n\n\ndef f(x):\n    if x == None:\n        return 1\n    return 2\n",  # F401, E711
        "def g(:\n    pass\n",
        None,
        "def h(nums: List[int]) -> int:\n    return sum(nums)\n",  # List comes from the preamble
    ]
    preamble = "import sys\nfrom typing import List\n"  # its unused `sys` import is not the model's
    got = quality.ruff_violations(codes, [preamble] * len(codes))
    assert got[0] == {"E": 1, "F": 1}
    assert got[1].get("syntax", 0) >= 1
    assert got[2] is None
    assert got[3] == {}


def test_quality_signals_and_aggregates():
    code = (
        "def f(xs):\n"
        "    # count\n"
        "    n = 0\n"
        "    for x in xs:\n"
        "        if x > 0 and x % 2:\n"
        "            n += 1\n"
        "    return n\n\n\n"
        "def g():\n"
        "    return 1\n"
    )
    sig = quality.quality_signals([code, "def broken(:\n", None])
    assert sig[0]["cc_max"] == 4 and sig[0]["cc_mean"] == 2.5  # for + if + `and` in f; g is 1
    assert sig[0]["loc"] == 8  # blank and comment lines are not code
    assert sig[0]["ruff_total"] == 0 and sig[0]["ruff_violations"] == {}
    assert sig[1]["cc_max"] is None and sig[1]["loc"] == 1 and sig[1]["ruff_total"] >= 1
    assert sig[2] is None
    records = [
        {"passed": True, **sig[0]},
        {"passed": False, **sig[1]},
        {"passed": False, **dict.fromkeys(quality.QUALITY_KEYS)},
    ]
    agg = quality.aggregate(records)
    assert agg["passing"]["n"] == 1 and agg["passing"]["clean_fraction"] == 1.0
    assert agg["failing"]["n"] == 1 and agg["failing"]["ruff_by_family_per_sample"]["syntax"] >= 1
    assert agg["all"]["n"] == 2
    assert "F" in agg["ruff"]["select"]


def test_finalize_fills_per_sample_fields():
    with_ref = Problem(
        task_id="a",
        source="t",
        title="a",
        description="d",
        entry_point="Solution().twoSum",
        difficulty="Easy",
        reference=TWO_SUM,
        preamble="from typing import List\n",
    )
    no_ref = Problem(
        task_id="b",
        source="t",
        title="b",
        description="d",
        entry_point="Solution().twoSum",
        difficulty="Hard",
    )
    base = {
        "passed": False,
        "error": "",
        "exception_type": None,
        "first_failure": None,
        "extraction": "fenced",
    }
    records = [
        {
            **base,
            "task_id": "a",
            "code": TWO_SUM,
            "passed": True,
            "status": "passed",
            "tests_passed": 3,
            "tests_total": 3,
        },
        {
            **base,
            "task_id": "b",
            "code": TWO_SUM,
            "status": "wrong_answer",
            "tests_passed": 1,
            "tests_total": 4,
        },
        {**base, "task_id": "a", "code": None, "status": "no_code", "tests_passed": 0, "tests_total": 3},
        {
            **base,
            "task_id": "b",
            "code": "x = [][1]",
            "status": "runtime_error",
            "exception_type": "IndexError",
            "tests_passed": 0,
            "tests_total": 0,
        },
    ]
    finalize(records, {"a": with_ref, "b": no_ref})
    a, b, none, idx = records
    assert a["bleu"] == 100.0 and a["codebleu"] == pytest.approx(1.0)
    assert b["bleu"] is None and b["codebleu"] is None and b["codebleu_syntax"] is None  # absent, never 0
    assert none["bleu"] == 0.0 and none["codebleu"] == 0.0  # reference exists, nothing was written
    assert a["test_pass_rate"] == 1.0 and b["test_pass_rate"] == 0.25 and idx["test_pass_rate"] is None
    assert a["error_category"] is None and b["error_category"] == "wrong_answer"
    assert idx["error_category"] == "runtime_error:IndexError" and none["error_category"] == "no_code"
    assert a["loc"] == 8 and a["cc_max"] == 3 and a["ruff_violations"] == {}
    assert none["loc"] is None and none["ruff_violations"] is None


def test_pass_at_k_and_summarize_unchanged():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(5, 5, 5) == 1.0
    recs = [
        {"task_id": "x", "passed": True, "status": "passed", "difficulty": "Easy"},
        {"task_id": "y", "passed": False, "status": "timeout", "difficulty": "Hard"},
    ]
    s = summarize(recs)
    assert s["pass@1"] == 0.5 and s["by_difficulty"]["Easy"]["pass@1"] == 1.0


@pytest.fixture(scope="module")
def evaluate_lib():
    # The repo's evaluate/ folder of scripts must not shadow the library (it has no __init__.py).
    import evaluate

    assert hasattr(evaluate, "load"), "the evaluate library is shadowed"
    return evaluate


def test_codebleu_metric_loads_offline(evaluate_lib, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    m = evaluate_lib.load(str(REPO / "evaluate" / "metrics" / "codebleu"))
    same = m.compute(predictions=[TWO_SUM], references=[TWO_SUM])
    assert same["codebleu"] == pytest.approx(1.0) and same["syntax_match_score"] == pytest.approx(1.0)
    lower = m.compute(predictions=[_shuffled(TWO_SUM)], references=[TWO_SUM])
    assert lower["codebleu"] < 0.6
    multi = m.compute(predictions=[TWO_SUM], references=[[TWO_SUM, "def f():\n    return 1\n"]])
    assert 0 < multi["codebleu"] <= 1


def test_pass_at_k_metric_executes_in_sandbox(evaluate_lib, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    m = evaluate_lib.load(str(REPO / "evaluate" / "metrics" / "pass_at_k"))
    out = m.compute(
        predictions=[
            ["def add(a, b):\n    return a + b", "def add(a, b):\n    return a - b"],
            ["import sys\nsys.exit(0)", "def sq(x):\n    return x * x"],  # exiting early must not pass
        ],
        references=["assert add(2, 3) == 5", "assert candidate(3) == 9"],
        entry_points=["add", "sq"],
        k=[1, 2, 5],
        workers=2,
    )
    assert out["pass@1"] == pytest.approx(0.5) and out["pass@2"] == pytest.approx(1.0)
    assert "pass@5" not in out  # more than the 2 candidates per problem
    assert out["status_counts"]["passed"] == 2 and out["isolation"] in ("bwrap", "unshare", "rlimits")


def test_test_pass_rate_metric_counts_individual_tests(evaluate_lib, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    m = evaluate_lib.load(str(REPO / "evaluate" / "metrics" / "test_pass_rate"))
    out = m.compute(
        predictions=[
            "def sq(x):\n    return x * x if x < 3 else 0",
            "def sq(x):\n    return x * x",
            "def sq(x) return",
        ],
        references=[["assert sq(1) == 1", "assert sq(2) == 4", "assert sq(3) == 9", "assert sq(4) == 16"]]
        * 3,
        workers=2,
    )
    assert out["per_sample"] == [0.5, 1.0, 0.0]
    assert out["test_pass_rate"] == pytest.approx(0.5) and out["all_passed"] == pytest.approx(1 / 3)
    assert out["status_counts"] == {"wrong_answer": 1, "passed": 1, "syntax_error": 1}


def test_metric_folders_have_cards_and_stage_as_spaces(tmp_path):
    from huggingface_hub import SpaceCard

    from letitcode.hub.publish import stage_metric_space

    for name in ("pass_at_k", "codebleu", "test_pass_rate"):
        folder = REPO / "evaluate" / "metrics" / name
        stage = stage_metric_space(folder, tmp_path / name)
        card = SpaceCard.load(stage / "README.md")
        assert card.data.sdk == "gradio" and card.data.app_file == "app.py"
        assert {"evaluate", "metric"} <= set(card.data.tags)
        assert "## How to Use" in card.text and "## Limitations and Bias" in card.text
        assert (stage / f"{name}.py").exists() and (stage / "app.py").exists()
        reqs = (stage / "requirements.txt").read_text()
        assert "evaluate==" in reqs
        assert not (stage / "letitcode").exists()  # self-contained: the package is never copied
        local = {p.name for p in stage.glob("*.py") if not p.is_symlink()}
        assert ({"sandbox.py", "job.py", "isolation.py", "protocol.py", "pool.py", "worker.py"} <= local) == (
            name != "codebleu"
        )
        assert ("tree-sitter-python==0.21.0" in reqs) == (name == "codebleu")


# a process where `import letitcode` fails, as for anyone who `evaluate.load`s a metric from the Hub
_WITHOUT_LETITCODE = """
import json, sys
sys.modules["letitcode"] = None
import evaluate
m = evaluate.load(sys.argv[1])
out = m.compute(predictions=[["def add(a, b):\\n    return a + b", "def add(a, b):\\n    return a * b"]],
                references=["assert add(2, 3) == 5"], k=[1, 2], workers=1)
print(json.dumps(out))
"""


def test_staged_metric_loads_without_letitcode(tmp_path):
    from letitcode.hub.publish import stage_metric_space

    stage = stage_metric_space(REPO / "evaluate" / "metrics" / "pass_at_k", tmp_path / "pass_at_k")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_LETITCODE, str(stage)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["pass@1"] == pytest.approx(0.5) and out["pass@2"] == pytest.approx(1.0)
    assert out["isolation"] in ("bwrap", "unshare", "rlimits")


@pytest.mark.slow
def test_space_app_builds(tmp_path, monkeypatch):
    """The Space's Gradio app constructs its interface (gradio is slow to import)."""
    import importlib.util

    from letitcode.hub.publish import stage_metric_space

    stage = stage_metric_space(REPO / "evaluate" / "metrics" / "codebleu", tmp_path / "codebleu")
    spec = importlib.util.spec_from_file_location("space_app_under_test", stage / "app.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setattr(sys, "argv", ["app.py"])
    spec.loader.exec_module(mod)
    assert mod.NAME == "codebleu"
    assert mod.build() is not None
    out = mod.compute('["def f(x):\\n    return x"]', '["def f(x):\\n    return x"]', "{}")
    assert out["codebleu"] == pytest.approx(1.0)


def test_comments_and_docstrings_do_not_count_as_matching_code():
    doc = '"""Add one to x and return the result, as the docstring of the prompt explains at length."""'
    commented = f"def f(x):\n    {doc}\n    # add one\n    return x + 1\n"
    assert refmetrics.sample_metrics(commented, "def f(x):\n    return x + 1\n")["bleu"] == 100.0
    # a stub that only repeats the prompt's docstring shares little code with the real solution
    ref = (
        f"def f(xs):\n    {doc}\n    total = 0\n    for x in xs:\n        total += x * x\n    return total\n"
    )
    stub = f"def f(xs):\n    {doc}\n    return None\n"
    assert refmetrics.sample_metrics(stub, ref)["bleu"] < 30
    assert refmetrics.normalize("def f(:\n  # broken") == "def f(:\n  # broken"  # unparseable: kept
