"""Sandbox tests: the basic verdicts, then one test per threat (see design.md "Sandbox").

Every job is tiny; the whole file runs in well under a minute. Tests that need the namespaces of
bubblewrap (network, read-only filesystem, masked home) skip with the reason when it is unusable.
"""

from __future__ import annotations

import os
import resource
import secrets
import shutil
import socket
import sys
import textwrap
from pathlib import Path

import pytest

from letitcode.data.problem import ExecJob
from letitcode.errors import UserError
from letitcode.sandbox import STATUSES, ExecResult, Sandbox, run_jobs, worker

REPO = Path(__file__).resolve().parents[1]


def job(
    program: str,
    tests: tuple[str, ...] = ("assert candidate() == 1",),
    *,
    check: str = "",
    entry: str = "f",
    timeout: float = 5.0,
) -> ExecJob:
    return ExecJob(
        program=textwrap.dedent(program),
        entry_point=entry,
        test_list=() if check else tests,
        check_code=textwrap.dedent(check),
        timeout_s=timeout,
        task_id="t",
    )


@pytest.fixture(scope="module")
def sb():
    with Sandbox(2, memory_mb=1024) as s:
        yield s


@pytest.fixture(scope="module")
def sb_rlimits():
    with Sandbox(2, memory_mb=1024, isolation="rlimits") as s:
        yield s


def need_bwrap(sb: Sandbox) -> None:
    if sb.isolation != "bwrap":
        pytest.skip(f"needs bubblewrap; isolation in force here is {sb.isolation!r}")


def run1(sb: Sandbox, j: ExecJob) -> ExecResult:
    return sb.run([j], progress=False)[0]


