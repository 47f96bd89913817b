"""The study report: `report.md` plus PNGs, answering the brief's questions from the study's result files.

Every number is read from a run's `results.json` / `samples.jsonl` / `manifest.json` (each run is also a
config of the result dataset in `OUTPUT_DIR/dataset`), from `sft/train.py`'s `trainer_state.json` and
`manifest.json`, from `prepare.json` (task ids, contamination) and from `memory.json` / `timings.json`.
Nothing is typed by hand except the fixed prose of the ethics section. A missing result is an error naming
the file, never an empty cell.

Tables and the two standard plots come from `letitcode.results.tables`; paired tests and CIs from `letitcode.scoring.stats`.
What the study needs beyond them lives here: failure-set overlap (Jaccard), the unpaired bootstrap of a
train/held-out gap, the loss-curve, overlap and deployment figures, and the recommendation rule.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from letitcode.data.benchmarks.registry import REGISTRY
from letitcode.errors import UserError
from letitcode.results.tables import (
    Run,
    _categories,
    comparison_table,
    load_runs,
    md_table,
    plot_pass_by_difficulty,
    plot_taxonomy,
)
from letitcode.scoring.stats import format_ci
from letitcode.study.layout import run_dir, train_dir
from letitcode.study.plan import SFT_TRAIN, SFT_VALIDATION, StudyPlan
from letitcode.study.prepare import primary_benchmark

ALPHA = 0.05
COST_TIE = 0.10  # costs within 10% of each other count as a tie in the recommendation rule
# Licences of the data the study can read, by benchmark adapter (from each dataset's own card/LICENSE).


# ------------------------------------------------------------------------------------------------ loading


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
        done = _read_json(t / "study_done.json", f"training of arm {arm.name!r} finished")
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


# ------------------------------------------------------------------------------------------------ numbers


def _f(x: Any, fmt: str = "{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _ci(pair: Sequence[float] | None) -> str:
    return f"[{pair[0]:.2f}, {pair[1]:.2f}]" if pair else ""


def p1(run: Run) -> str:
    return format_ci(run.results["pass@1"], run.results["ci"].get("pass@1"), run.results.get("n_problems"))


def failures(run: Run) -> set[str]:
    """Problems with no passing sample."""
    solved = {r["task_id"] for r in run.records if r.get("passed")}
    return {r["task_id"] for r in run.records} - solved


def jaccard(a: set[str], b: set[str]) -> float | None:
    """|A ∩ B| / |A ∪ B|; None when both sets are empty (no failures to compare)."""
    union = a | b
    return len(a & b) / len(union) if union else None


def unpaired_gap(
    a: Sequence[float], b: Sequence[float], *, n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """mean(a) - mean(b) with a percentile bootstrap CI, resampling each side on its own (the train subset and
    the held-out problems are different problems, so `stats.paired_comparison` does not apply)."""
    va, vb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    boot = va[rng.integers(0, va.size, (n_boot, va.size))].mean(1) - vb[
        rng.integers(0, vb.size, (n_boot, vb.size))
    ].mean(1)
    lo, hi = np.quantile(boot, [ALPHA / 2, 1 - ALPHA / 2])
    return {"gap": float(va.mean() - vb.mean()), "ci": [float(lo), float(hi)]}


def per_problem(run: Run) -> list[float]:
    from letitcode.scoring.stats import per_problem_pass_at_k

    return list(per_problem_pass_at_k(run.records, 1).values())


def paired(study: Study, a: str, b: str, bench: str) -> dict[str, Any]:
    from letitcode.scoring.stats import paired_comparison

    return paired_comparison(study.run(a, bench).records, study.run(b, bench).records, labels=(a, b))


def losses(log_history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e and "step" in e]
    out: dict[str, Any] = {"train": train, "eval": evals}
    out["final_train"] = train[-1][1] if train else None
    out["first_train"] = train[0][1] if train else None
    out["final_eval"] = evals[-1][1] if evals else None
    if evals:
        step, best = min(evals, key=lambda e: e[1])
        out.update(min_eval=best, min_eval_step=step, eval_rise=evals[-1][1] - best)
    else:
        out.update(min_eval=None, min_eval_step=None, eval_rise=None)
    return out


def throughput(study: Study, arm: str) -> dict[str, Any]:
    """Problems per second of generation, measured on the primary benchmark (else pooled over the arm's other
    runs when the primary one was fully resumed from cache and so timed nothing)."""
    candidates = [study.primary] + [b for b in study.benches if b != study.primary]
    for bench in candidates:
        gen = study.run(arm, bench).manifest.get("generation") or {}
        if gen.get("requests") and gen.get("wall_s"):
            return {
                "problems_per_s": gen["requests"] / gen["wall_s"],
                "benchmark": bench,
                "requests": gen["requests"],
                "wall_s": gen["wall_s"],
            }
    raise UserError(
        f"report: arm {arm!r} has no timed generation in any run (every run was resumed from cache): delete "
        f"{run_dir(study.out, arm, study.primary)} and rerun to measure throughput"
    )


def _gib(d: Mapping[str, Any], key: str) -> float | None:
    """`key`_gib from a memory record, or the older `key`_mb (MiB) converted: GiB everywhere."""
    if d.get(f"{key}_gib") is not None:
        return float(d[f"{key}_gib"])
    if d.get(f"{key}_mb") is not None:
        return float(d[f"{key}_mb"]) / 1024
    return None


def eval_memory(mem: Mapping[str, Any]) -> tuple[float | None, str]:
    """(GiB, what it is) of an arm's evaluation: the GPU peak torch allocated when there is one (a QLoRA arm's is
    its 4-bit base's), else the process's peak RSS."""
    gpu = _gib(mem, "gpu_peak")
    if gpu is not None:
        return gpu, "GPU peak allocated"
    if mem.get("served_by"):
        return None, f"held by the {mem['served_by']} server process (not measured)"
    return _gib(mem, "peak_rss"), "process peak RSS (no GPU)"


def _find_gpu_peak(node: Any, key: str = "") -> float | None:
    """The largest GPU peak (GiB) anywhere under keys naming both "gpu" and "peak" in a training manifest;
    values under a key with "mb" are MiB, with "bytes" bytes, otherwise GiB; lists are per rank."""
    k = key.lower()
    if isinstance(node, Mapping):
        found = [_find_gpu_peak(v, f"{k}.{kk}") for kk, v in node.items()]
        found = [f for f in found if f is not None]
        return max(found) if found else None
    if isinstance(node, list | tuple):
        found = [_find_gpu_peak(v, k) for v in node]
        found = [f for f in found if f is not None]
        return max(found) if found else None
    if isinstance(node, bool) or not isinstance(node, int | float) or "gpu" not in k or "peak" not in k:
        return None
    if "bytes" in k:
        return node / 2**30
    if "mb" in k or "mib" in k:
        return node / 1024
    return float(node)


def training_memory(manifest: Mapping[str, Any], done: Mapping[str, Any]) -> tuple[float | None, str]:
    """(GiB, what it is) of a training arm: the GPU peak per rank sft/train.py writes into its manifest (the
    largest rank's), else the training process's peak RSS (no GPU)."""
    gpu = _find_gpu_peak({k: v for k, v in manifest.items() if "gpu" in k.lower()})
    if gpu is not None:
        return gpu, "GPU peak"
    return _gib(done, "peak_rss"), "peak RSS"


def deployment_rows(study: Study) -> list[dict[str, Any]]:
    price = study.plan.deployment.price_per_hour_usd
    rows = []
    for arm in study.plan.arms:
        run = study.run(arm.name, study.primary)
        tp = throughput(study, arm.name)
        mem = study.memory[arm.name]
        cost = 1000 / tp["problems_per_s"] / 3600 * price
        train_s = study.training[arm.name]["done"].get("seconds") if arm.train else None
        rows.append(
            {
                "arm": arm.name,
                "kind": arm.kind,
                "pass@1": run.results["pass@1"],
                "ci": run.results["ci"].get("pass@1"),
                "p50": run.results.get("latency_p50_s"),
                "p95": run.results.get("latency_p95_s"),
                "tokens_per_solved": run.results.get("tokens_per_solved"),
                "tokens_per_problem": (run.manifest.get("generation") or {}).get("tokens", 0)
                / max(1, run.results["n_samples"]),
                "memory_gib": eval_memory(mem)[0],
                "memory_kind": eval_memory(mem)[1],
                "gpu_total_gib": mem.get("gpu_total_gib"),
                "quantization": mem.get("quantization"),
                "device": mem.get("device"),
                "problems_per_s": tp["problems_per_s"],
                "throughput_from": tp["benchmark"],
                "cost_per_1k": cost,
                "train_s": train_s,
                "train_cost": train_s / 3600 * price if train_s is not None else None,
            }
        )
    for r in rows:
        for k in ("p50", "p95"):
            if r[k] is None:
                raise UserError(
                    f"report: {run_dir(study.out, r['arm'], study.primary) / 'results.json'} has no latency ({k})"
                )
    return rows


def _mem_rank(row: Mapping[str, Any]) -> float:
    """Memory as a tie-breaker, in 0.5 GiB steps (smaller differences are allocator noise)."""
    gib = row.get("memory_gib")
    return math.inf if gib is None else round(gib * 2) / 2


def recommend(study: Study, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The explicit rule: keep the arms whose pass@1 on the primary benchmark is not significantly below the
    most accurate arm's (paired test), then take the cheapest per 1k problems; costs within 10% tie and are
    broken by peak memory (GPU memory where measured: a QLoRA arm counts its 4-bit base), then p95 latency, then
    tokens per solved problem."""
    best = max(rows, key=lambda r: (r["pass@1"], -r["cost_per_1k"]))
    tied, dropped = [], []
    for r in rows:
        if r["arm"] == best["arm"]:
            tied.append((r, None))
            continue
        c = paired(study, best["arm"], r["arm"], study.primary)
        (tied if c["verdict"] != f"{best['arm']} better" else dropped).append((r, c))
    cheapest = min(r["cost_per_1k"] for r, _ in tied)
    near = [(r, c) for r, c in tied if r["cost_per_1k"] <= cheapest * (1 + COST_TIE) + 1e-12]
    near.sort(
        key=lambda rc: (
            _mem_rank(rc[0]),
            rc[0]["p95"],
            rc[0]["tokens_per_solved"] if rc[0]["tokens_per_solved"] is not None else math.inf,
        )
    )
    choice = near[0][0]
    return {"best": best, "tied": tied, "dropped": dropped, "near": near, "choice": choice}


# ------------------------------------------------------------------------------------------------ figures


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_overview(study: Study, path: Path) -> Path:
    """pass@1 with 95% CI for every arm on every benchmark."""
    plt = _plt()
    arms = [a.name for a in study.plan.arms]
    x = np.arange(len(study.benches))
    width = 0.8 / len(arms)
    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(study.benches) * max(1, len(arms) / 4)), 4.5))
    cmap = plt.get_cmap("tab10")
    for i, arm in enumerate(arms):
        vals, lo, hi = [], [], []
        for b in study.benches:
            r = study.run(arm, b).results
            ci = r["ci"].get("pass@1") or [r["pass@1"], r["pass@1"]]
            vals.append(r["pass@1"])
            lo.append(r["pass@1"] - ci[0])
            hi.append(ci[1] - r["pass@1"])
        ax.bar(
            x + (i - (len(arms) - 1) / 2) * width,
            vals,
            width,
            yerr=[lo, hi],
            capsize=2,
            label=arm,
            color=cmap(i % 10),
        )
    ax.set_xticks(x, study.benches, rotation=15)
    ax.set_ylim(0, 1)
    ax.set_ylabel("pass@1")
    ax.set_title(f"pass@1 by approach and benchmark (95% bootstrap CI) - {study.plan.model}")
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_losses(study: Study, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    cmap = plt.get_cmap("tab10")
    for i, (arm, t) in enumerate(study.training.items()):
        ls = losses(t["log_history"])
        if ls["train"]:
            ax.plot(*zip(*ls["train"], strict=True), color=cmap(i % 10), label=f"{arm} train", marker=".")
        if ls["eval"]:
            ax.plot(
                *zip(*ls["eval"], strict=True),
                color=cmap(i % 10),
                linestyle="--",
                marker="o",
                label=f"{arm} validation",
            )
    ax.set_xlabel("step")
    ax.set_ylabel("loss (completion tokens)")
    ax.set_title("SFT train (solid) and validation (dashed) loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_jaccard(names: Sequence[str], matrix: Sequence[Sequence[float | None]], path: Path) -> Path:
    plt = _plt()
    m = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 1.0 * len(names) + 1.5))
    im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=30)
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                "-" if np.isnan(m[i, j]) else f"{m[i, j]:.2f}",
                ha="center",
                va="center",
                color="white" if not np.isnan(m[i, j]) and m[i, j] < 0.6 else "black",
            )
    fig.colorbar(im, ax=ax, label="Jaccard similarity of failure sets")
    ax.set_title("Do the approaches fail on the same problems?")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_deployment(rows: Sequence[dict[str, Any]], choice: str, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ci = r["ci"] or [r["pass@1"], r["pass@1"]]
        ax.errorbar(
            r["cost_per_1k"],
            r["pass@1"],
            yerr=[[r["pass@1"] - ci[0]], [ci[1] - r["pass@1"]]],
            fmt="o",
            capsize=3,
            color="tab:red" if r["arm"] == choice else "tab:blue",
        )
        ax.annotate(
            r["arm"],
            (r["cost_per_1k"], r["pass@1"]),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize="small",
        )
    ax.set_xlabel("estimated cost per 1k problems (USD, from measured throughput)")
    ax.set_ylabel("pass@1 (95% CI)")
    ax.set_ylim(0, 1)
    ax.set_title(f"Accuracy against cost (recommended: {choice})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------ sections


def _bench_line(study: Study, bench: str) -> str:
    info = study.prep["benchmarks"][bench]
    m = info["manifest"]
    return f"`{bench}` ({m['name']}, split {m['split']}, {len(info['task_ids'])} problems; source {m['source']}, version {m['version']})"


def contamination_note(study: Study, bench: str) -> str:
    c = study.prep["contamination"][bench]
    pool, trained, temporal = c.get("sft_pool"), c.get("sft_trained"), c["temporal"]
    if pool is None:
        overlap = "no SFT data in this study, so no overlap to measure"
    else:
        overlap = (
            f"{pool['n_overlap']}/{pool['n_problems']} ({_pct(pool['share'])}) of the evaluated problems share a "
            f"{c['ngram']}-gram with the SFT data"
        )
        if trained is not None:
            overlap += f" ({trained['n_overlap']}/{trained['n_problems']}, {_pct(trained['share'])}, with the rows actually trained on)"
    split = "temporal split: **yes**" if temporal["temporal"] else "temporal split: no"
    return f"Contamination: {overlap}; {split} ({temporal['reason']})."


def section_scores(study: Study) -> list[str]:
    arms = [a.name for a in study.plan.arms]
    out = [
        "## Scores",
        "",
        f"Every approach was run on the same problems of each benchmark (task ids fixed in `prepare.json`). "
        f"The primary benchmark, on which approaches are ranked, is `{study.primary}`. Cells: pass@1 "
        "[95% bootstrap CI over problems]. The last two rows are the contamination note of each benchmark.",
        "",
    ]
    rows = [[a, study.plan.arm(a).kind, *[p1(study.run(a, b)) for b in study.benches]] for a in arms]
    cont = study.prep["contamination"]
    rows.append(
        [
            "13-gram overlap with SFT data",
            "",
            *[
                (
                    f"{cont[b]['sft_pool']['n_overlap']}/{cont[b]['sft_pool']['n_problems']} ({_pct(cont[b]['sft_pool']['share'])})"
                    if cont[b].get("sft_pool")
                    else "no SFT data"
                )
                for b in study.benches
            ],
        ]
    )
    rows.append(
        ["temporal split", "", *["yes" if cont[b]["temporal"]["temporal"] else "no" for b in study.benches]]
    )
    out += [md_table(["approach", "kind", *study.benches], rows, "ll" + "r" * len(study.benches)), ""]
    out += ["![pass@1 overview](pass_at_1_overview.png)", ""]
    for b in study.benches:
        out += [f"### {b}", "", _bench_line(study, b), "", contamination_note(study, b), ""]
        trows = []
        for a in arms:
            r = study.run(a, b).results
            trows.append(
                [
                    a,
                    r["n_problems"],
                    p1(study.run(a, b)),
                    _f(r.get("test_pass_rate")),
                    _f(r.get("bleu"), "{:.2f}"),
                    _f(r.get("codebleu")),
                    *[
                        _f(((r.get("by_difficulty") or {}).get(lv) or {}).get("pass@1"))
                        for lv in ("Easy", "Medium", "Hard")
                    ],
                ]
            )
        out += [
            md_table(
                [
                    "approach",
                    "problems",
                    "pass@1 [95% CI]",
                    "tests passed",
                    "BLEU",
                    "CodeBLEU",
                    "Easy",
                    "Medium",
                    "Hard",
                ],
                trows,
            ),
            "",
        ]
    if study.prep.get("skipped"):
        out += [
            "Not evaluated: " + "; ".join(f"`{k}`: {v}" for k, v in study.prep["skipped"].items()) + ".",
            "",
        ]
    return out


def _comparison_rows(study: Study, arms: Sequence[str], benches: Sequence[str]) -> list[dict[str, Any]]:
    comps = []
    for b in benches:
        for i, a in enumerate(arms):
            for c in arms[i + 1 :]:
                comp = paired(study, a, c, b)
                comp["labels"] = [f"{a} ({b})", f"{c} ({b})"]
                comp["bench"], comp["pair"] = b, (a, c)
                comps.append(comp)
    return comps


def _best_statement(study: Study, arms: Sequence[str], what: str) -> str:
    ranked = sorted(arms, key=lambda a: -study.run(a, study.primary).results["pass@1"])
    best = ranked[0]
    top = study.run(best, study.primary).results["pass@1"]
    ties = [a for a in ranked[1:] if study.run(a, study.primary).results["pass@1"] == top]
    wins, loses_not = [], []
    for other in ranked[1:]:
        c = paired(study, best, other, study.primary)
        (wins if c["verdict"] == f"{best} better" else loses_not).append((other, c))
    head = f"Highest pass@1 on `{study.primary}` among the {what}: **{best}** ({p1(study.run(best, study.primary))})"
    if ties:
        head += f", tied with {', '.join(ties)}"

    def ps(pairs: Sequence[tuple[str, dict[str, Any]]]) -> str:
        return ", ".join(f"{o} (p={c['p_value']:.3g})" for o, c in pairs)

    if loses_not and not wins:
        return (
            head
            + f". It is **not** significantly better than any other ({ps(loses_not)}), so the data do not name a best method."
        )
    if loses_not:
        return head + f". It is significantly better than {ps(wins)}, but not than {ps(loses_not)}."
    return head + f". It is significantly better than every other ({ps(wins)})."


def _overfit_probe_rows(
    study: Study, arms: Sequence[str]
) -> tuple[list[list[Any]], dict[str, dict[str, Any]]]:
    rows, gaps = [], {}
    for a in arms:
        tr, va = study.run(a, SFT_TRAIN), study.run(a, SFT_VALIDATION)
        g = unpaired_gap(per_problem(tr), per_problem(va))
        gaps[a] = g
        rows.append(
            [
                a,
                p1(tr),
                p1(va),
                p1(study.run(a, study.primary)),
                f"{g['gap']:+.3f} {_ci(g['ci'])}",
                "yes" if g["ci"][0] > 0 else "no",
            ]
        )
    return rows, gaps


def section_icl(study: Study) -> list[str]:
    arms = study.plan.comparisons.icl
    out = [
        "## 1. In-context learning methods compared",
        "",
        f"Methods: {', '.join(f'`{a}` ({study.plan.arm(a).strategy})' for a in arms)}, all on the base model "
        f"`{study.plan.model}`.",
        "",
    ]
    out += [_best_statement(study, arms, "in-context methods"), ""]
    comps = _comparison_rows(study, arms, study.benches)
    out += [
        "Paired comparisons on the same problems (exact McNemar test on one greedy sample per problem; a difference "
        "is claimed only when its 95% CI excludes 0 and p < 0.05):",
        "",
        comparison_table(comps),
        "",
    ]
    out += ["![pass@1 by difficulty, in-context methods](pass_by_difficulty_icl.png)", ""]
    out += ["### Is there evidence of overfitting?", ""] + _icl_overfitting(study, arms)
    return out


def _mix(records: Sequence[Mapping[str, Any]]) -> str:
    from collections import Counter

    c = Counter(r.get("difficulty") or "none" for r in records if r.get("sample_index", 0) == 0)
    return "/".join(f"{c.get(k, 0)}" for k in ("Easy", "Medium", "Hard"))


def _icl_overfitting(study: Study, arms: Sequence[str]) -> list[str]:
    """In-context methods train nothing: the evidence is memorisation of old problems (pretraining contamination),
    i.e. better pass@1 on problems from before the SFT cutoff than on problems released after it."""
    if not (study.has(SFT_TRAIN) and study.has(SFT_VALIDATION)):
        return [
            "Not measurable in this study: "
            + "; ".join(
                f"{k}: {study.prep['skipped'].get(k, 'not evaluated')}" for k in (SFT_TRAIN, SFT_VALIDATION)
            )
            + ".",
            "",
        ]
    temporal = study.prep["contamination"][study.primary]["temporal"]
    out = [
        "In-context methods change no weights, so they cannot overfit the SFT data; what they can show is "
        "memorisation from pretraining: a base model that scores better on older problems (here the SFT-source "
        f"problems `{SFT_TRAIN}` + `{SFT_VALIDATION}`, released before {study.plan.sft.cutoff_date or 'the cutoff'}) "
        f"than on problems released after them (`{study.primary}`"
        + (
            f", temporal: {temporal['reason']}"
            if temporal["temporal"]
            else ", which is **not** a temporal split here, so this gap does not isolate memorisation"
        )
        + ") has probably seen the older ones. The prompt templates were "
        "fixed before any run (their hashes are in each manifest), so they were not tuned on the test problems. "
        "Gap = old minus new pass@1, with an unpaired bootstrap CI (different problems on each side; difficulty mix "
        "Easy/Medium/Hard shown, since it differs between the sets).",
        "",
    ]
    rows, sig = [], []
    for a in arms:
        old = study.run(a, SFT_TRAIN).records + study.run(a, SFT_VALIDATION).records
        new = study.run(a, study.primary).records
        from letitcode.scoring.stats import per_problem_pass_at_k

        g = unpaired_gap(
            list(per_problem_pass_at_k(old, 1).values()), per_problem(study.run(a, study.primary))
        )
        control = unpaired_gap(
            per_problem(study.run(a, SFT_TRAIN)), per_problem(study.run(a, SFT_VALIDATION))
        )
        old_p = float(np.mean(list(per_problem_pass_at_k(old, 1).values())))
        rows.append(
            [
                a,
                f"{old_p:.3f} (n={len({r['task_id'] for r in old})}, {_mix(old)})",
                f"{study.run(a, study.primary).results['pass@1']:.3f} (n={study.run(a, study.primary).results['n_problems']}, {_mix(new)})",
                f"{g['gap']:+.3f} {_ci(g['ci'])}",
                "yes" if g["ci"][0] > 0 else "no",
                f"{control['gap']:+.3f} {_ci(control['ci'])}",
            ]
        )
        if g["ci"][0] > 0:
            sig.append(a)
    out += [
        md_table(
            [
                "method",
                "pass@1 old problems (n, E/M/H)",
                f"pass@1 {study.primary} (n, E/M/H)",
                "gap [95% CI]",
                "gap significant",
                f"control: {SFT_TRAIN} - {SFT_VALIDATION}",
            ],
            rows,
            "lrrrlr",
        ),
        "",
    ]
    out += [
        (
            "Evidence of memorisation: "
            + ", ".join(f"`{a}`" for a in sig)
            + " score significantly higher on the older "
            "problems (the difficulty mixes differ, so read this with the E/M/H counts)."
        )
        if sig
        else "No in-context method scores significantly higher on the older problems than on the newer ones: no evidence "
        "of memorisation (overfitting) at this sample size.",
        "",
        "The control column compares two halves of the old problems that neither method trained on; it should be "
        "near 0, and bounds how much of a gap chance alone produces here.",
        "",
    ]
    return out


def _loss_rows(study: Study, arms: Sequence[str]) -> list[list[Any]]:
    rows = []
    for a in arms:
        t = study.training[a]
        ls = losses(t["log_history"])
        m = t["manifest"]
        rows.append(
            [
                a,
                m.get("global_step"),
                _f(ls["first_train"]),
                _f(ls["final_train"]),
                _f(ls["final_eval"]),
                _f(ls["min_eval"])
                + (f" (step {ls['min_eval_step']})" if ls["min_eval_step"] is not None else ""),
                _f(ls["eval_rise"], "{:+.3f}"),
                _f(
                    ls["final_eval"] - ls["final_train"]
                    if ls["final_eval"] is not None and ls["final_train"] is not None
                    else None,
                    "{:+.3f}",
                ),
            ]
        )
    return rows


def _overfit_verdict(study: Study, arm: str, gap: dict[str, Any] | None) -> str:
    ls = losses(study.training[arm]["log_history"])
    signs = []
    if ls["eval_rise"] is not None and ls["min_eval"] and ls["eval_rise"] > 0.05 * ls["min_eval"]:
        signs.append(
            f"validation loss ended {ls['eval_rise']:+.3f} above its minimum (step {ls['min_eval_step']})"
        )
    if gap is not None and gap["ci"][0] > 0:
        signs.append(f"train-subset pass@1 exceeds validation pass@1 by {gap['gap']:+.3f} {_ci(gap['ci'])}")
    if signs:
        return f"`{arm}`: evidence of overfitting: " + "; ".join(signs) + "."
    return (
        f"`{arm}`: no evidence of overfitting (validation loss did not rise more than 5% above its minimum"
        + (", and the train/validation pass@1 gap's CI includes 0" if gap is not None else "")
        + ")."
    )


def section_finetune(study: Study) -> list[str]:
    arms = study.plan.comparisons.finetune
    out = ["## 2. Fine-tuning methods compared", ""]
    desc = []
    for a in arms:
        m = study.training[a]["manifest"]
        hp = m.get("hyperparameters") or {}
        desc.append(
            f"`{a}` ({m.get('method')}: {m['parameters']['trainable']:,} trainable parameters, "
            f"{100 * m['parameters']['trainable_ratio']:.2f}% of {m['parameters']['total']:,}; lr {hp.get('learning_rate')}, "
            f"{m.get('global_step')} steps of effective batch {hp.get('effective_batch_size')})"
        )
    sft = study.prep["sft"]
    out += [
        "Methods: " + "; ".join(desc) + ".",
        "",
        f"SFT data: `{sft['dataset']}`: {sft['rows']} rows, {sft['removed_by_decontamination']} removed because they "
        f"match an evaluated problem, {sft['train_rows']} trained on, {sft['validation_rows']} held out for validation "
        "(split by problem).",
        "",
    ]
    out += [_best_statement(study, arms, "fine-tuning methods"), ""]
    out += ["Paired comparisons:", "", comparison_table(_comparison_rows(study, arms, study.benches)), ""]
    out += [
        "### Is there evidence of overfitting?",
        "",
        "Losses from each run's `trainer_state.json`:",
        "",
        md_table(
            [
                "method",
                "steps",
                "first train loss",
                "final train loss",
                "final validation loss",
                "min validation loss",
                "final - min validation",
                "validation - train (final)",
            ],
            _loss_rows(study, arms),
        ),
        "",
        "![SFT losses](sft_loss.png)",
        "",
    ]
    gaps: dict[str, Any] = {}
    if study.has(SFT_TRAIN) and study.has(SFT_VALIDATION):
        rows, gaps = _overfit_probe_rows(study, arms)
        out += [
            f"pass@1 on problems the models were trained on (`{SFT_TRAIN}`) against held-out problems of the same "
            f"source (`{SFT_VALIDATION}`) and the primary benchmark:",
            "",
            md_table(
                [
                    "method",
                    "pass@1 train subset",
                    "pass@1 validation",
                    f"pass@1 {study.primary}",
                    "gap [95% CI]",
                    "gap significant",
                ],
                rows,
            ),
            "",
        ]
    out += [
        "Rule: a method shows overfitting when its validation loss ends more than 5% above its minimum, or when "
        "its train-subset pass@1 exceeds its validation pass@1 with the gap's 95% CI above 0.",
        "",
    ]
    out += [f"- {_overfit_verdict(study, a, gaps.get(a))}" for a in arms] + [""]
    return out


def section_errors(study: Study) -> list[str]:
    arms = study.plan.comparisons.four
    bench = study.primary
    runs = [study.run(a, bench) for a in arms]
    out = [
        "## 3. Error analysis of the four approaches",
        "",
        f"Approaches: {', '.join(f'`{a}`' for a in arms)}, on `{bench}` (the taxonomy over every benchmark follows).",
        "",
        "### Quantitative: error taxonomy",
        "",
    ]
    from letitcode.results.tables import taxonomy_table

    out += [taxonomy_table(runs), "", "![error taxonomy](error_taxonomy.png)", ""]
    pooled = []
    cats = _categories([study.run(a, b) for a in arms for b in study.benches])
    for cat in cats:
        pooled.append(
            [
                cat,
                *[
                    sum(
                        (study.run(a, b).results["error_taxonomy"].get("counts") or {}).get(cat, 0)
                        for b in study.benches
                    )
                    for a in arms
                ],
            ]
        )
    out += [
        "Pooled over every benchmark (failed samples per category):",
        "",
        md_table(["category", *arms], pooled or [["(no failures)", *[0 for _ in arms]]]),
        "",
    ]

    out += ["### Quantitative: do they fail on the same problems?", ""]
    fails = {a: failures(study.run(a, bench)) for a in arms}
    n = len(study.prep["benchmarks"][bench]["task_ids"])
    all_fail = set.intersection(*fails.values())
    any_fail = set.union(*fails.values())
    out += [
        f"- Problems every approach fails: **{len(all_fail)} of {n}** ({_pct(len(all_fail) / n)})"
        + (
            f": {', '.join(f'`{t}`' for t in sorted(all_fail)[:15])}{' ...' if len(all_fail) > 15 else ''}"
            if all_fail
            else ""
        ),
        f"- Problems at least one approach fails: {len(any_fail)} of {n}; solved by every approach: {n - len(any_fail)}.",
        "- Failures per approach: " + ", ".join(f"{a} {len(f)}" for a, f in fails.items()) + ".",
        "",
    ]
    matrix = [[jaccard(fails[a], fails[b]) for b in arms] for a in arms]
    rows = []
    for i, a in enumerate(arms):
        for b in arms[i + 1 :]:
            both = fails[a] & fails[b]
            same = _same_category_share(study.run(a, bench), study.run(b, bench), both)
            rows.append(
                [
                    a,
                    b,
                    len(fails[a]),
                    len(fails[b]),
                    len(both),
                    _f(jaccard(fails[a], fails[b])),
                    _pct(same) if same is not None else "-",
                ]
            )
    out += [
        "Jaccard similarity of failure sets (|A ∩ B| / |A ∪ B|; 1 = the same problems fail), and, on problems both "
        "fail, the share where the error category family is the same:",
        "",
        md_table(
            ["A", "B", "A fails", "B fails", "both fail", "Jaccard", "same error family"], rows, "llrrrrr"
        ),
        "",
        "![failure overlap](failure_overlap.png)",
        "",
    ]
    mean_j = [v for i, row in enumerate(matrix) for j, v in enumerate(row) if j > i and v is not None]
    if mean_j:
        out += [
            f"Mean pairwise Jaccard: {np.mean(mean_j):.2f}. "
            + (
                "The approaches largely fail on the same problems."
                if np.mean(mean_j) >= 0.5
                else "The approaches fail on substantially different problems."
            ),
            "",
        ]
    out += ["### Qualitative: examples", ""] + qualitative_examples(study, arms, bench)
    return out


def _same_category_share(a: Run, b: Run, tasks: set[str]) -> float | None:
    from letitcode.scoring.taxonomy import category_family

    if not tasks:
        return None
    ca = {r["task_id"]: r.get("error_category") for r in a.records if not r.get("passed")}
    cb = {r["task_id"]: r.get("error_category") for r in b.records if not r.get("passed")}
    same = sum(
        1 for t in tasks if ca.get(t) and cb.get(t) and category_family(ca[t]) == category_family(cb[t])
    )
    return same / len(tasks)


def qualitative_examples(
    study: Study, arms: Sequence[str], bench: str, *, most: int = 5, least: int = 3
) -> list[str]:
    """3-5 examples, chosen by rule: one failure per error category (most frequent first), preferring problems
    every approach fails and then the shortest code; then a problem one approach solves and another fails
    (both answers shown). Filled up with further failures, or solved problems, to at least three."""
    recs = {
        a: {r["task_id"]: r for r in study.run(a, bench).records if r.get("sample_index", 0) == 0}
        for a in arms
    }
    fails = {a: failures(study.run(a, bench)) for a in arms}
    all_fail = set.intersection(*fails.values())
    problems = _problems(study, bench)
    chosen: list[tuple[str, str, str]] = []  # (kind, arm, task_id)
    seen_tasks: set[str] = set()
    counts: dict[str, int] = {}
    for a in arms:
        for r in recs[a].values():
            if r.get("error_category"):
                counts[r["error_category"]] = counts.get(r["error_category"], 0) + 1
    for cat in sorted(counts, key=lambda c: (-counts[c], c)):
        cands = [
            (t not in all_fail, len(r.get("code") or r.get("completion") or ""), a, t)
            for a in arms
            for t, r in recs[a].items()
            if r.get("error_category") == cat and t not in seen_tasks
        ]
        if cands and len(chosen) < most - 1:
            used = {w for _, w, _ in chosen}
            _, _, _, a, t = min((a in used, *c) for c in cands for a in [c[2]])
            chosen.append(("failure", a, t))
            seen_tasks.add(t)
    contrast = sorted(
        (t, a, b)
        for a in arms
        for b in arms
        if a != b
        for t in recs[a]
        if recs[a][t].get("passed") and t in fails[b] and t not in seen_tasks
    )
    if contrast and len(chosen) < most:
        t, a, b = contrast[0]
        chosen.append(("contrast", f"{a}|{b}", t))
        seen_tasks.add(t)
    extra = [(a, t) for a in arms for t in recs[a] if t not in seen_tasks]
    while len(chosen) < least:
        left = [(a, t) for a, t in extra if t not in seen_tasks]
        if not left:
            break
        used = [w for _, w, _ in chosen]
        # spread the examples over approaches; failures before solved problems; short code reads best
        a, t = min(
            left,
            key=lambda at: (
                used.count(at[0]),
                bool(recs[at[0]][at[1]].get("passed")),
                len(recs[at[0]][at[1]].get("code") or ""),
                at,
            ),
        )
        chosen.append(("failure" if not recs[a][t].get("passed") else "solved", a, t))
        seen_tasks.add(t)
    out = [
        f"Chosen by rule (see `qualitative_examples` in `letitcode/study/report.py`): one failure per error category, "
        f"preferring problems every approach fails, then a problem one approach solves and another fails; from `{bench}`.",
        "",
    ]
    for i, (kind, who, t) in enumerate(chosen, 1):
        p = problems.get(t)
        title = (p.title if p else None) or t
        diff = (recs[who.split("|")[0]][t].get("difficulty")) or "no difficulty"
        out += [f"#### Example {i}: {title} ({diff})", ""]
        if p is not None:
            out += [
                "> " + " ".join(p.description.split())[:500] + (" ..." if len(p.description) > 500 else ""),
                "",
            ]
        whos = who.split("|") if kind == "contrast" else [who]
        for a in whos:
            r = recs[a][t]
            verdict = "passed" if r.get("passed") else f"`{r.get('error_category')}`"
            fails_all = " (every approach fails this problem)" if t in all_fail else ""
            out += [
                f"`{a}`: {verdict}{fails_all}, {r.get('tests_passed', 0)}/{r.get('tests_total', 0)} tests passed.",
                "",
            ]
            if r.get("code"):
                out += ["```python", str(r["code"]).rstrip()[:1500], "```", ""]
            else:
                answer = str(r.get("completion") or "").strip()
                out += (
                    ["No code was extracted; the answer began:", "", "```text", answer[:400], "```", ""]
                    if answer
                    else ["The model's answer was empty (it stopped at once).", ""]
                )
            if not r.get("passed"):
                if r.get("first_failure"):
                    out += [f"First failing test: `{' '.join(str(r['first_failure']).split())[:300]}`", ""]
                if r.get("error"):
                    out += [f"Error: `{' '.join(str(r['error']).split())[:300]}`", ""]
    if len(chosen) < least:
        out += [
            f"Only {len(chosen)} example(s): `{bench}` has only {len(extra) + len(chosen)} evaluated problem(s)."
        ]
    return out


def _problems(study: Study, bench: str) -> dict[str, Any]:
    """The evaluated problems of a benchmark (for titles and statements in the examples)."""
    from letitcode.data.benchmarks import load_benchmark

    spec = study.prep["benchmarks"][bench]["spec"]
    try:
        b = load_benchmark(
            spec["benchmark"],
            dataset=spec.get("dataset"),
            split=spec.get("split"),
            revision=spec.get("revision"),
        )
    except UserError:
        return {}  # the statements are a convenience; the example still shows code, tests and errors
    want = set(study.prep["benchmarks"][bench]["task_ids"])
    return {p.task_id: p for p in b.problems if p.task_id in want}


def section_deployment(study: Study) -> tuple[list[str], list[dict[str, Any]], dict[str, Any]]:
    rows = deployment_rows(study)
    rec = recommend(study, rows)
    d = study.plan.deployment
    out = [
        "## 4. Which approach to deploy",
        "",
        f"Measured on `{study.primary}` with `{study.plan.backend}` generation ({study.plan.dtype}, batch "
        f"{study.plan.batch_size}) on {rows[0]['device']}. Latency is per request (a batched request waits for its "
        f"batch). Cost per 1k problems = 1000 / measured problems per second / 3600 x {d.price_per_hour_usd:g} USD per "
        f"hour ({d.hardware}; {d.price_source or 'price as given in the plan'}). Memory is "
        f"{rows[0]['memory_kind']} of the evaluation process"
        + (
            f", out of the GPU's {rows[0]['gpu_total_gib']:.1f} GiB (torch.cuda.get_device_properties)"
            if rows[0].get("gpu_total_gib")
            else ""
        )
        + ". "
        + (
            "Fine-tuned adapters were merged into their base model for evaluation and serving (`sft.merge`), so an "
            "adapter costs the base model's memory and speed."
            if study.plan.sft.merge
            else "Fine-tuned adapters were served unmerged, on top of their base model."
        ),
        "",
    ]
    table = []
    for r in rows:
        table.append(
            [
                r["arm"],
                r["kind"],
                f"{r['pass@1']:.3f} {_ci(r['ci'])}",
                _f(r["p50"], "{:.2f}"),
                _f(r["p95"], "{:.2f}"),
                _f(r["tokens_per_solved"], "{:.0f}") if r["tokens_per_solved"] is not None else "none solved",
                _f(r["memory_gib"], "{:.2f}")
                + (" (4-bit base)" if str(r.get("quantization") or "").startswith("4bit") else ""),
                f"{r['problems_per_s']:.3f}",
                f"{r['cost_per_1k']:.4f}",
                _f(r["train_s"], "{:.0f}") if r["train_s"] is not None else "-",
                f"{r['train_cost']:.4f}" if r["train_cost"] is not None else "-",
            ]
        )
    mem_header = (
        "GPU memory, peak (GiB)"
        if rows[0]["memory_kind"].startswith("GPU")
        else "memory, peak RSS (GiB; no GPU)"
    )
    out += [
        md_table(
            [
                "approach",
                "kind",
                "pass@1 [95% CI]",
                "latency p50 (s)",
                "latency p95 (s)",
                "tokens per solved problem",
                mem_header,
                "problems / s",
                "cost per 1k problems (USD)",
                "training time (s)",
                "training cost (USD)",
            ],
            table,
            "ll" + "r" * 9,
        ),
        "",
        "![accuracy against cost](deployment.png)",
        "",
    ]
    best, choice = rec["best"], rec["choice"]
    out += [
        "**Rule.** (1) Keep every approach whose pass@1 is not significantly below the most accurate one "
        "(paired exact McNemar test, p < 0.05 with the difference CI excluding 0). (2) Among those, pick the lowest "
        f"cost per 1k problems; costs within {COST_TIE:.0%} of the cheapest tie, and ties go to the lower "
        "peak memory (a QLoRA arm counts its 4-bit base), then the lower p95 latency, then fewer tokens per solved "
        "problem. One-off training cost is listed but not part of the "
        "per-problem cost.",
        "",
    ]
    kept = ", ".join(f"`{r['arm']}`" for r, _ in rec["tied"])
    dropped = ", ".join(f"`{r['arm']}` (p={c['p_value']:.3g})" for r, c in rec["dropped"]) or "none"
    out += [
        f"**Recommendation: deploy `{choice['arm']}`.** The most accurate approach (ties broken by cost) is `{best['arm']}` "
        f"(pass@1 {best['pass@1']:.3f} {_ci(best['ci'])}). Statistically indistinguishable from it: {kept}; "
        f"significantly less accurate: {dropped}. Of the former, `{choice['arm']}` costs "
        f"{choice['cost_per_1k']:.4f} USD per 1k problems at p95 latency {choice['p95']:.2f} s "
        f"(pass@1 {choice['pass@1']:.3f})."
    ]
    if best["pass@1"] == 0:
        out[-1] += (
            " No approach solved any problem, so accuracy cannot separate them and the choice rests on cost "
            "alone; none is fit to deploy at this budget."
        )
    elif choice["arm"] != best["arm"]:
        out[-1] += (
            f" Choosing it over `{best['arm']}` saves {best['cost_per_1k'] - choice['cost_per_1k']:.4f} USD per "
            "1k problems without a significant loss of accuracy at this sample size; a larger evaluation could "
            "still separate them."
        )
    out += [""]
    return out, rows, rec


def section_additional(study: Study) -> list[str]:
    c = study.plan.comparisons
    full, *peft = c.full_vs_peft
    out = ["## 5. Additional comparisons", "", f"### Full fine-tuning against PEFT ({', '.join(peft)})", ""]
    rows = []
    for a in c.full_vs_peft:
        t = study.training[a]
        m, done = t["manifest"], t["done"]
        ls = losses(t["log_history"])
        steps = m.get("global_step") or 0
        rows.append(
            [
                a,
                m.get("method"),
                f"{m['parameters']['trainable']:,}",
                f"{100 * m['parameters']['trainable_ratio']:.2f}%",
                _f(m.get("train_seconds") / steps if steps and m.get("train_seconds") else None, "{:.2f}"),
                _f(training_memory(m, done)[0], "{:.2f}"),
                _f(ls["final_train"]),
                _f(ls["final_eval"]),
                *[p1(study.run(a, b)) for b in study.benches],
            ]
        )
    kinds = {
        training_memory(study.training[a]["manifest"], study.training[a]["done"])[1] for a in c.full_vs_peft
    }
    mem_col = (
        "peak training GPU memory (GiB, largest rank)"
        if kinds == {"GPU peak"}
        else (
            "peak training RSS (GiB; no GPU)"
            if kinds == {"peak RSS"}
            else "peak training memory (GiB; GPU where measured, else RSS)"
        )
    )
    out += [
        md_table(
            [
                "arm",
                "method",
                "trainable parameters",
                "trainable share",
                "s / step",
                mem_col,
                "final train loss",
                "final validation loss",
                *[f"pass@1 {b}" for b in study.benches],
            ],
            rows,
            "ll" + "r" * (6 + len(study.benches)),
        ),
        "",
    ]
    comps = []
    for p in peft:
        for b in study.benches:
            comp = paired(study, full, p, b)
            comp["labels"] = [f"{full} ({b})", f"{p} ({b})"]
            comps.append(comp)
    out += [
        "Full fine-tuning against each PEFT type, paired on the same problems:",
        "",
        comparison_table(comps),
        "",
    ]
    out += _verdict_lines(study, full, peft)
    rag = c.rag
    out += [f"### Retrieval augmentation (`{rag}`) against the four base configurations", ""]
    stats = (study.run(rag, study.primary).manifest.get("prompt") or {}).get("exemplars") or {}
    if stats:
        out += [
            f"`{rag}` retrieves k={stats.get('k')} exemplars per problem with {stats.get('retriever')} from "
            f"{(stats.get('source') or {}).get('source')} ({stats.get('eligible')} eligible candidates, "
            f"{stats.get('excluded_overlap')} excluded for overlapping the evaluation set; mean "
            f"{stats.get('similarity')} of the chosen exemplars {_f(stats.get('mean_similarity'))}).",
            "",
        ]
    comps = []
    for base in c.rag_baselines:
        for b in study.benches:
            comp = paired(study, rag, base, b)
            comp["labels"] = [f"{rag} ({b})", f"{base} ({b})"]
            comps.append(comp)
    out += [comparison_table(comps), ""]
    out += _verdict_lines(study, rag, c.rag_baselines)
    return out


def _verdict_lines(study: Study, a: str, others: Sequence[str]) -> list[str]:
    lines = []
    for o in others:
        comp = paired(study, a, o, study.primary)
        lines.append(
            f"- `{a}` against `{o}` on `{study.primary}`: {comp['difference']:+.3f} {_ci(comp['ci'])}, "
            f"p={comp['p_value']:.3g}: **{comp['verdict']}**."
        )
    return [*lines, ""]


def section_ethics(study: Study, rows: Sequence[dict[str, Any]]) -> list[str]:
    out = ["## 6. Ethical considerations", "", "### Licence and provenance of the data", ""]
    table = []
    for b in study.benches:
        m = study.prep["benchmarks"][b]["manifest"]
        table.append(
            [
                b,
                m["name"],
                m["source"],
                m.get("revision") or "-",
                m["version"],
                (REGISTRY[m["name"]].licence if m["name"] in REGISTRY else "see its card"),
            ]
        )
    sft = study.prep["sft"]
    if sft.get("enabled"):
        s = sft["source"]
        table.append(
            [
                "SFT data",
                sft.get("layout") or "-",
                s["source"],
                s.get("revision") or "-",
                s["version"],
                study.plan.sft.license or "see its card",
            ]
        )
    out += [
        md_table(
            ["data", "adapter", "source", "revision", "version (sha256 or package)", "licence"],
            table,
            "llllll",
        ),
        "",
        "LeetCode problem statements are copyrighted by LeetCode; the datasets redistribute them for research. "
        "Results, adapters and generated code from this study should be shared for research and education, "
        "with these licences and attributions kept.",
        "",
    ]
    out += ["### Benchmark contamination", ""]
    worst = max(
        study.benches, key=lambda b: (study.prep["contamination"][b].get("sft_pool") or {}).get("share") or 0
    )
    worst_c = study.prep["contamination"][worst].get("sft_pool")
    temporal = [b for b in study.benches if study.prep["contamination"][b]["temporal"]["temporal"]]
    out += [
        f"The SFT data was decontaminated against every evaluated problem ({sft.get('removed_by_decontamination', 0)} "
        "rows removed by slug, title or description hash) before training. Residual overlap is measured as shared "
        f"{study.prep['contamination'][worst]['ngram']}-grams: highest for `{worst}` "
        f"({_pct((worst_c or {}).get('share'))})"
        + (
            f"; `{SFT_TRAIN}` is contaminated by design (it measures memorisation)"
            if study.has(SFT_TRAIN)
            else ""
        )
        + ". Temporal splits (problems released after the SFT data's cutoff): "
        + (", ".join(f"`{b}`" for b in temporal) if temporal else "none")
        + ". HumanEval and MBPP are years old and "
        "public, so the base model may have seen them in pretraining; their scores are upper bounds.",
        "",
    ]
    out += ["### Code-execution safety", ""]
    iso = sorted({str(r.manifest.get("isolation")) for r in study.runs.values()})
    status: dict[str, int] = {}
    for r in study.runs.values():
        for k, v in (r.results.get("status_counts") or {}).items():
            status[k] = status.get(k, 0) + v
    total = sum(status.values())
    out += [
        f"All {total} generated programs were executed in the sandbox with isolation level(s) "
        f"{', '.join(f'`{i}`' for i in iso)} (no network, read-only filesystem, scrubbed environment, CPU/memory/"
        f"time limits, whole process group killed afterwards). Of them {status.get('timeout', 0)} hit the time limit, "
        f"{status.get('memory_limit', 0)} the memory limit and {status.get('killed', 0)} were killed. Never run "
        "model-written code outside such a sandbox, and never where it can read credentials.",
        "",
    ]
    out += ["### Over-reliance on generated code", ""]
    best = max(rows, key=lambda r: r["pass@1"])
    plausible = sum(
        1
        for r in study.run(best["arm"], study.primary).records
        if r.get("status") == "wrong_answer" and (r.get("tests_passed") or 0) > 0
    )
    out += [
        f"Even the most accurate approach here (`{best['arm']}`, pass@1 {best['pass@1']:.3f}) fails "
        f"{_pct(1 - best['pass@1'])} of the held-out problems, and {plausible} of its wrong answers pass some but not "
        "all tests: plausible-looking code that is wrong. Generated solutions need tests and review by someone who "
        "understands the problem; pass@1 on hidden tests is not a correctness guarantee.",
        "",
    ]
    out += [
        "### Academic integrity on LeetCode",
        "",
        "Submitting generated solutions to LeetCode contests or interview screens misrepresents one's own skill and "
        "breaks LeetCode's contest rules. The models and the leaderboard are meant for studying code models and for "
        "learning (comparing one's own solution with a generated one after solving), not for contests, graded "
        "coursework or assessments.",
        "",
    ]
    return out


def section_provenance(study: Study) -> list[str]:
    from letitcode.results.dataset import config_name, model_identity

    out = [
        "## Provenance and measured durations",
        "",
        f"Every run is a config of the result dataset in `dataset/` (what `leaderboard/app.py --results "
        f"{study.out}` shows, except the `{SFT_TRAIN}`/`{SFT_VALIDATION}` probes) with its manifest beside it.",
        "",
    ]
    rows = []
    for (arm, bench), r in study.runs.items():
        model, _ = model_identity(r.manifest)
        prompt = r.manifest.get("prompt") or {}
        rel = r.path.relative_to(study.out)
        where = f"`{rel}/dataset`" + ("" if bench in (SFT_TRAIN, SFT_VALIDATION) else " and `dataset`")
        rows.append(
            [
                arm,
                bench,
                f"`{config_name(model, r.benchmark, r.approach)}` in {where}",
                f"`{rel}/manifest.json`",
                (r.manifest.get("model") or {}).get("fingerprint"),
                prompt.get("template_hash"),
                r.manifest.get("task_ids_sha256"),
            ]
        )
    out += [
        md_table(
            [
                "arm",
                "benchmark",
                "result dataset config",
                "manifest",
                "model fingerprint",
                "template hash",
                "task ids sha256",
            ],
            rows,
            "lllllll",
        ),
        "",
    ]
    t_rows = [
        [k, f"{v['seconds']:.1f}", v["attempts"]] for k, v in study.timings.items() if isinstance(v, dict)
    ]
    total = sum(v["seconds"] for v in study.timings.values() if isinstance(v, dict))
    out += [
        "Measured wall time per unit (`timings.json`, summed over resumed attempts):",
        "",
        md_table(["unit", "seconds", "attempts"], [*t_rows, ["total", f"{total:.1f}", ""]]),
        "",
    ]
    if study.plan.estimate:
        out += [f"The plan's estimate: {' '.join(study.plan.estimate.split())}", ""]
    return out


# ------------------------------------------------------------------------------------------------ the report

SECTIONS = (
    "## Scores",
    "## 1. In-context learning methods compared",
    "## 2. Fine-tuning methods compared",
    "## 3. Error analysis of the four approaches",
    "## 4. Which approach to deploy",
    "## 5. Additional comparisons",
    "## 6. Ethical considerations",
    "## Provenance and measured durations",
)
FIGURES = (
    "pass_at_1_overview.png",
    "pass_by_difficulty_icl.png",
    "sft_loss.png",
    "error_taxonomy.png",
    "failure_overlap.png",
    "deployment.png",
)


def write_report(out: str | Path) -> Path:
    """Write OUTPUT_DIR/report.md and its PNGs from the study's results. Returns the report's path."""
    out = Path(out)
    study = load_study(out)
    c = study.plan.comparisons
    for name in (SFT_TRAIN, SFT_VALIDATION):
        if name not in study.benches and name not in study.prep.get("skipped", {}):
            raise UserError(
                f"report: {name!r} was neither evaluated nor skipped with a reason in prepare.json"
            )
    plot_overview(study, out / "pass_at_1_overview.png")
    plot_pass_by_difficulty([study.run(a, study.primary) for a in c.icl], out / "pass_by_difficulty_icl.png")
    plot_losses(study, out / "sft_loss.png")
    plot_taxonomy([study.run(a, study.primary) for a in c.four], out / "error_taxonomy.png")
    fails = {a: failures(study.run(a, study.primary)) for a in c.four}
    plot_jaccard(
        c.four, [[jaccard(fails[a], fails[b]) for b in c.four] for a in c.four], out / "failure_overlap.png"
    )
    deploy, rows, rec = section_deployment(study)
    plot_deployment(rows, rec["choice"]["arm"], out / "deployment.png")

    created = min((str(r.manifest.get("created")) for r in study.runs.values()), default="?")
    head = [
        f"# LetItCode study: {study.plan.name}",
        "",
        f"{' '.join(study.plan.description.split())}",
        "",
        f"Model `{study.plan.model}`; plan `{Path(study.plan.source).name}`; {len(study.plan.arms)} approaches x "
        f"{len(study.benches)} benchmarks = {len(study.runs)} runs, the first started {created}. Every number below "
        "is read from the runs' result files; the provenance table at the end maps each run to its result-dataset "
        "config and manifest.",
        "",
    ]
    body = (
        head
        + section_scores(study)
        + section_icl(study)
        + section_finetune(study)
        + section_errors(study)
        + deploy
        + section_additional(study)
        + section_ethics(study, rows)
        + section_provenance(study)
    )
    text = "\n".join(body).rstrip() + "\n"
    (out / "report.md").write_text(text)
    return out / "report.md"
