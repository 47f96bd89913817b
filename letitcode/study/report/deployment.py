"""Section 4: which approach to deploy (throughput, latency, memory, cost) and the recommendation rule."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from letitcode.errors import UserError
from letitcode.results.tables import md_table
from letitcode.scoring.stats import format_ci
from letitcode.study.layout import run_dir
from letitcode.study.report.load import Study
from letitcode.study.report.numbers import eval_memory, num, paired

COST_TIE = 0.10  # costs within 10% of each other count as a tie in the recommendation rule


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
                format_ci(r["pass@1"], r["ci"]),
                num(r["p50"], "{:.2f}"),
                num(r["p95"], "{:.2f}"),
                num(r["tokens_per_solved"], "{:.0f}")
                if r["tokens_per_solved"] is not None
                else "none solved",
                num(r["memory_gib"], "{:.2f}")
                + (" (4-bit base)" if str(r.get("quantization") or "").startswith("4bit") else ""),
                f"{r['problems_per_s']:.3f}",
                f"{r['cost_per_1k']:.4f}",
                num(r["train_s"], "{:.0f}") if r["train_s"] is not None else "-",
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
        f"(pass@1 {format_ci(best['pass@1'], best['ci'])}). Statistically indistinguishable from it: {kept}; "
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
