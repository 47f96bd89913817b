"""The parent <-> worker wire format, parent side: what the scorer sends a worker for one job (`_payload`),
how each message is framed (a 4-byte big-endian length, then UTF-8 JSON; worker.py's `_send` and
`_read_exact` are the other end), and what a job's result looks like (`ExecResult`)."""

from __future__ import annotations

import json
import os
import selectors
import struct
import time
from dataclasses import asdict, dataclass, fields

from .job import ExecJob  # relative: these files also run as an `evaluate` metric's local modules

STATUSES = ("passed", "wrong_answer", "runtime_error", "syntax_error", "timeout", "memory_limit", "killed")


@dataclass
class ExecResult:
    status: str  # one of STATUSES
    passed: bool  # True only if every test demonstrably ran to its end and passed
    error: str  # one line, <= 300 chars, "" when passed
    exception_type: str | None
    tests_passed: int
    tests_total: int
    first_failure: str | None  # the first failing test statement, or "check(candidate)"
    stdout: str  # the tail, at most max_output_bytes
    stderr: str
    duration_s: float
    # "replay": decided by the trusted judge from the sample's outputs (letitcode.scoring.judge); "in_sample": by
    # the legacy harness inside the sample's process, which model code can tamper with
    judge: str = "in_sample"

    def to_dict(self) -> dict:
        return asdict(self)


_RESULT_FIELDS = tuple(f.name for f in fields(ExecResult))


def _failed(job: ExecJob, status: str, error: str) -> ExecResult:
    total = len(job.calls) if job.mode == "calls" else (len(job.test_list) if job.test_list else 1)
    return ExecResult(
        status=status,
        passed=False,
        error=error[:300],
        exception_type=None,
        tests_passed=0,
        tests_total=total,
        first_failure=None,
        stdout="",
        stderr="",
        duration_s=0.0,
        judge="replay" if job.mode == "calls" else "in_sample",
    )


class _WorkerError(RuntimeError):
    pass


_UNRESPONSIVE = object()  # read_frame's answer when no whole message came in time


def _payload(job: ExecJob, max_output_bytes: int, memory_mb: int) -> dict:
    return {
        "program": job.program,
        "entry_point": job.entry_point,
        "test_list": list(job.test_list),
        "check_code": job.check_code,
        "mode": job.mode,
        "calls": [[json.loads(c) for c in test] for test in job.calls],
        "target": job.target,
        "timeout_s": float(job.timeout_s),
        "memory_mb": memory_mb,
        "max_output_bytes": max_output_bytes,
    }


def _encode(payload: dict) -> bytes:
    data = json.dumps(payload).encode()
    return struct.pack(">I", len(data)) + data


def read_frame(fd: int, timeout: float) -> dict | None | object:
    """The next message on `fd`: its decoded JSON; None at EOF (the worker died); _UNRESPONSIVE if no whole
    message came within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    buf = b""
    need = 4
    length = None
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            while len(buf) < need:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return _UNRESPONSIVE
                chunk = os.read(fd, need - len(buf))
                if not chunk:
                    return None
                buf += chunk
            if length is None:
                length = struct.unpack(">I", buf[:4])[0]
                need = 4 + length
                continue
            return json.loads(buf[4:need])
