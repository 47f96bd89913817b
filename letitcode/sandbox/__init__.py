"""Isolated execution of untrusted, model-written code.

A `Sandbox` keeps a small pool of long-lived worker processes (`worker.py`), each started inside
bubblewrap (read-only root, private /tmp, no network, own pid/ipc/uts/user namespaces, all
capabilities dropped, home directories and credential files masked) with a scrubbed environment.
A worker forks one child per job; the child runs the program and its tests under rlimits and
reports over an authenticated channel, so that a job passes only when its tests demonstrably ran
to their end (see worker.py for what that does and does not protect against).

Where bubblewrap is unusable, `isolation="auto"` falls back to `unshare` (network and pid
namespaces) and then to plain rlimits, warns once on stderr, and exposes the level in force as
`Sandbox.isolation` so that results can record it.

The package: job.py (ExecJob, the unit of work), isolation.py (launch commands, the isolation levels, the
warning, the answer keys to mask), protocol.py (the parent <-> worker wire format, ExecResult), pool.py
(the worker processes, the probe, prestart, Sandbox, run_jobs) and worker.py (the worker itself, run by
path, one stdlib-only file). Standard library only, like each of those files: the `evaluate` metrics in
evaluate/metrics/ ship them as local modules, so imports between them are relative.
"""

from __future__ import annotations

from .isolation import ISOLATION_LEVELS, answer_keys
from .job import ExecJob  # relative: these files also run as an `evaluate` metric's local modules
from .pool import Sandbox, prestart, run_jobs
from .protocol import STATUSES, ExecResult

__all__ = [
    "ISOLATION_LEVELS",
    "STATUSES",
    "ExecJob",
    "ExecResult",
    "Sandbox",
    "answer_keys",
    "prestart",
    "run_jobs",
]
