"""Loading the study's result files into one `Study`; a missing or broken file is an error naming it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from letitcode.errors import UserError
from letitcode.results.tables import Run, load_runs
from letitcode.study.layout import DONE, run_dir, train_dir
from letitcode.study.plan import StudyPlan
from letitcode.study.prepare import primary_benchmark


@dataclass
class Study:
    out: Path
    plan: StudyPlan
    prep: dict[str, Any]
    runs: dict[tuple[str, str], Run]  # (arm, benchmark label) -> run
    training: dict[str, dict[str, Any]]  # arm -> {"manifest", "log_history", "done"}
    memory: dict[str, dict[str, Any]]  # arm -> memory.json
    timings: dict[str, Any]
    primary: str = ""
    benches: list[str] = field(default_factory=list)  # every evaluated benchmark label, in plan order

    def run(self, arm: str, bench: str) -> Run:
        return self.runs[(arm, bench)]

    def has(self, bench: str) -> bool:
        return bench in self.benches


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise UserError(
            f"report: missing result {path} ({what}); rerun the study with the same --output-dir to finish it"
        )
    return path


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(_need(path, what).read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"report: {path} ({what}) is not valid JSON: {e.msg}") from e


def _require_keys(d: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    missing = [k for k in keys if d.get(k) is None]
    if missing:
        raise UserError(
            f"report: {where} lacks {', '.join(missing)}; rerun that unit (delete its folder) to regenerate it"
        )


def load_study(out: str | Path) -> Study:
    """Read every result the report needs; a missing one raises UserError naming the file."""
    out = Path(out)
    plan = StudyPlan.from_dict(_read_json(out / "plan.json", "the resolved plan"))
    prep = _read_json(out / "prepare.json", "benchmarks, task ids and contamination")
    timings = _read_json(out / "timings.json", "unit durations")
    benches = list(prep["order"])
    runs: dict[tuple[str, str], Run] = {}
    for arm in plan.arms:
        for bench in benches:
            d = run_dir(out, arm.name, bench)
            for name in ("results.json", "samples.jsonl", "manifest.json"):
                _need(d / name, f"arm {arm.name!r} on benchmark {bench!r}")
            (run,) = load_runs([d], [arm.name])
            _require_keys(
                run.results, ("pass@1", "ci", "error_taxonomy", "n_problems"), f"{d / 'results.json'}"
            )
            want = set(prep["benchmarks"][bench]["task_ids"])
            got = {r["task_id"] for r in run.records}
            if got != want:
                raise UserError(
                    f"report: {d} was evaluated on {len(got)} problems that differ from the study's {len(want)} "
                    f"for {bench!r}; every approach must see the same problems: delete {d} and rerun"
                )
            runs[(arm.name, bench)] = run
    training = {}
    for arm in plan.arms:
        if not arm.train:
            continue
        t = train_dir(out, arm, plan.model)
        manifest = _read_json(t / "manifest.json", f"training manifest of arm {arm.name!r}")
        state = _read_json(t / "trainer_state.json", f"train/validation losses of arm {arm.name!r}")
        done = _read_json(t / DONE, f"training of arm {arm.name!r} finished")
        history = state.get("log_history") or []
        if not any("eval_loss" in e for e in history):
            raise UserError(
                f"report: {t / 'trainer_state.json'} has no validation loss (eval_loss), so overfitting cannot be judged "
                f"for arm {arm.name!r}: the validation split was empty or every row was cut by max_length; raise "
                "sft.args.max_length or sft.max_eval_samples in the plan and rerun"
            )
        training[arm.name] = {"manifest": manifest, "log_history": history, "done": done}
    memory = {
        a.name: _read_json(out / "runs" / a.name / "memory.json", f"peak memory of arm {a.name!r}")
        for a in plan.arms
    }
    for bench in benches:
        if bench not in prep.get("contamination", {}):
            raise UserError(
                f"report: {out / 'prepare.json'} has no contamination entry for {bench!r}; rerun the study"
            )
    study = Study(out, plan, prep, runs, training, memory, timings, benches=benches)
    study.primary = primary_benchmark(prep)
    return study
