"""Section 6: ethical considerations (licences, contamination, code-execution safety, over-reliance, integrity)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from letitcode.data.benchmarks.registry import REGISTRY
from letitcode.results.tables import md_table
from letitcode.study.plan import SFT_TRAIN
from letitcode.study.report.load import Study
from letitcode.study.report.numbers import pct


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
        f"({pct((worst_c or {}).get('share'))})"
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
        f"{pct(1 - best['pass@1'])} of the held-out problems, and {plausible} of its wrong answers pass some but not "
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