def host_procs_with(token: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmd:
            found.append(f"{pid}: {cmd[:120]!r}")
    return found


# --------------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------------
def check_basic_verdicts(sb: Sandbox) -> None:
    add = "def add(a, b):\n    return a + b\n"
    tests = ("assert candidate(1, 2) == 3", "assert candidate(2, 2) == 5", "assert candidate(0, 0) == 0")
    jobs = [
        job(add, tests[:1] + tests[2:], entry="add"),
        job(add, tests, entry="add"),
        job("def f(xs):\n    return xs[10]\n", ("assert candidate([1]) == 1", "assert candidate([2]) == 2")),
        job("def add(a, b) return a + b", tests, entry="add"),
        job("def g():\n    return 1\n"),  # entry point missing
        job(add, check="def check(c):\n    assert c(1, 2) == 3\n    assert c(-1, 1) == 0\n", entry="add"),
        job(add, check="def check(c):\n    assert c(1, 2) == 4\n", entry="add"),
        job(
            "def f():\n    print('hello from f')\n    return 1\nif __name__ == '__main__':\n    raise SystemExit(3)\n"
        ),
        job("def f():\n    return f()\n"),
        job(
            "class Solution:\n    def two(self, n):\n        return 2 * n\n",
            ("assert candidate(2) == 4",),
            entry="Solution().two",
        ),
    ]
    r = sb.run(jobs, progress=False)
    assert all(x.status in STATUSES for x in r)
    assert (r[0].status, r[0].passed, r[0].tests_passed, r[0].tests_total, r[0].error) == (
        "passed",
        True,
        2,
        2,
        "",
    )
    assert (r[1].status, r[1].passed, r[1].tests_passed, r[1].tests_total) == ("wrong_answer", False, 2, 3)
    assert r[1].first_failure == tests[1] and r[1].exception_type == "AssertionError"
    assert (r[2].status, r[2].exception_type, r[2].tests_passed) == ("runtime_error", "IndexError", 0)
    assert (
        r[2].error == "IndexError: list index out of range"
        and r[2].first_failure == "assert candidate([1]) == 1"
    )
    assert (r[3].status, r[3].exception_type, r[3].tests_passed) == ("syntax_error", "SyntaxError", 0)
    assert (r[4].status, r[4].exception_type) == ("runtime_error", "NameError") and "'f'" in r[4].error
    assert (r[5].status, r[5].tests_passed, r[5].tests_total) == ("passed", 1, 1)
    assert (r[6].status, r[6].first_failure, r[6].tests_total) == ("wrong_answer", "check(candidate)", 1)
    assert r[7].passed and "hello from f" in r[7].stdout  # the __main__ block did not run
    assert (r[8].status, r[8].exception_type) == ("runtime_error", "RecursionError")
    assert r[9].passed
    assert all(len(x.error) <= 300 and "\n" not in x.error for x in r)
    assert r[0].to_dict()["status"] == "passed" and set(r[0].to_dict()) == set(
        ExecResult.__dataclass_fields__
    )


def test_basic_verdicts(sb):
    check_basic_verdicts(sb)


def test_rlimits_fallback_basic_verdicts(sb_rlimits):
    assert sb_rlimits.isolation == "rlimits"
    check_basic_verdicts(sb_rlimits)


def test_fallback_when_bwrap_is_missing_warns_once_and_says_so(monkeypatch, capfd):
    from letitcode.sandbox import isolation

    real_which = isolation.shutil.which
    monkeypatch.setattr(isolation.shutil, "which", lambda name: None if name == "bwrap" else real_which(name))
    monkeypatch.setattr(isolation, "_warned", set())
    with pytest.raises(UserError, match="bubblewrap"):
        Sandbox(1, isolation="bwrap")
    with Sandbox(1) as first, Sandbox(1) as second:
        assert first.isolation == second.isolation and first.isolation in ("unshare", "rlimits")
        assert first.run([job("def f():\n    return 1\n")], progress=False)[0].passed
    err = capfd.readouterr().err
    assert err.count("WARNING: letitcode.sandbox") == 1 and "bwrap not found" in err


def test_probe_worker_becomes_the_first_pool_worker(monkeypatch):
    from letitcode.sandbox import pool as sandbox

    monkeypatch.setattr(sandbox, "_probe_cache", {})
    monkeypatch.setattr(sandbox, "_spare", {})
    with Sandbox(2) as first:
        probed = first._pool[0]
        assert probed is not None and probed.alive() and first._pool[1] is None and not sandbox._spare
        pid = probed.proc.pid
        assert [r.status for r in first.run([job("def f():\n    return 1\n")] * 3, progress=False)] == [
            "passed"
        ] * 3
        assert first._pool[0].proc.pid == pid  # the probe's worker served jobs instead of being replaced
    with Sandbox(1) as second:  # the verdict is cached: no new probe, so no spare worker either
        assert second._pool[0] is None
        assert second.run([job("def f():\n    return 1\n")], progress=False)[0].passed


def test_prestarted_worker_is_probed_and_serves_the_first_pool(monkeypatch):
    """evaluate/score.py starts the probe's worker before it loads anything (prestart)."""
    from letitcode.sandbox import pool as sandbox

    monkeypatch.setattr(sandbox, "_probe_cache", {})
    monkeypatch.setattr(sandbox, "_spare", {})
    monkeypatch.setattr(sandbox, "_pending", {})
    started = []
    real = sandbox._Worker

    class Counting(real):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            started.append(self)

    monkeypatch.setattr(sandbox, "_Worker", Counting)
    sandbox.prestart("rlimits")
    assert len(started) == 1 and len(sandbox._pending) == 1
    sandbox.prestart("rlimits")  # once is enough: a second call starts nothing
    assert len(started) == 1
    with Sandbox(1, isolation="rlimits") as box:  # a level that works everywhere
        assert not sandbox._pending and len(started) == 1  # the probe used the prestarted worker
        assert box._pool[0] is started[0]
        assert box.run([job("def f():\n    return 1\n")], progress=False)[0].passed
    sandbox.prestart("rlimits")  # this command's verdict is known now: nothing to start ahead
    assert len(started) == 1 and not sandbox._pending


def test_order_is_kept_across_workers(sb):
    jobs = [
        job(
            f"import time\ndef f():\n    time.sleep({0.05 if i % 3 == 0 else 0})\n    return {i}\n",
            (f"assert candidate() == {i}",),
        )
        for i in range(12)
    ]
    assert [x.status for x in sb.run(jobs, progress=False)] == ["passed"] * 12


def test_two_slow_jobs_run_in_parallel_on_two_workers(sb):
    code = "import time\nprint(time.time())\ntime.sleep(0.6)\nprint(time.time())\ndef f():\n    return 1\n"
    r = sb.run([job(code)] * 2, progress=False)
    assert [x.status for x in r] == ["passed"] * 2
    (a0, a1), (b0, b1) = ([float(t) for t in x.stdout.split()] for x in r)
    assert a0 < b1 and b0 < a1  # the two runs overlapped: not queued one behind the other on one worker


def test_bad_input_is_a_user_error(sb):
    with pytest.raises(UserError, match="job 0: expected an ExecJob"):
        sb.run(["print(1)"], progress=False)  # type: ignore[list-item]
    with pytest.raises(UserError, match="no tests"):
        sb.run([ExecJob(program="x = 1", entry_point="x", task_id="HumanEval/0")], progress=False)
    with pytest.raises(UserError, match="isolation"):
        Sandbox(1, isolation="docker")
    with pytest.raises(UserError, match="memory_mb"):
        Sandbox(1, memory_mb=0)


# --------------------------------------------------------------------------------------------------
# Threats: faking success
# --------------------------------------------------------------------------------------------------
def test_sys_exit_is_not_success(sb):
    r = sb.run(
        [
            job("import sys\nsys.exit(0)\ndef f():\n    return 1\n"),
            job("import sys\ndef f():\n    sys.exit(0)\n"),
            job("def f():\n    exit()\n"),
        ],
        progress=False,
    )
    assert [(x.status, x.exception_type, x.passed) for x in r] == [("runtime_error", "SystemExit", False)] * 3
    assert r[1].first_failure == "assert candidate() == 1"


def test_os_exit_is_killed_not_passed(sb):
    r = sb.run(
        [
            job("import os\nos._exit(0)\n"),
            job(
                "import os\ndef f(x):\n    if x == 2:\n        os._exit(0)\n    return x\n",
                ("assert candidate(1) == 1", "assert candidate(2) == 2", "assert candidate(3) == 3"),
            ),
        ],
        progress=False,
    )
    assert (r[0].status, r[0].passed) == ("killed", False)
    assert "exited with code 0" in r[0].error
    assert (r[1].status, r[1].passed, r[1].tests_passed, r[1].tests_total) == ("killed", False, 1, 3)
    assert r[1].first_failure == "assert candidate(2) == 2"


def test_atexit_hook_and_forged_reports_do_not_pass(sb):
    forge = """
        import atexit, os, sys
        def forge():
            mac = "\\t" + "0" * 64 + "\\n"  # a well-formed report for one passing test, without the key
            line = ("%d\\tT\\t0\\t1\\t\\t" % os.getpid() + mac + "%d\\tF" % os.getpid() + mac).encode()
            for fd in range(3, 64):
                try:
                    os.write(fd, line)
                except OSError:
                    pass
            print("passed")
            sys.stdout.flush()
        atexit.register(forge)
    """
    forge = textwrap.dedent(forge)
    r = sb.run(
        [job(forge + "def f():\n    return 2\n"), job(forge + "def f():\n    forge()\n    os._exit(0)\n")],
        progress=False,
    )
    assert (r[0].status, r[0].passed) == ("wrong_answer", False)
    assert (r[1].status, r[1].passed) == ("killed", False)


def test_grandchild_carrying_on_the_harness_is_not_believed(sb):
    # The forked copy runs the real harness (same key in memory) but is not the process the worker forked.
    r = run1(
        sb,
        job(
            "import os\npid = os.fork()\nif pid:\n    os.waitpid(pid, 0)\n    os._exit(0)\n"
            "def f():\n    return 1\n"
        ),
    )
    assert (r.status, r.passed) == ("killed", False)


def test_patched_builtins_do_not_skip_tests(sb):
    r = run1(
        sb,
        job(
            "import builtins\nbuiltins.exec = lambda *a, **k: None\nbuiltins.compile = lambda *a, **k: None\n"
            "def f():\n    return 2\n"
        ),
    )
    assert r.status == "wrong_answer"


def test_report_authentication_unit():
    key = secrets.token_bytes(worker.KEY_BYTES)
    good = b"123\tF"
    raw = good + b"\t" + worker._mac(key, good).encode() + b"\n"
    assert worker._parse_report(raw, key, 123) == [[b"F"]]
    assert worker._parse_report(raw, key, 124) == []  # another process
    assert worker._parse_report(raw, secrets.token_bytes(32), 123) == []  # another key
    assert worker._parse_report(b"123\tF\t" + b"0" * 64 + b"\n", key, 123) == []


# --------------------------------------------------------------------------------------------------
# Threats: resources
# --------------------------------------------------------------------------------------------------
def test_infinite_loop_times_out_quickly(sb):
    r = sb.run(
        [
            job("def f():\n    while True:\n        pass\n", timeout=1),
            job("import time\ndef f():\n    time.sleep(60)\n", timeout=1),
        ],
        progress=False,
    )
    for x in r:
        assert (x.status, x.passed) == ("timeout", False)
        assert x.duration_s < 3


def test_memory_bomb():
    with Sandbox(1, memory_mb=256) as small:
        r = small.run(
            [
                job("def f():\n    return len(bytearray(1 << 30))\n"),
                job("def f():\n    xs = []\n    while True:\n        xs.append(bytearray(1 << 24))\n"),
                job("def f():\n    return 1\n"),
            ],
            progress=False,
        )
    assert [(x.status, x.exception_type) for x in r[:2]] == [("memory_limit", "MemoryError")] * 2
    assert r[2].passed  # the worker is fine afterwards


@pytest.mark.parametrize("level", ["auto", "rlimits"])
def test_fork_fanout_with_setsid_leaves_nothing_behind(level, sb, sb_rlimits):
    box = sb if level == "auto" else sb_rlimits
    token = str(secrets.randbelow(10**9) + 10**9)
    program = f"""
        import os, sys, time
        def spawn(argv):
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    os.execv(argv[0], argv)
                os._exit(0)
        for _ in range(3):
            spawn(["/bin/sleep", "1000.{token}"])
            spawn([sys.executable, "-c", "import time; time.sleep(1000)  # {token}"])
        def alive():
            n = 0
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    n += "{token}" in open(f"/proc/{{pid}}/cmdline").read()
                except OSError:
                    pass
            return n
        for _ in range(100):
            if alive() >= 6:
                break
            time.sleep(0.02)
    """
    program = textwrap.dedent(program)
    r = box.run(
        [
            job(program + "def f():\n    return int(alive() >= 6)\n"),
            job(program + "def f():\n    time.sleep(60)\n", timeout=1),
        ],
        progress=False,
    )
    assert [x.status for x in r] == ["passed", "timeout"]
    assert host_procs_with(token) == []


def test_fork_bomb_is_stopped(sb):
    if sb.isolation == "rlimits":
        pytest.skip("isolation 'rlimits' has no pid namespace to count processes in")
    r = sb.run(
        [
            job(
                "import os, time\ndef f():\n    for _ in range(8):\n        os.fork()\n    time.sleep(5)\n",
                timeout=3,
            ),
            job("def f():\n    return 1\n"),
        ],
        progress=False,
    )
    assert (r[0].status, r[0].passed) == ("killed", False) and "processes" in r[0].error
    assert r[0].duration_s < 2 and r[1].passed


def test_output_flood_is_bounded(sb):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = sb.run(
        [
            job("import sys\ndef f():\n    while True:\n        sys.stdout.write('x' * 65536)\n", timeout=1),
            job(
                "import sys\nfor _ in range(400):\n    sys.stderr.write('y' * 65536)\nprint('E' * 10 + 'END')\n"
                "def f():\n    return 1\n"
            ),
        ],
        progress=False,
    )
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert r[0].status == "timeout" and 0 < len(r[0].stdout) <= 65536
    assert r[1].passed and r[1].stdout.endswith("END\n") and len(r[1].stderr) <= 65536
    assert grown_mb < 50, f"scorer grew by {grown_mb:.0f} MB"


def test_job_that_kills_its_worker_is_killed_and_the_next_one_runs():
    with Sandbox(1) as one:
        r = one.run(
            [
                job("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\ndef f():\n    return 1\n"),
                job("def f():\n    return 1\n"),
            ],
            progress=False,
        )
    assert (r[0].status, r[0].passed) == ("killed", False)
    assert r[1].passed


def test_job_that_stops_its_worker_times_out_and_the_next_one_runs(monkeypatch):
    from letitcode.sandbox import pool

    monkeypatch.setattr(pool, "_GRACE_S", 1.0)
    with Sandbox(1) as one:
        r = one.run(
            [
                job("import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\n", timeout=0.5),
                job("def f():\n    return 1\n"),
            ],
            progress=False,
        )
    assert (r[0].status, r[0].passed) == ("timeout", False) and "did not answer" in r[0].error
    assert r[1].passed


# --------------------------------------------------------------------------------------------------
# Threats: escaping
# --------------------------------------------------------------------------------------------------
def test_network_is_unreachable(sb):
    if sb.isolation == "rlimits":
        pytest.skip("isolation 'rlimits' has no network namespace")
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(0.5)
        port = srv.getsockname()[1]
        r = run1(
            sb,
            job(
                f"import socket\ndef f():\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                "    return 1\n"
            ),
        )
        assert (r.status, r.passed) == ("runtime_error", False)
        assert r.exception_type in ("ConnectionRefusedError", "OSError", "TimeoutError")
        with pytest.raises(TimeoutError):
            srv.accept()


def test_writes_outside_the_private_dir_fail(sb):
    need_bwrap(sb)
    name = f"letitcode-sandbox-probe-{secrets.token_hex(6)}"
    targets = [REPO / "tests" / name, Path("/etc") / name, Path("/tmp") / name, Path("/var/tmp") / name]
    program = f"""
        import os
        def f():
            assert os.getcwd() == os.environ["HOME"] and os.getcwd().startswith("/tmp/")
            with open("inside.txt", "w") as fh:
                fh.write("ok")
            escaped = []
            for path in {[str(t) for t in targets]!r}:
                try:
                    with open(path, "w") as fh:
                        fh.write("escaped")
                    escaped.append(path)
                except OSError:
                    pass
            return escaped
    """
    try:
        r = run1(sb, job(program, (f"assert candidate() == ['/tmp/{name}']",)))
        assert r.passed, r  # only the private /tmp took the write
        assert [t for t in targets if t.exists()] == []
    finally:
        for t in targets:
            t.unlink(missing_ok=True)


@pytest.mark.parametrize("level", ["bwrap", "unshare", "rlimits"])
def test_a_job_finds_nothing_that_the_previous_job_left(level):
    """One worker runs both jobs: the second gets the same folder back, empty, whatever the first left in
    it (files, a folder it made unreadable and unwritable), in /tmp or in /dev/shm."""
    tag = secrets.token_hex(6)
    leave = f"""
        import os, tempfile
        def f():
            assert os.getcwd() == os.environ["HOME"] == os.environ["TMPDIR"] == tempfile.gettempdir()
            print(os.getcwd())
            os.makedirs("locked/inner")
            for name in ("a.txt", "locked/b.txt", "locked/inner/c.txt"):
                open(name, "w").write("left")
            os.chmod("locked/inner", 0)
            os.chmod("locked", 0o500)
            for base in ("/tmp", "/dev/shm"):
                try:
                    open(os.path.join(base, "left-{tag}"), "w").write("left")
                except OSError:
                    pass
            return 1
    """
    find = f"""
        import os, tempfile
        def f():
            assert os.getcwd() == os.environ["HOME"] == os.environ["TMPDIR"] == tempfile.gettempdir()
            print(os.getcwd())
            left = [b for b in ("/tmp", "/dev/shm") if os.path.exists(b + "/left-{tag}")]
            return os.listdir("."), left
    """
    expect_left = "[]" if level == "bwrap" else "candidate()[1]"  # /tmp is the host's at the fallback levels
    try:
        with level_box(level) as box:
            first, second = box.run(
                [job(leave), job(find, (f"assert candidate() == ([], {expect_left})",))], progress=False
            )
    finally:
        for base in ("/tmp", "/dev/shm"):
            Path(base, f"left-{tag}").unlink(missing_ok=True)
    assert first.passed, first
    assert second.passed, second
    # The same folder both times: the locked one was removed, not left behind for a fresh name.
    assert first.stdout.split() == second.stdout.split()[:1]


def test_clean_keeps_what_was_there_before_the_first_job(tmp_path):
    """Under bubblewrap a checkout or venv in /tmp is bound back read-only into the private /tmp: the
    worker leaves such entries alone instead of walking them after every job."""
    tmp, shm = tmp_path / "tmp", tmp_path / "shm"
    for d in (tmp / "venv-bound-back" / "lib", shm):
        d.mkdir(parents=True)
    (tmp / "venv-bound-back" / "lib" / "x.py").write_text("")
    cfg = {"tmp": str(tmp), "jobdir": str(tmp / worker.JOB_DIR), "clean_tmp": True}
    cfg["tmp_keep"] = {str(tmp): {"venv-bound-back"}, str(shm): set()}
    jobdir = worker._make_jobdir(cfg)
    assert jobdir == cfg["jobdir"]
    for p in (Path(jobdir) / "sub" / "f", tmp / "stray" / "g", tmp / "h", shm / "i"):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("left")
    worker._clean(jobdir, cfg)
    assert sorted(os.listdir(tmp)) == ["venv-bound-back"] and os.listdir(shm) == []
    assert (tmp / "venv-bound-back" / "lib" / "x.py").exists()


def test_a_job_folder_that_cannot_be_removed_gets_a_fresh_one(tmp_path):
    cfg = {"tmp": str(tmp_path), "jobdir": str(tmp_path / worker.JOB_DIR)}
    assert worker._make_jobdir(cfg) == cfg["jobdir"]
    other = worker._make_jobdir(cfg)  # the usual one is still there
    assert other != cfg["jobdir"] and Path(other).is_dir() and Path(other).parent == tmp_path


def test_rmtree_goes_through_locked_folders(tmp_path):
    top = tmp_path / "job"
    (top / "locked" / "inner").mkdir(parents=True)
    (top / "locked" / "inner" / "c.txt").write_text("x")
    (top / "locked" / "b.txt").write_text("x")
    os.chmod(top / "locked" / "inner", 0)
    os.chmod(top / "locked", 0o500)
    worker._rmtree(str(top))
    assert not top.exists() and tmp_path.exists()


def test_worker_warm_up_runs_and_fails_its_own_check():
    worker._warm_up()  # raises if the trusted check did not fail as written


def test_environment_secrets_are_not_visible(monkeypatch):
    secret = "hf_" + secrets.token_hex(12)
    for name in ("HF_TOKEN", "OPENAI_API_KEY", "MY_SERVICE_SECRET", "GITHUB_TOKEN"):
        monkeypatch.setenv(name, secret)
    program = f"""
        import os
        def f():
            seen = [k for k, v in os.environ.items() if {secret!r} in v or "TOKEN" in k or "KEY" in k]
            for pid in ("self", "1"):
                try:
                    if {secret!r}.encode() in open(f"/proc/{{pid}}/environ", "rb").read():
                        seen.append(pid)
                except OSError:
                    pass
            return seen
    """
    with Sandbox(1) as box:
        r = run1(box, job(program, ("assert candidate() == []",)))
    assert r.passed, r


def test_credential_files_are_masked(monkeypatch):
    base = Path("/var/tmp")
    if not os.access(base, os.W_OK):
        pytest.skip("/var/tmp is not writable")
    hf_home = base / f"letitcode-hf-{secrets.token_hex(6)}"
    hf_home.mkdir()
    try:
        (hf_home / "token").write_text("hf_secret_token_value")
        monkeypatch.setenv("HF_HOME", str(hf_home))
        with Sandbox(1) as box:
            need_bwrap(box)
            r = run1(
                box,
                job(
                    f"def f():\n    return open({str(hf_home / 'token')!r}).read()\n",
                    ("assert candidate() == ''",),
                ),
            )
        assert (r.status, r.exception_type) == ("runtime_error", "FileNotFoundError"), r
        # The home directory is masked: only the path down to the interpreter is put back.
        home = os.path.realpath(os.path.expanduser("~"))
        needed = {
            os.path.relpath(p, home).split(os.sep)[0]
            for p in (sys.prefix, sys.base_prefix, os.path.realpath(sys.executable))
            if os.path.realpath(p).startswith(home + os.sep)
        }
        with Sandbox(1) as box:
            r = run1(
                box,
                job(
                    f"import os\ndef f():\n    return sorted(os.listdir({home!r}))\n",
                    (f"assert set(candidate()) <= {needed!r}",),
                ),
            )
        assert r.passed, r
    finally:
        (hf_home / "token").unlink(missing_ok=True)
        hf_home.rmdir()


# --------------------------------------------------------------------------------------------------
# The fallback levels (no bubblewrap): verdicts and what model code can still reach
# --------------------------------------------------------------------------------------------------
def level_box(level: str) -> Sandbox:
    import shutil

    if level == "bwrap" and not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed")
    try:
        return Sandbox(1, memory_mb=1024, isolation=level)
    except UserError as e:
        pytest.skip(f"isolation {level!r} is not usable here: {e}")


@pytest.mark.parametrize("level", ["bwrap", "unshare", "rlimits"])
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_job_that_signals_its_worker_never_passes_on_wrong_code(level, sig):
    """In a pid namespace the worker is init, which ignores such signals from inside; as an unprivileged uid the
    job may not signal it at all: either way the verdict is the job's own, and the pool carries on."""
    kill = f"import os, signal\ntry:\n    os.kill(os.getppid(), signal.{sig})\nexcept OSError:\n    pass\n"
    with level_box(level) as box:
        r = box.run(
            [
                job(kill + "def f():\n    return 2\n"),
                job(kill + "def f():\n    return 1\n"),
                job("def f():\n    return 1\n"),
            ],
            progress=False,
        )
    assert not r[0].passed and r[0].status in ("killed", "wrong_answer"), r[0]
    assert r[1].status in ("killed", "passed"), r[1]  # passed only when its tests ran to their end
    assert r[1].passed == (r[1].status == "passed") and r[2].passed


@pytest.mark.parametrize("level", ["unshare", "rlimits"])
def test_fallback_levels_run_jobs_unprivileged_when_root(level):
    if os.geteuid() != 0:
        pytest.skip("the scorer is not root: jobs already run as its own unprivileged user")
    import tempfile

    shelf = Path(tempfile.mkdtemp(prefix="letitcode-shelf-"))  # in the world-traversable temp folder
    try:
        shelf.chmod(0o711)
        token = shelf / "token"
        token.write_text("hf_secret_token_value")
        token.chmod(0o600)  # as ~/.cache/huggingface/token is: only the file's own mode protects it
        with level_box(level) as box:
            uid = sandbox_uid()
            who = box.run(
                [
                    job(
                        "import os\ndef f():\n    return os.geteuid(), os.getegid(), os.getgroups()\n",
                        (f"assert candidate() == ({uid}, {uid}, [])",),
                    )
                ],
                progress=False,
            )[0]
            assert who.passed, who  # checked first: the kill(-1) job below is only safe as nobody
            r = box.run(
                [
                    job(f"def f():\n    return open({str(token)!r}).read()\n", ("assert candidate() == ''",)),
                    job(
                        "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n"
                        "def f():\n    return 1\n"
                    ),
                    job(
                        "import os, time\ndef f():\n    for _ in range(8):\n        os.fork()\n    time.sleep(5)\n",
                        timeout=3,
                    ),
                    job("def f():\n    return 1\n"),
                ],
                progress=False,
            )
    finally:
        shutil.rmtree(shelf, ignore_errors=True)
    # unreadable as nobody; at unshare the host's /tmp is not even there (the worker's private /tmp)
    assert r[0].status == "runtime_error" and r[0].exception_type in (
        "PermissionError",
        "FileNotFoundError",
    ), r[0]
    # kill(-1) as nobody reaches only nobody's processes: this test process is still here to check.
    assert r[1].status in ("passed", "killed"), r[1]
    assert not r[2].passed and r[2].duration_s < 4, r[2]  # RLIMIT_NPROC holds per uid
    assert r[3].passed


def sandbox_uid() -> int:
    from letitcode.sandbox.isolation import NOBODY_UID

    return NOBODY_UID


def test_run_jobs_convenience():
    r = run_jobs([job("def f():\n    return 1\n")], workers=1, progress=False)
    assert r[0].passed and sys.executable  # smoke: the one-call form opens and closes a pool
