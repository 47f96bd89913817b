"""The worker processes: one worker (`_Worker`), the probe that vets a launch command and the spare worker
it leaves for the first pool (`prestart` starts that one early), and the public pool, `Sandbox`.

A worker (worker.py) runs inside the isolation that isolation.py chose, forks one child per job and
answers each job with one result dict over its pipe (protocol.py). The pool keeps a few jobs queued in each
worker's pipe, blames the running job when a worker dies or hangs, and restarts that worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence

from .isolation import ISOLATION_LEVELS, UserError, _argv_for_slot, _launch_commands, _resolve_isolation
from .job import ExecJob
from .protocol import (
    _RESULT_FIELDS,
    _UNRESPONSIVE,
    ExecResult,
    _encode,
    _failed,
    _payload,
    _WorkerError,
    read_frame,
)

_START_TIMEOUT_S = 60.0
_GRACE_S = 10.0  # how long past a job's own timeout the parent waits for its worker to answer
_AHEAD = 2  # jobs queued per worker (the running one and the next)
_AHEAD_BYTES = 48 << 10  # ... as long as they fit in a pipe buffer together


# --------------------------------------------------------------------------------------------------
# One worker process
# --------------------------------------------------------------------------------------------------
class _Worker:
    """A worker process and its length-prefixed JSON pipe."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.errlog = tempfile.TemporaryFile()  # the worker's own stderr (bwrap errors, worker crashes)
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errlog,
            env=env,
            cwd="/",
            start_new_session=True,
        )
        self.rfd, self.wfd = self.proc.stdout.fileno(), self.proc.stdin.fileno()
        self.ready = False

    def wait_ready(self) -> None:
        hello = self.recv(_START_TIMEOUT_S)
        if not isinstance(hello, dict) or not hello.get("ready"):
            self.kill()
            raise _WorkerError(f"worker did not start: {self.stderr_tail() or 'no output'}")
        self.ready = True

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_tail(self) -> str:
        try:
            self.errlog.seek(0, os.SEEK_END)
            size = self.errlog.tell()
            self.errlog.seek(max(0, size - 2000))
            return self.errlog.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def send(self, data: bytes) -> bool:
        """Write one encoded job; False if the worker is gone."""
        try:
            while data:
                data = data[os.write(self.wfd, data) :]
        except OSError:  # BrokenPipeError: it died
            return False
        return True

    def recv(self, timeout: float) -> dict | None | object:
        """The worker's next reply; None if it died; _UNRESPONSIVE if it did not answer in time."""
        return read_frame(self.rfd, timeout)

    def call(self, payload: dict, timeout: float) -> dict | None | object:
        return self.recv(timeout) if self.send(_encode(payload)) else None

    def kill(self) -> None:
        for target in (lambda: os.killpg(self.proc.pid, signal.SIGKILL), self.proc.kill):
            try:
                target()
            except OSError:
                pass
        self._reap()

    def close(self) -> None:
        """Ask the worker to exit (EOF on its stdin); kill it if it does not."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap()

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout, self.errlog):
            try:
                f.close()
            except OSError:
                pass


def _close_pool(pool: list[_Worker | None]) -> None:
    for i, w in enumerate(pool):
        if w is not None:
            w.close()
            pool[i] = None


# --------------------------------------------------------------------------------------------------
# The probe, and the workers started ahead of a pool
# --------------------------------------------------------------------------------------------------
_PROBE_JOB = ExecJob(
    program="def f():\n    return 41 + 1\n",
    entry_point="f",
    test_list=("assert candidate() == 42",),
    timeout_s=10.0,
)
_probe_cache: dict[tuple[str, ...], str] = {}  # argv -> "" when usable, else why not
_probe_lock = threading.Lock()
# The worker that passed a probe, kept for the first pool of that command (see Sandbox.__init__): a fresh
# scorer process would otherwise start, use and stop one worker before starting its pool.
_spare: dict[tuple[str, ...], _Worker] = {}
_pending: dict[tuple[str, ...], _Worker] = {}  # started by prestart(), not yet probed


def prestart(isolation: str = "auto") -> None:
    """Start the worker that the first `Sandbox(isolation=...)` will probe, without waiting for it.

    A scorer calls this before its own imports and data loading, so that bubblewrap and the worker's
    interpreter boot meanwhile (about 0.1 s) instead of after them. Call it from the thread that will
    create the Sandbox: a worker dies with the thread that started it. A worker that no Sandbox takes
    dies with this process. Best effort: any problem is left for the probe to find and report.
    """
    if os.name != "posix" or isolation not in ("auto", *ISOLATION_LEVELS):
        return
    for level in ISOLATION_LEVELS if isolation == "auto" else (isolation,):
        cands = _launch_commands(level)
        if cands:
            argv, env = cands[0]
            key = tuple(argv)
            with _probe_lock:
                if key not in _probe_cache and key not in _pending:
                    try:
                        _pending[key] = _Worker(argv, env)
                    except OSError:
                        pass
            return


def _probe(argv: list[str], env: dict[str, str]) -> str:
    """Start a worker with this command and run one trivial job: "" if that works, else the reason."""
    key = tuple(argv)
    with _probe_lock:
        if key not in _probe_cache:
            w = _pending.pop(key, None)
            try:
                if w is None:
                    w = _Worker(argv, env)
                w.wait_ready()
                reply = w.call(_payload(_PROBE_JOB, 65536, 512), 30.0)
                ok = isinstance(reply, dict) and reply.get("status") == "passed"
                _probe_cache[key] = "" if ok else f"probe job did not pass: {str(reply)[:200]}"
            except (OSError, _WorkerError) as e:
                _probe_cache[key] = " ".join(str(e).split())[:300] or type(e).__name__
            except BaseException:  # interrupted: no verdict, and no worker left behind
                if w is not None:
                    w.kill()
                raise
            if w is not None:
                if _probe_cache[key] or not w.alive():
                    w.close()
                else:
                    _spare[key] = w
        return _probe_cache[key]


def _take_spare(argv: list[str]) -> _Worker | None:
    with _probe_lock:
        w = _spare.pop(tuple(argv), None)
    if w is not None and not w.alive():
        w.kill()
        return None
    return w


# --------------------------------------------------------------------------------------------------
# The public pool
# --------------------------------------------------------------------------------------------------
class Sandbox:
    """A pool of isolated workers. `run(jobs)` returns one `ExecResult` per job, in order."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        memory_mb: int = 4096,
        isolation: str = "auto",
        max_output_bytes: int = 65536,
        hide: Sequence[str] = (),
    ):
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise UserError(
                f"Sandbox(workers={workers!r}): expected a positive integer or None (one per CPU)"
            )
        if not isinstance(memory_mb, int) or memory_mb < 32:
            raise UserError(f"Sandbox(memory_mb={memory_mb!r}): expected an integer of at least 32 (MB)")
        if not isinstance(max_output_bytes, int) or max_output_bytes < 0:
            raise UserError(
                f"Sandbox(max_output_bytes={max_output_bytes!r}): expected a non-negative integer"
            )
        if isolation not in ("auto", *ISOLATION_LEVELS):
            raise UserError(
                f"Sandbox(isolation={isolation!r}): expected one of auto, {', '.join(ISOLATION_LEVELS)}"
            )
        self.workers = workers or os.cpu_count() or 1
        self.memory_mb = memory_mb
        self.max_output_bytes = max_output_bytes
        self.isolation, self._argv, self._env = _resolve_isolation(
            isolation, _probe, [os.path.abspath(h) for h in hide]
        )
        self._pool: list[_Worker | None] = [None] * self.workers
        self._pool[0] = _take_spare(self._argv)  # the probe's worker, when this process just probed
        self._run_lock = threading.Lock()
        self._raw = False
        self._finalizer = weakref.finalize(self, _close_pool, self._pool)

    def _check(self, i: int, job: object) -> ExecJob:
        if not isinstance(job, ExecJob):
            raise UserError(f"sandbox job {i}: expected an ExecJob, got {type(job).__name__}")
        name = job.task_id or f"job {i}"
        if (
            not isinstance(job.program, str)
            or not isinstance(job.entry_point, str)
            or not job.entry_point.strip()
        ):
            raise UserError(f"sandbox {name}: program and entry_point must be strings, entry_point non-empty")
        if job.mode == "calls":
            if not job.calls or job.verdict is None:
                raise UserError(
                    f"sandbox {name}: mode 'calls' needs the calls per test and a verdict function"
                )
        elif not job.test_list and not (job.check_code or "").strip():
            raise UserError(f"sandbox {name}: no tests (both test_list and check_code are empty)")
        if not isinstance(job.timeout_s, (int, float)) or not job.timeout_s > 0:
            raise UserError(f"sandbox {name}: timeout_s must be a positive number, got {job.timeout_s!r}")
        return job

    def _start(self, slot: int) -> _Worker:
        w = _Worker(_argv_for_slot(self._argv, slot), self._env)
        self._pool[slot] = w
        w.wait_ready()
        return w

    def _serve(
        self,
        slot: int,
        jobs: list[ExecJob],
        take: Callable[[bool], int | None],
        done: Callable[[int, ExecResult], None],
    ) -> None:
        """Run jobs on one worker until `take()` has none left, keeping up to _AHEAD of them queued in
        its pipe, so that it never waits for a round trip through this process between two jobs.

        The worker runs them in order, so the oldest unanswered job is the one it is running: that is
        the job blamed when the worker dies or hangs; the others are sent again to its replacement.
        """
        queued: deque[tuple[int, bytes]] = deque()  # (job index, encoded payload): sent, not answered
        held: tuple[int, bytes] | None = None  # taken, but too large to queue behind the others yet
        w = self._pool[slot]
        if w is not None and not w.ready:
            w.wait_ready()  # started by run(); each slot waits for its own, so a ready one serves at once
        while True:
            if w is None or not w.alive():  # not started, or died while idle: (re)start, resend the queue
                w = self._restart(slot, w, queued)
            held = self._fill(w, queued, held, jobs, take)
            if not queued:
                return
            i = queued[0][0]
            job = jobs[i]
            reply = w.recv(float(job.timeout_s) + _GRACE_S)
            queued.popleft()
            if reply is None or reply is _UNRESPONSIVE:
                done(i, self._lost(slot, w, job, reply))
                w = None
                continue
            done(i, self._result(job, reply))

    def _restart(self, slot: int, w: _Worker | None, queued: deque[tuple[int, bytes]]) -> _Worker:
        if w is not None:
            w.kill()
        w = self._start(slot)
        for _, data in queued:
            w.send(data)
        return w

    def _fill(
        self,
        w: _Worker,
        queued: deque[tuple[int, bytes]],
        held: tuple[int, bytes] | None,
        jobs: list[ExecJob],
        take: Callable[[bool], int | None],
    ) -> tuple[int, bytes] | None:
        """Send `w` more jobs, up to _AHEAD queued; returns the job taken but held back (or None)."""
        # Queue more only while it all fits in the pipe buffer (64 KiB on Linux): a blocking write
        # here could deadlock against the worker's own blocking write of a large reply.
        while len(queued) < _AHEAD:
            if held is None:
                i = take(bool(queued))
                if i is None:
                    break
                held = (i, _encode(_payload(jobs[i], self.max_output_bytes, self.memory_mb)))
            if queued and sum(len(d) for _, d in queued) + len(held[1]) > _AHEAD_BYTES:
                break
            w.send(held[1])
            queued.append(held)
            held = None
        return held

    def _lost(self, slot: int, w: _Worker, job: ExecJob, reply: object) -> ExecResult:
        """The running job's result when its worker died (`reply` None) or hung: the worker is killed."""
        tail = " ".join(w.stderr_tail().split())[-150:]
        w.kill()
        self._pool[slot] = None
        if reply is None:
            why = "the job killed its sandbox worker; worker restarted" + (f" ({tail})" if tail else "")
            return _failed(job, "killed", why)
        why = (
            f"the sandbox worker did not answer within {_GRACE_S:g} s of the job's "
            f"{job.timeout_s:g} s timeout (the job stopped or hung it); worker restarted"
        )
        return _failed(job, "timeout", why)

    def _result(self, job: ExecJob, reply: dict) -> ExecResult:
        """A worker's reply as the job's result (the reply itself in raw mode)."""
        if "internal_error" in reply:
            raise _WorkerError(
                f"sandbox worker failed on {job.task_id or 'a job'}: {reply['internal_error']}\n"
                f"{reply.get('traceback', '')}"
            )
        if self._raw:
            return reply  # type: ignore[return-value]
        if job.verdict is not None:
            reply = job.verdict(reply)  # the trusted judge, here in the scorer's process
        return ExecResult(**{k: reply[k] for k in _RESULT_FIELDS if k in reply})

    def run(
        self, jobs: Sequence[ExecJob], *, progress: bool = True, desc: str = "executing", raw: bool = False
    ) -> list[ExecResult]:
        """One ExecResult per job, in order. `raw=True` returns the worker's reply dicts instead (what
        `letitcode.scoring.judge` reads when it records a reference's calls)."""
        from tqdm import tqdm

        jobs = [self._check(i, j) for i, j in enumerate(jobs)]
        results: list[ExecResult | None] = [None] * len(jobs)
        if not jobs:
            return []
        with self._run_lock:
            self._raw = raw
            n = min(self.workers, len(jobs))
            # Start missing workers here, in parallel, from the calling thread: a worker dies with the
            # thread that started it (PR_SET_PDEATHSIG), and the serving threads below end with run().
            for slot in range(n):
                w = self._pool[slot]
                if w is None or not w.alive():
                    if w is not None:
                        w.kill()
                    self._pool[slot] = _Worker(_argv_for_slot(self._argv, slot), self._env)
            lock = threading.Lock()
            todo = iter(range(len(jobs)))
            errors: list[BaseException] = []
            bar = tqdm(total=len(jobs), desc=desc, disable=not progress, unit="job", dynamic_ncols=True)

            taken = [0]

            def take(ahead: bool) -> int | None:
                """The next job index; None when none is left, or when taking it to queue behind another
                job would leave a worker idle (fewer jobs left than workers)."""
                with lock:
                    if errors or (ahead and len(jobs) - taken[0] <= n):
                        return None
                    i = next(todo, None)
                    taken[0] += i is not None
                    return i

            def done(i: int, result: ExecResult) -> None:
                results[i] = result
                with lock:
                    bar.update(1)

            def serve(slot: int) -> None:
                try:
                    self._serve(slot, jobs, take, done)
                except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
                    with lock:
                        errors.append(e)

            threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in range(n)]
            try:
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            except BaseException:
                errors.append(KeyboardInterrupt())
                self.close()
                raise
            finally:
                bar.close()
            if errors:
                raise errors[0]
        if raw:
            return [r.to_dict() if isinstance(r, ExecResult) else r for r in results]  # type: ignore[return-value]
        return results  # type: ignore[return-value]

    def close(self) -> None:
        _close_pool(self._pool)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_jobs(jobs: Sequence[ExecJob], **kw) -> list[ExecResult]:
    """Run jobs in a fresh `Sandbox(**kw)` and close it."""
    progress = kw.pop("progress", True)
    desc = kw.pop("desc", "executing")
    with Sandbox(**kw) as sb:
        return sb.run(jobs, progress=progress, desc=desc)
