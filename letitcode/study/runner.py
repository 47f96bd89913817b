"""The study in one command: every approach of the brief on the same problems, then one report.

A plan (a preset in ``letitcode/templates/plans/``, linked as ``experiments/plans/``, or any YAML file) names
the model, the benchmarks, the SFT data, the arms (in-context strategies and fine-tuning methods) and which arms
each research question compares. Running it:

1. **prepare**: load every benchmark, pick one fixed set of task ids per benchmark (difficulty-stratified),
   decontaminate the SFT data against every problem that will be evaluated, split it by problem exactly as
   ``sft/train.py`` will, and measure contamination (13-gram overlap, temporal split) per benchmark;
2. **train**: one ``sft/train.py`` subprocess per fine-tuning arm (its own resume covers a kill mid-run);
3. **evaluate**: one subprocess per model (the in-context arms share the base model; each fine-tuned arm has
   its own) runs ``letitcode.pipeline.run_eval`` on every benchmark with the model loaded once, and records
   each arm's peak memory (GPU when there is one, in GiB); every training and evaluation subprocess is pinned
   to one GPU (``CUDA_VISIBLE_DEVICES``; it sees ``cuda:0``), and with ``serve`` each model is evaluated through
   one OpenAI-compatible server (vLLM, ``transformers serve`` or a command; ``letitcode/server.py``);
4. **collect**: every run goes into one result dataset (``OUTPUT_DIR/dataset``, what the leaderboard reads),
   and ``letitcode.study.report`` writes ``report.md`` and its PNGs.

Every unit leaves a done marker holding the fingerprint of its configuration; a rerun skips units whose
fingerprint matches, so a killed study resumes, and changing one arm in the plan redoes only that arm. The
output folder's layout is in ``letitcode/study/layout.py``; the plan format in ``letitcode/study/plan.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from letitcode.records import write_json
from letitcode.results.dataset import merge_into
from letitcode.study.layout import Timings, fmt_s, log, run_dir
from letitcode.study.plan import SFT_TRAIN, SFT_VALIDATION, ArmSpec, StudyPlan, load_plan
from letitcode.study.prepare import prepare
from letitcode.study.units import eval_arms_child, eval_groups, run_arm_evals, run_training, unit_device

# ------------------------------------------------------------------------------------------------ the study


def collect(plan: StudyPlan, prep: Mapping[str, Any], out: Path) -> Path:
    """Merge every run on a plan benchmark into OUTPUT_DIR/dataset (the overfitting probes stay out: they
    share a benchmark name with the heldout LeetCodeDataset runs and are diagnostics, not leaderboard rows)."""
    import shutil

    target = out / "dataset"
    if target.exists():
        shutil.rmtree(target)
    for arm in plan.arms:
        for bench in prep["order"]:
            if bench in (SFT_TRAIN, SFT_VALIDATION):
                continue
            merge_into(target, run_dir(out, arm.name, bench), title=f"LetItCode study: {plan.name}")
    return target


def run_study(plan: StudyPlan, out: str | Path, *, report: bool = True) -> Path:
    """Run (or resume) every unit of the plan, then write the report. Returns the report's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "plan.json", plan.to_dict())
    unit_device(plan)  # a plan device that is not there fails now, not after the preparation
    timings = Timings(out / "timings.json")
    t_start = time.perf_counter()
    t0 = time.perf_counter()
    prep = prepare(plan, out)
    timings.add("prepare", time.perf_counter() - t0)
    ft = [a for a in plan.arms if a.train]
    units: list[tuple[str, list[ArmSpec]]] = [("train", [a]) for a in ft] + [
        ("evaluate", g) for g in eval_groups(plan, out)
    ]
    for i, (kind, arms) in enumerate(units, 1):
        elapsed = time.perf_counter() - t_start
        log(f"unit {i}/{len(units)}: {kind} {'+'.join(a.name for a in arms)} (elapsed {fmt_s(elapsed)})")
        if kind == "train":
            run_training(plan, prep, arms[0], out, timings)
        else:
            run_arm_evals(plan, prep, arms, out, timings)
    log("collecting runs into one result dataset")
    collect(plan, prep, out)
    total = time.perf_counter() - t_start
    timings.data["_last_run_wall_s"] = round(total, 2)
    write_json(timings.path, timings.data)
    log(f"all units done in {fmt_s(total)} this run")
    if not report:
        return out
    from letitcode.study.report import write_report

    path = write_report(out)
    log(f"report: {path}")
    return path


# ------------------------------------------------------------------------------------------------ command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=None,  # the script name, or `letitcode study` from the console command
        description="Run the LetItCode study (ICL, SFT, RAG; every approach on the same problems) and write its report.",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--preset", default=None, help="a plan in experiments/plans/ (micro, embedded-cpu, gemma-7b, ...)"
    )
    which.add_argument("--plan", default=None, help="a plan YAML file")
    p.add_argument(
        "--output-dir", "--output_dir", required=True, help="where runs, the result dataset and report.md go"
    )
    p.add_argument(
        "--model", default=None, help="override the plan's model: embedded, ORG/NAME[@REV] or a local folder"
    )
    p.add_argument(
        "--dataset", default=None, help="override the plan's SFT data: a local file or Hub id[@REV]"
    )
    p.add_argument(
        "--data-dir",
        "--data_dir",
        default=None,
        help="what {data} in the plan means (default: $LETITCODE_DATA or ../shared/data)",
    )
    p.add_argument(
        "--report-only", action="store_true", help="only (re)write report.md from the finished runs"
    )
    p.add_argument("--dry-run", action="store_true", help="print the resolved plan and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.output_dir)
    if args.report_only:
        from letitcode.study.report import write_report

        print(f"wrote {write_report(out)}")
        return 0
    plan = load_plan(
        args.plan or args.preset or "embedded-cpu",
        data_dir=args.data_dir,
        model=args.model,
        sft_dataset=args.dataset,
    )
    if args.dry_run:
        print(json.dumps(plan.to_dict(), indent=2))
        return 0
    log(
        f"plan {plan.name} ({plan.source}): model {plan.model}, {len(plan.arms)} arms, "
        f"{len(plan.benchmarks)} benchmarks -> {out}"
    )
    if plan.estimate:
        log(f"expected duration: {plan.estimate.strip().splitlines()[0]}")
    path = run_study(plan, out)
    print(f"wrote {path}")
    return 0


def _child_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m letitcode.study.runner eval-arms")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--arm", action="append", required=True)
    p.add_argument(
        "--device", default=None, help="this unit's device (the parent pinned CUDA_VISIBLE_DEVICES)"
    )
    a = p.parse_args(argv)
    eval_arms_child(Path(a.output_dir), a.arm, a.device)
    return 0


if __name__ == "__main__":
    from letitcode.cli import run_main

    if len(sys.argv) > 1 and sys.argv[1] == "eval-arms":
        run_main(lambda: _child_main(sys.argv[2:]))
    else:
        run_main(main)
