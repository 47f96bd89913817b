"""Preparation: the fixed task ids of every benchmark, the decontaminated SFT pool and its split, and the
contamination measures (13-gram overlap with the SFT data, temporal split), cached in OUTPUT_DIR/prepare.json.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from letitcode import models, prompts
from letitcode.config import EvalConfig
from letitcode.data.benchmarks._io import Rows
from letitcode.data.benchmarks.leetcodedataset import problem_from_row
from letitcode.data.overlap import NGRAM, Decontaminator, ngram_overlap, word_ngrams
from letitcode.errors import DataError, UserError
from letitcode.records import write_json, write_jsonl
from letitcode.study.layout import fingerprint, fmt_s, is_done, log, mark_done
from letitcode.study.plan import (
    SFT_TRAIN,
    SFT_VALIDATION,
    BenchmarkSpec,
    StudyPlan,
    data_advice,
    missing_data,
)
from letitcode.training.data import build_sft_data, split_by_problem, write_rows


def temporal_status(problems: Sequence[Any], cutoff: str | None) -> dict[str, Any]:
    """Whether every evaluated problem was released after the SFT data's cutoff date."""
    dates = sorted(str(p.release_date) for p in problems if p.release_date)
    out: dict[str, Any] = {
        "cutoff": cutoff,
        "min_date": dates[0] if dates else None,
        "max_date": dates[-1] if dates else None,
        "n_dated": len(dates),
        "n_problems": len(problems),
    }
    if len(dates) < len(problems):
        out.update(
            temporal=False,
            reason="problems carry no release dates" if not dates else "some problems are undated",
        )
    elif not cutoff:
        out.update(temporal=False, reason="the plan gives no SFT cutoff date")
    elif dates[0] > cutoff:
        out.update(
            temporal=True, reason=f"all problems dated {dates[0]}..{dates[-1]}, after the SFT cutoff {cutoff}"
        )
    else:
        out.update(temporal=False, reason=f"earliest problem {dates[0]} is not after the SFT cutoff {cutoff}")
    return out


def _sft_text(row: Any) -> str:
    """What SFT trains on for one row: the problem (prompt side) and its completion."""
    p = row.problem
    return f"{p.description}\n{p.starter_code}\n{row.completion}"


def contamination(
    plan: StudyPlan,
    problems_by_bench: Mapping[str, list[Any]],
    pool_rows: Sequence[Any],
    train_rows: Sequence[Any],
) -> dict[str, Any]:
    """Per benchmark label: 13-gram overlap with the SFT pool and with the rows trained on, and the temporal split."""
    pool_grams: set[str] = set()
    for r in pool_rows:
        pool_grams |= word_ngrams(_sft_text(r))
    train_grams: set[str] = set()
    for r in train_rows:
        train_grams |= word_ngrams(_sft_text(r))
    out = {}
    for name, problems in problems_by_bench.items():
        pool = ngram_overlap(problems, pool_grams) if pool_rows else None
        trained = ngram_overlap(problems, train_grams) if train_rows else None
        out[name] = {
            "ngram": NGRAM,
            "sft_pool": pool,
            "sft_trained": trained,
            "temporal": temporal_status(problems, plan.sft.cutoff_date),
        }
    return out


def _chat_style(model: str) -> str:
    """The model's prompt style by the evaluator's and sft/train.py's rule (`letitcode.prompts.resolve_style`:
    the seed table, then whether its tokenizer has a chat template)."""

    resolved = models.resolve(model)
    path = Path(resolved.path)
    cfg = path / "tokenizer_config.json"
    has_template = (path / "chat_template.jinja").exists() or (
        cfg.exists() and bool(json.loads(cfg.read_text()).get("chat_template"))
    )
    return prompts.resolve_style(None, model=model, resolved=resolved, has_chat_template=has_template).style


# ------------------------------------------------------------------------------------------------ prepare


def _load_bench(b: BenchmarkSpec, dataset: str | None = None) -> Any:
    from letitcode.data.benchmarks import load_benchmark

    return load_benchmark(b.benchmark, dataset=dataset or b.dataset, split=b.split, revision=b.revision)


