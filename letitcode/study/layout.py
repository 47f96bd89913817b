"""The study's output folder: where every unit writes, its done markers, the timings and the progress log.

Output layout::

    OUTPUT_DIR/plan.json                       the resolved plan
    OUTPUT_DIR/prepare.json                    task ids, skipped benchmarks, SFT split, contamination
    OUTPUT_DIR/data/                           the decontaminated SFT pool and its train/validation rows
    OUTPUT_DIR/train/<model>-<arm>/            sft/train.py output (adapter or model, trainer_state.json, loss.png)
    OUTPUT_DIR/train/<model>-<arm>-merged      link to its merged/ model, where the plan merges adapters
    OUTPUT_DIR/runs/<arm>/<benchmark>/         run_eval output (samples.jsonl, results.json, manifest.json, dataset/)
    OUTPUT_DIR/runs/<arm>/memory.json          peak memory of the arm's evaluation process
    OUTPUT_DIR/timings.json                    measured wall time of every unit
    OUTPUT_DIR/dataset/                        all runs as one result dataset (leaderboard input)
    OUTPUT_DIR/report.md, OUTPUT_DIR/*.png     the report

Every unit (prepare, each training, each (arm, benchmark) evaluation) leaves ``study_done.json`` holding the
fingerprint of its configuration; a rerun skips units whose fingerprint matches.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from letitcode.data.problem import slugify
from letitcode.records import write_json
from letitcode.study.plan import ArmSpec, StudyPlan

DONE = "study_done.json"


def fingerprint(obj: Any) -> str:
    """A unit's configuration as 16 hex digits: equal fingerprints mean the unit's result can be reused."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_dir(out: Path, arm: str, bench: str) -> Path:
    """OUTPUT_DIR/runs/<arm>/<benchmark>: one `run_eval` output folder."""
    return out / "runs" / arm / bench


def train_dir(out: Path, arm: ArmSpec, model: str | None = None) -> Path:
    """OUTPUT_DIR/train/<model>-<arm>: the folder name is the fine-tuned model's name in result datasets."""

    base = slugify(Path((model or "model").split("@")[0].rstrip("/")).name) or "model"
    return out / "train" / f"{base}-{arm.name}"


def merged(plan: StudyPlan, arm: ArmSpec) -> bool:
    """Whether the arm is evaluated as its adapter merged into the base (`sft.merge`; full fine-tuning has none)."""
    return bool(arm.train and plan.sft.merge and arm.train.method != "full")


def merged_dir(out: Path, arm: ArmSpec, model: str) -> Path:
    """OUTPUT_DIR/train/<model>-<arm>-merged: a link to sft/train.py's `merged/` folder, so the merged model
    carries the arm's name in result datasets (a model is named by its folder)."""
    t = train_dir(out, arm, model)
    return t.parent / f"{t.name}-merged"


def eval_model(plan: StudyPlan, arm: ArmSpec, out: Path) -> str:
    """The model an arm is evaluated with: the base model, or the arm's trained (or merged) folder."""
    if not arm.train:
        return plan.model
    return str(merged_dir(out, arm, plan.model) if merged(plan, arm) else train_dir(out, arm, plan.model))


def is_done(folder: Path, fp: str) -> bool:
    """Whether `folder` holds a done marker with this fingerprint (the unit can be skipped)."""
    marker = folder / DONE
    if not marker.exists():
        return False
    try:
        return json.loads(marker.read_text()).get("fingerprint") == fp
    except json.JSONDecodeError:
        return False


def mark_done(folder: Path, fp: str, **extra: Any) -> None:
    """Leave the done marker of a finished unit, with its fingerprint and `extra` measurements."""
    write_json(
        folder / DONE,
        {"fingerprint": fp, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra},
    )


def fmt_s(s: float) -> str:
    """Seconds as `4m05s` or `1h02m`."""
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def log(msg: str) -> None:
    """One progress line of the study on stdout."""
    print(f"[study {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Timings:
    """Measured wall time of every unit, accumulated over resumed runs (timings.json)."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def add(self, unit: str, seconds: float, **extra: Any) -> None:
        row = self.data.setdefault(unit, {"seconds": 0.0, "attempts": 0})
        row["seconds"] = round(row["seconds"] + seconds, 2)
        row["attempts"] += 1
        row.update(extra)
        write_json(self.path, self.data)
