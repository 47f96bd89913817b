"""The sandbox's unit of work. Standard library only, like the rest of the sandbox package: the
`evaluate` metrics in evaluate/metrics/ ship these files as local modules and run without `letitcode`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class ExecJob:
    """Everything the sandbox needs to run one candidate against one problem's tests.

    The harness runs `program` and evaluates `entry_point` to get `candidate`. Then, by `mode`:
    - `calls` (how `letitcode.scoring.judge` runs samples): call the candidate on each input of `calls` (per test,
      the JSON of each call's encoded (args, kwargs)) and send the outputs back as plain data; `verdict`
      (the trusted judge, in the scorer's process) turns the worker's reply into the result;
    - `tests` (the legacy in-sample harness): run each statement of `test_list` (counting passes) or
      `check(candidate)` from `check_code` in the sample's own namespace;
    - `record`: like `tests`, on a reference solution, recording every call of `target` (judge inputs).
    """

    program: str
    entry_point: str
    test_list: tuple[str, ...] = ()
    check_code: str = ""
    timeout_s: float = 10.0
    task_id: str = ""
    mode: Literal["tests", "calls", "record"] = "tests"
    calls: tuple[tuple[str, ...], ...] = ()
    target: str = ""  # record mode: the name the tests call ("candidate", or MBPP's function)
    verdict: Callable[[dict[str, Any]], dict[str, Any]] | None = field(
        default=None, compare=False, repr=False
    )