def _parseable_lcd_rows(rows: Sequence[Mapping[str, Any]], source: str) -> list[dict[str, Any]]:
    """Rows that map to executable LeetCodeDataset problems (reference parses, tests parse)."""

    wrapper = Rows(list(rows), source)
    out = []
    for i, r in enumerate(rows):
        try:
            problem_from_row(dict(r), i, wrapper)
        except DataError:
            continue
        out.append(dict(r))
    return out


@dataclass
class _Chosen:
    """What preparation has chosen so far: per benchmark label, its prepare.json entry and its problems."""

    benches: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    problems: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, spec: BenchmarkSpec, bench: Any, chosen: list[Any]) -> None:
        self.problems[spec.name] = chosen
        self.benches[spec.name] = {
            "spec": dataclasses.asdict(spec),
            "task_ids": [p.task_id for p in chosen],
            "manifest": bench.manifest(),
            "dataset": spec.dataset,
            "split": spec.split,
        }


def prepare(plan: StudyPlan, out: Path) -> dict[str, Any]:
    """Task ids per benchmark, the decontaminated SFT pool and its split, contamination; cached in prepare.json."""
    fp = fingerprint(
        {
            "benchmarks": [dataclasses.asdict(b) for b in plan.benchmarks],
            "sft": dataclasses.asdict(plan.sft),
            "overfitting": dataclasses.asdict(plan.overfitting),
            "seed": plan.seed,
            "model": plan.model,
            "train": any(a.train for a in plan.arms),
        }
    )
    cached = out / "prepare.json"
    if is_done(out / "data", fp) and cached.exists():
        return json.loads(cached.read_text())
    t0 = time.perf_counter()
    log("prepare: loading benchmarks and choosing problems")
    state = _Chosen()
    _choose_problems(plan, state)
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    sft_info, pool_rows, train_rows = _prepare_sft(plan, data_dir, state)
    log("prepare: contamination (13-gram overlap with the SFT data, temporal split)")
    prep = {
        "plan": plan.name,
        "fingerprint": fp,
        "benchmarks": state.benches,
        "order": [
            b for b in [*(x.name for x in plan.benchmarks), SFT_TRAIN, SFT_VALIDATION] if b in state.benches
        ],
        "skipped": state.skipped,
        "sft": sft_info,
        "contamination": contamination(plan, state.problems, pool_rows, train_rows),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(cached, prep)
    mark_done(data_dir, fp)
    log(
        f"prepare: done in {fmt_s(prep['seconds'])}; benchmarks: "
        + ", ".join(f"{k} ({len(v['task_ids'])})" for k, v in state.benches.items())
        + (f"; skipped: {', '.join(state.skipped)}" if state.skipped else "")
    )
    return prep


def _choose_problems(plan: StudyPlan, state: _Chosen) -> None:
    """The plan's benchmarks: one fixed, difficulty-stratified set of task ids each; fallbacks only when needed."""
    from letitcode.pipeline import select_problems

    have_heldout = False
    for b in plan.benchmarks:
        if b.fallback and have_heldout:
            state.skipped[b.name] = (
                "fallback benchmark, not needed: an earlier heldout benchmark is available"
            )
            continue
        if missing_data(b.dataset):
            if b.optional or b.fallback:
                state.skipped[b.name] = f"data not found: {b.dataset}"
                continue
            raise UserError(
                f"benchmark {b.name!r} needs {b.dataset}, which does not exist: {data_advice(plan)}"
            )
        bench = _load_bench(b)
        cfg = EvalConfig(benchmark=b.benchmark, limit=b.limit, seed=plan.seed)
        state.add(b, bench, select_problems(bench.problems, cfg))
        have_heldout = have_heldout or b.role == "heldout"
    if not have_heldout:
        raise UserError(f"no heldout LeetCode benchmark is available: {data_advice(plan)}")


def _prepare_sft(
    plan: StudyPlan, data_dir: Path, state: _Chosen
) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """The SFT pool decontaminated against every chosen problem, split by problem exactly as sft/train.py will,
    and the overfitting probes derived from its two sides. Returns (prepare.json's sft entry, pool, train rows)."""
    if not plan.sft.dataset:
        for label in (SFT_TRAIN, SFT_VALIDATION):
            state.skipped[label] = "the plan has no SFT data"
        return {"enabled": False}, [], []
    if missing_data(plan.sft.dataset):
        raise UserError(
            f"the SFT data {plan.sft.dataset} does not exist: pass --dataset PATH_OR_HUB_ID, or {data_advice(plan)}"
        )

    log(f"prepare: SFT data {plan.sft.dataset}")
    style = _chat_style(plan.model)
    everything = build_sft_data(plan.sft.dataset, revision=plan.sft.revision, val_fraction=0.0, style=style)  # type: ignore[arg-type]
    kept, removed = _decontaminate(everything.train, state.problems)
    pool_path = data_dir / "sft_pool.jsonl"
    write_rows(kept, pool_path)
    train_rows, val_rows = split_by_problem(kept, plan.sft.val_fraction, plan.sft.split_seed)
    if plan.sft.max_train_samples is not None:
        train_rows = train_rows[: plan.sft.max_train_samples]
    if plan.sft.max_eval_samples is not None:
        val_rows = val_rows[: plan.sft.max_eval_samples]
    sft_info = {
        "enabled": True,
        "dataset": plan.sft.dataset,
        "source": everything.raw.manifest(),
        "layout": everything.preset,
        "style": style,
        "rows": len(everything.train),
        "removed_by_decontamination": sum(removed.values()),
        "removed_by": removed,
        "decontaminated_against": {k: len(v) for k, v in state.problems.items()},
        "pool": str(pool_path),
        "pool_rows": len(kept),
        "train_rows": len(train_rows),
        "validation_rows": len(val_rows),
    }
    if everything.has_tests:
        _probe_benchmarks(plan, data_dir, train_rows, val_rows, state)
    else:
        for label in (SFT_TRAIN, SFT_VALIDATION):
            state.skipped[label] = (
                f"the SFT data ({everything.preset or 'column_map'} layout) has no tests, so pass@1 on trained-on "
                "problems cannot be measured; overfitting evidence comes from the losses alone"
            )
    return sft_info, kept, train_rows


def _decontaminate(
    rows: Sequence[Any], problems: Mapping[str, list[Any]]
) -> tuple[list[Any], dict[str, int]]:
    """The rows that match no evaluated problem, and how many were removed for which reason."""

    deco = Decontaminator(p for ps in problems.values() for p in ps)
    removed: dict[str, int] = {}
    kept = []
    for r in rows:
        why = deco.reason(r.problem)
        if why:
            removed[why] = removed.get(why, 0) + 1
        else:
            kept.append(r)
    return kept, removed


def _probe_benchmarks(
    plan: StudyPlan, data_dir: Path, train_rows: Sequence[Any], val_rows: Sequence[Any], state: _Chosen
) -> None:
    """The overfitting probes: problems the fine-tuned models were trained on, and held-out ones."""
    from letitcode.pipeline import select_problems

    for label, rows in ((SFT_TRAIN, train_rows), (SFT_VALIDATION, val_rows)):
        usable = _parseable_lcd_rows([r.raw for r in rows], f"{label} rows")
        if not usable:
            state.skipped[label] = "no SFT rows of this side map to executable problems"
            continue
        path = data_dir / f"{label}.jsonl"
        write_jsonl(path, usable)
        spec = BenchmarkSpec(
            name=label,
            benchmark="leetcodedataset",
            dataset=str(path),
            split=None,
            limit=plan.overfitting.limit,
            role="extra",
            exemplar_dataset="{sft_pool}",
        )
        bench = _load_bench(spec)
        state.add(spec, bench, select_problems(bench.problems, EvalConfig(limit=spec.limit, seed=plan.seed)))


def primary_benchmark(prep: Mapping[str, Any]) -> str:
    """The first heldout benchmark that was evaluated: the one every approach is ranked on."""
    for name in prep["order"]:
        if prep["benchmarks"][name]["spec"]["role"] == "heldout":
            return name
    raise UserError("no heldout benchmark was prepared")
