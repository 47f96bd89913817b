"""The study's own figures: pass@1 overview, SFT losses, failure overlap, accuracy against cost."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from letitcode.study.report.load import Study
from letitcode.study.report.numbers import losses


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
