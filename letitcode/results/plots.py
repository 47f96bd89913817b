"""PNG plots from finished runs: pass@1 by difficulty per run with CI error bars, and the error taxonomy as
stacked bars. The runs are `letitcode.results.tables.Run`s; the leaderboard draws its own, interactive ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from letitcode.results.tables import LEVELS, Run, _categories, _level


def plot_pass_by_difficulty(runs: Sequence[Run], path: str | Path) -> Path:
    """Grouped bars: pass@1 per difficulty level (and overall), one bar per run, 95% CI error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    levels = [lvl for lvl in LEVELS if any(_level(r, lvl)[0] is not None for r in runs)]
    x = np.arange(len(levels))
    width = 0.8 / max(len(runs), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(levels) + 0.6 * len(runs)), 4))
    for i, r in enumerate(runs):
        vals, lo, hi = [], [], []
        for lvl in levels:
            p, ci, _ = _level(r, lvl)
            vals.append(p if p is not None else np.nan)
            lo.append(p - ci[0] if p is not None and ci else 0.0)
            hi.append(ci[1] - p if p is not None and ci else 0.0)
        ax.bar(x + (i - (len(runs) - 1) / 2) * width, vals, width, yerr=[lo, hi], capsize=3, label=r.label)
    ax.set_xticks(x, levels)
    ax.set_ylim(0, 1)
    ax.set_ylabel("pass@1")
    ax.set_title("pass@1 by difficulty (95% bootstrap CI)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_taxonomy(runs: Sequence[Run], path: str | Path) -> Path:
    """Stacked bars: the share of each run's samples in each error category (the rest passed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cats = _categories(runs)
    labels = [r.label for r in runs]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(runs) + 3), 4.5))
    bottom = np.zeros(len(runs))
    cmap = plt.get_cmap("tab20")
    for j, cat in enumerate(cats):
        shares = []
        for r in runs:
            tax = r.results.get("error_taxonomy") or {}
            total = tax.get("n_samples") or r.results.get("n_samples") or 1
            shares.append(((tax.get("counts") or {}).get(cat, 0)) / total)
        ax.bar(labels, shares, bottom=bottom, label=cat, color=cmap(j % 20))
        bottom += np.array(shares)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of samples")
    ax.set_title("Error taxonomy (failed samples by category)")
    if cats:
        ax.legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
