"""The report's numbers: formatting, failure sets and Jaccard, the unpaired gap, paired tests, losses and memory readings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from letitcode.results.tables import Run
from letitcode.scoring.stats import format_ci, paired_comparison, per_problem_pass_at_k
from letitcode.study.report.load import Study
from letitcode.training.artifacts import loss_curves

ALPHA = 0.05


def num(x: Any, fmt: str = "{:.3f}") -> str:
    """A number in `fmt`, or `-` when it is missing."""
    return "-" if x is None else fmt.format(x)


def pct(x: float | None) -> str:
    """A share as a whole percentage, or `-`."""
    return "-" if x is None else f"{100 * x:.0f}%"


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

    return list(per_problem_pass_at_k(run.records, 1).values())


def paired(study: Study, a: str, b: str, bench: str) -> dict[str, Any]:

    return paired_comparison(study.run(a, bench).records, study.run(b, bench).records, labels=(a, b))


def losses(log_history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The loss curves (training's one parser) and the numbers the report reads off them."""
    out: dict[str, Any] = loss_curves(log_history)
    train, evals = out["train"], out["eval"]
    out["final_train"] = train[-1][1] if train else None
    out["first_train"] = train[0][1] if train else None
    out["final_eval"] = evals[-1][1] if evals else None
    if evals:
        step, best = min(evals, key=lambda e: e[1])
        out.update(min_eval=best, min_eval_step=step, eval_rise=evals[-1][1] - best)
    else:
        out.update(min_eval=None, min_eval_step=None, eval_rise=None)
    return out


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
