"""The provenance table (each run's result-dataset config and manifest) and the measured durations."""

from __future__ import annotations

from letitcode.hub.spec import config_name, model_identity
from letitcode.results.tables import md_table
from letitcode.study.plan import SFT_TRAIN, SFT_VALIDATION
from letitcode.study.report.load import Study


def section_provenance(study: Study) -> list[str]:

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
