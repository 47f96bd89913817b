"""The report's scores section: every approach on every benchmark, with each benchmark's contamination note."""

from __future__ import annotations

from letitcode.results.tables import md_table
from letitcode.study.report.load import Study
from letitcode.study.report.numbers import num, p1, pct


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
            f"{pool['n_overlap']}/{pool['n_problems']} ({pct(pool['share'])}) of the evaluated problems share a "
            f"{c['ngram']}-gram with the SFT data"
        )
        if trained is not None:
            overlap += f" ({trained['n_overlap']}/{trained['n_problems']}, {pct(trained['share'])}, with the rows actually trained on)"
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
                    f"{cont[b]['sft_pool']['n_overlap']}/{cont[b]['sft_pool']['n_problems']} ({pct(cont[b]['sft_pool']['share'])})"
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
                    num(r.get("test_pass_rate")),
                    num(r.get("bleu"), "{:.2f}"),
                    num(r.get("codebleu")),
                    *[
                        num(((r.get("by_difficulty") or {}).get(lv) or {}).get("pass@1"))
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
