"""The Markdown report of finished runs (`evaluate/report.py`): every table, the two plots as PNGs beside it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from letitcode.results.plots import plot_pass_by_difficulty, plot_taxonomy
from letitcode.results.tables import (
    Run,
    comparison_table,
    comparisons,
    cost_table,
    difficulty_table,
    examples_section,
    load_runs,
    model_table,
    quality_table,
    taxonomy_by_difficulty,
    taxonomy_table,
)


def render(
    runs: Sequence[Run], *, title: str = "LetItCode results", images: dict[str, str] | None = None
) -> str:
    """The whole report as Markdown (images: name -> relative PNG path)."""
    images = images or {}
    out = [f"# {title}", ""]
    out += ["Runs: " + ", ".join(f"`{r.label}` ({r.path})" for r in runs), ""]
    out += ["## Scores", "", model_table(runs), ""]
    out += [
        "BLEU (sacrebleu, 0-100) and CodeBLEU (0-1) compare against reference solutions and are `-` where the",
        'benchmark has none. "tests passed" is the mean fraction of test cases passed per sample.',
        "",
    ]
    out += ["## pass@1 by difficulty", "", difficulty_table(runs), ""]
    if "pass_by_difficulty" in images:
        out += [f"![pass@1 by difficulty]({images['pass_by_difficulty']})", ""]
    comps = comparisons(runs)
    if comps:
        out += ["## Paired comparisons", "", comparison_table(comps), ""]
        out += ["A difference is claimed only when its 95% CI excludes 0 and p < 0.05.", ""]
    out += ["## Error taxonomy", "", taxonomy_table(runs), ""]
    if "taxonomy" in images:
        out += [f"![error taxonomy]({images['taxonomy']})", ""]
    for r in runs:
        tbl = taxonomy_by_difficulty(r)
        if tbl:
            out += [f"### {r.label}: errors by difficulty", "", tbl, ""]
    out += ["## Code quality", "", quality_table(runs), ""]
    out += [
        "Lint with ruff (rule families by code prefix), complexity with radon; see `quality.ruff` in results.json.",
        "",
    ]
    out += ["## Latency and cost", "", cost_table(runs), ""]
    ex = [examples_section(r) for r in runs]
    if any(ex):
        out += ["## Qualitative examples (one per error category)", "", *[e for e in ex if e]]
    return "\n".join(out).rstrip() + "\n"


def write_report(
    run_dirs: Sequence[str | Path],
    output_dir: str | Path,
    *,
    labels: Sequence[str] | None = None,
    title: str = "LetItCode results",
) -> Path:
    """Write report.md, pass_by_difficulty.png and error_taxonomy.png to output_dir. Returns report.md."""
    runs = load_runs(run_dirs, labels)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_pass_by_difficulty(runs, out / "pass_by_difficulty.png")
    plot_taxonomy(runs, out / "error_taxonomy.png")
    text = render(
        runs,
        title=title,
        images={"pass_by_difficulty": "pass_by_difficulty.png", "taxonomy": "error_taxonomy.png"},
    )
    (out / "report.md").write_text(text)
    return out / "report.md"
