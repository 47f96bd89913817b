"""Issue #13, classes 6-8: the fallback levels as root, state between samples, and no sample stops the run.

Each test names the class it guards; each failed on the code before these fixes (the 1,200-level tree stopped
the run with a RecursionError, the surrogate with a UnicodeEncodeError, the 40,000-term sum crashed the scorer
in CodeBLEU, the 10,000 open brackets took minutes in radon, a correct `import fractions` failed as nobody, a
forked job got one memory limit per process, /dev was a never-wiped tmpfs of half the RAM).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import REPO

from letitcode.extract import extract_code
from letitcode.records import GenerationCache, write_json, write_jsonl
from letitcode.sandbox import ExecJob, Sandbox
from letitcode.sandbox import worker as worker_module

LEVELS = ["bwrap", "unshare", "rlimits"]


@contextmanager
def box(level: str, workers: int = 1, **kw):
    try:
        sb = Sandbox(workers, isolation=level, **kw)
    except Exception as e:  # noqa: BLE001 - a level this machine cannot run
        pytest.skip(f"isolation {level!r} unusable here: {e}")
    with sb:
        yield sb


def job(program: str, test: str = "assert candidate() == 1", timeout: float = 10.0) -> ExecJob:
    return ExecJob(program=program, entry_point="f", test_list=(test,), timeout_s=timeout)


OK = job("def f():\n    return 1\n")

# ----------------------------------------------------------------------------- 8: no sample stops the run


@pytest.mark.parametrize("level", LEVELS)
def test_a_1200_level_tree_is_cleaned_and_the_run_goes_on(level: str) -> None:
    deep = job(
        "import os\ndef f():\n    for _ in range(1200):\n        os.mkdir('d')\n        os.chdir('d')\n"
        "    open('f', 'w').write('x')\n    return 1\n"
    )
    with box(level) as sb:
        first, second = sb.run([deep, job("import os\ndef f():\n    return len(os.listdir('.')) + 1\n")])
    assert first.status == "passed" and second.status == "passed", (first, second)


def test_cleanup_never_follows_a_link_and_does_not_recurse(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    tree = tmp_path / "tree"
    tree.mkdir()
    fd = os.open(tree, os.O_RDONLY)
    for _ in range(1500):  # deeper than the interpreter's recursion limit (and than PATH_MAX allows by name)
        os.mkdir("d", dir_fd=fd)
        sub = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = sub
    os.symlink(str(outside), "link", dir_fd=fd)
    os.close(fd)
    (tree / "link2").symlink_to(outside / "keep")
    locked = tree / "locked"
    locked.mkdir()
    (locked / "f").write_text("x")
    locked.chmod(0)
    worker_module._rmtree(str(tree))
    assert not tree.exists() and (outside / "keep").read_text() == "x"


def _score(samples: list[dict], out: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    path = out.parent / f"{out.name}.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    cmd = [sys.executable, str(REPO / "evaluate" / "score.py"), "--benchmark", "humaneval"]
    cmd += ["--samples", str(path), "--output-dir", str(out), "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def test_hostile_samples_get_verdicts_and_the_run_finishes(tmp_path: Path) -> None:
    samples = [
        {"task_id": "HumanEval/0", "completion": "    return False  # \ud800 a lone surrogate\n"},
        {"task_id": "HumanEval/1", "completion": "    return " + "+".join(["1"] * 40000) + "\n"},
        {"task_id": "HumanEval/2", "completion": "    return " + "(" * 150 + "1" + ")" * 150 + "\n"},
        {"task_id": "HumanEval/3", "completion": "```python\n" + "x = (\n" * 10000 + "```"},
    ]
    t = time.monotonic()
    proc = _score(samples, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert time.monotonic() - t < 120
    records = [json.loads(x) for x in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in records] == [s["task_id"] for s in samples]
    assert all(r["status"] != "passed" for r in records)
    assert (tmp_path / "out" / "dataset").is_dir()  # the Parquet dataset took the surrogate too


def test_extraction_is_linear_in_the_answer() -> None:
    broken = "```python\n" + "def f(:\n    x = [\n" * 3000 + "```"  # ~60 KB that never parses
    t = time.perf_counter()
    ext = extract_code(broken, "f")
    assert time.perf_counter() - t < 2.0
    assert ext.code is not None  # kept as it is: the sandbox reports its syntax error


# ----------------------------------------------------------------------------- 7: state between samples


def test_dev_is_capped_and_emptied_between_jobs_under_bwrap() -> None:
    fill = job(
        "def f():\n    import errno\n    try:\n        open('/dev/fill', 'wb').write(b'x' * (8 << 20))\n"
        "    except OSError as e:\n        assert e.errno == errno.ENOSPC\n        return 1\n    return 0\n"
    )
    look = job("import os\ndef f():\n    return int(not os.path.exists('/dev/fill'))\n")
    shm = job(
        "def f():\n    for i in range(3):\n        open(f'/dev/shm/fill{i}', 'wb').write(b'x' * (5 << 20))\n    return 1\n"
    )
    after = job("import os\ndef f():\n    open('/dev/shm/ok', 'wb').write(b'x' * (8 << 20))\n    return 1\n")
    with box("bwrap") as sb:
        results = sb.run([fill, look, shm, after, OK])
    assert [r.status for r in results] == ["passed"] * 5, [(r.status, r.error) for r in results]


@pytest.mark.parametrize("level", LEVELS)
def test_memory_is_limited_per_job_not_per_process(level: str) -> None:
    forks = job(
        "import os, time\ndef f():\n    for _ in range(6):\n        if os.fork() == 0:\n"
        "            b = bytearray(150 << 20)\n            b[::4096] = b'1' * len(b[::4096])\n"
        "            time.sleep(4)\n            os._exit(0)\n    time.sleep(3)\n    return 1\n",
        timeout=8,
    )
    with box(level, memory_mb=512) as sb:
        r, ok = sb.run([forks, OK])
    assert r.status == "memory_limit" and ok.status == "passed", (r, ok)


# ----------------------------------------------------------------------------- 6: fallback levels as root

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the fallback levels drop privileges only as root")


@needs_root
@pytest.mark.parametrize("level", LEVELS)
def test_correct_solutions_import_the_whole_stdlib(level: str) -> None:
    imports = (
        "import fractions, statistics, decimal, threading, asyncio, json, sqlite3, xml.etree.ElementTree"
    )
    prog = f"{imports}\nimport concurrent.futures, email.mime.text\ndef f():\n    return fractions.Fraction(2, 2)\n"
    with box(level) as sb:
        (r,) = sb.run([job(prog)])
    assert r.status == "passed", r


@needs_root
@pytest.mark.parametrize("level", ["unshare", "rlimits"])
def test_kill_minus_one_does_not_reach_another_workers_job(level: str) -> None:
    slow = job("import time\ndef f():\n    time.sleep(2.5)\n    return 1\n", timeout=8)
    killer = job(
        "import os, signal, time\ndef f():\n    time.sleep(0.5)\n    try:\n        os.kill(-1, signal.SIGKILL)\n"
        "    except OSError:\n        pass\n    return 1\n",
        timeout=8,
    )
    with box(level, workers=2) as sb:
        results = sb.run([slow, killer])
    assert results[0].status == "passed", results[0]


@needs_root
@pytest.mark.parametrize("level", ["unshare", "rlimits"])
def test_a_job_cannot_reach_another_workers_folder(level: str) -> None:
    # worker 0's job folder is <its tmp>/job; a job of worker 1 tries every such folder it can see
    probe = job(
        "import glob, os, time\ndef f():\n    time.sleep(0.3)\n    hits = 0\n"
        "    for d in glob.glob('/tmp/letitcode-sandbox-*/job') + ['/tmp/job']:\n"
        "        if os.path.realpath(d) == os.getcwd():\n            continue  # its own\n"
        "        try:\n            os.symlink('/etc/passwd', os.path.join(d, 'planted'))\n            hits += 1\n"
        "        except OSError:\n            pass\n    return hits + 1\n",
        timeout=8,
    )
    slow = job("import time\ndef f():\n    time.sleep(1.5)\n    return 1\n", timeout=8)
    with box(level, workers=2) as sb:
        results = sb.run([slow, probe])
    assert [r.status for r in results] == ["passed", "passed"], [(r.status, r.error) for r in results]


@needs_root
def test_host_unix_sockets_are_hidden_at_unshare(tmp_path: Path) -> None:
    import socket

    run_dir = Path("/run")
    if not run_dir.is_dir():
        pytest.skip("no /run here")
    path = run_dir / f"letitcode-test-{os.getpid()}.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    try:
        probe = job(
            f"import socket\ndef f():\n    s = socket.socket(socket.AF_UNIX)\n    try:\n"
            f"        s.connect({str(path)!r})\n        return 0\n    except OSError:\n        return 1\n"
        )
        with box("unshare") as sb:
            (r,) = sb.run([probe])
    finally:
        server.close()
        path.unlink(missing_ok=True)
    assert r.status == "passed", r


def test_outputs_are_never_written_through_a_planted_link(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("precious")
    out = tmp_path / "shared-output"
    out.mkdir()
    out.chmod(0o1777)
    for name in ("samples.jsonl.tmp", "results.json.tmp", ".samples.jsonl.tmp"):
        (out / name).symlink_to(target)
    write_jsonl(out / "samples.jsonl", [{"a": 1}])
    write_json(out / "results.json", {"b": 2})
    assert target.read_text() == "precious"
    assert (
        json.loads((out / "results.json").read_text()) == {"b": 2} and not (out / "results.json").is_symlink()
    )
    (out / "generations.jsonl").symlink_to(target)
    from letitcode.errors import UserError

    with pytest.raises(UserError, match="symbolic link"):
        GenerationCache(out / "generations.jsonl")
    assert target.read_text() == "precious"
