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

from pathlib import Path

from letitcode.errors import UserError
from letitcode.results.plots import plot_pass_by_difficulty, plot_taxonomy
from letitcode.study.plan import SFT_TRAIN, SFT_VALIDATION
from letitcode.study.report.deployment import section_deployment
from letitcode.study.report.error_analysis import section_errors
from letitcode.study.report.ethics import section_ethics
from letitcode.study.report.load import load_study
from letitcode.study.report.methods import section_additional, section_finetune, section_icl
from letitcode.study.report.numbers import failures, jaccard
from letitcode.study.report.plots import plot_deployment, plot_jaccard, plot_losses, plot_overview
from letitcode.study.report.provenance import section_provenance
from letitcode.study.report.scores import section_scores

__all__ = ["FIGURES", "SECTIONS", "load_study", "write_report"]

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
