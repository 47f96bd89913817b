"""Section 3: error analysis of the four approaches (taxonomy, failure overlap, qualitative examples chosen by rule)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from letitcode.errors import UserError
from letitcode.results.tables import Run, _categories, md_table, taxonomy_table
from letitcode.scoring.taxonomy import category_family
from letitcode.study.report.load import Study
from letitcode.study.report.numbers import failures, jaccard, num, pct


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
        f"- Problems every approach fails: **{len(all_fail)} of {n}** ({pct(len(all_fail) / n)})"
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
                    num(jaccard(fails[a], fails[b])),
                    pct(same) if same is not None else "-",
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

    if not tasks:
        return None
    ca = {r["task_id"]: r.get("error_category") for r in a.records if not r.get("passed")}
    cb = {r["task_id"]: r.get("error_category") for r in b.records if not r.get("passed")}
    same = sum(
        1 for t in tasks if ca.get(t) and cb.get(t) and category_family(ca[t]) == category_family(cb[t])
    )
    return same / len(tasks)


Records = dict[str, dict[str, dict[str, Any]]]  # arm -> task id -> its first sample's record
Example = tuple[str, str, str]  # (kind, arm or "a|b" for a contrast, task id)


def qualitative_examples(
    study: Study, arms: Sequence[str], bench: str, *, most: int = 5, least: int = 3
) -> list[str]:
    """3-5 examples, chosen by rule: one failure per error category (most frequent first), preferring problems
    every approach fails and then the shortest code; then a problem one approach solves and another fails
    (both answers shown). Filled up with further failures, or solved problems, to at least three."""
    recs: Records = {
        a: {r["task_id"]: r for r in study.run(a, bench).records if r.get("sample_index", 0) == 0}
        for a in arms
    }
    fails = {a: failures(study.run(a, bench)) for a in arms}
    all_fail = set.intersection(*fails.values())
    problems = _problems(study, bench)
    chosen = _failure_examples(recs, arms, all_fail, most)
    seen_tasks = {t for _, _, t in chosen}
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
    _fill_examples(chosen, recs, extra, least)
    out = [
        f"Chosen by rule (see `qualitative_examples` in `letitcode/study/report/error_analysis.py`): one failure "
        f"per error category, preferring problems every approach fails, then a problem one approach solves and "
        f"another fails; from `{bench}`.",
        "",
    ]
    for i, example in enumerate(chosen, 1):
        out += _example_lines(i, example, recs, problems.get(example[2]), all_fail)
    if len(chosen) < least:
        out += [
            f"Only {len(chosen)} example(s): `{bench}` has only {len(extra) + len(chosen)} evaluated problem(s)."
        ]
    return out


def _failure_examples(recs: Records, arms: Sequence[str], all_fail: set[str], most: int) -> list[Example]:
    """One failure per error category, most frequent category first, at most `most - 1` (a contrast follows);
    each from an approach not yet shown where possible, a problem every approach fails, then the shortest code."""
    chosen: list[Example] = []
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
    return chosen


def _fill_examples(
    chosen: list[Example], recs: Records, extra: Sequence[tuple[str, str]], least: int
) -> None:
    """Fill `chosen` up to `least` examples from `extra` (arm, task id) pairs not shown yet."""
    seen_tasks = {t for _, _, t in chosen}
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


def _example_lines(i: int, example: Example, recs: Records, p: Any, all_fail: set[str]) -> list[str]:
    """One example: the problem's title and statement, then each shown approach's verdict, code and error."""
    kind, who, t = example
    title = (p.title if p else None) or t
    diff = (recs[who.split("|")[0]][t].get("difficulty")) or "no difficulty"
    out = [f"#### Example {i}: {title} ({diff})", ""]
    if p is not None:
        out += [
            "> " + " ".join(p.description.split())[:500] + (" ..." if len(p.description) > 500 else ""),
            "",
        ]
    for a in who.split("|") if kind == "contrast" else [who]:
        out += _answer_lines(a, recs[a][t], t in all_fail)
    return out


def _answer_lines(arm: str, r: dict[str, Any], fails_everywhere: bool) -> list[str]:
    verdict = "passed" if r.get("passed") else f"`{r.get('error_category')}`"
    fails_all = " (every approach fails this problem)" if fails_everywhere else ""
    out = [
        f"`{arm}`: {verdict}{fails_all}, {r.get('tests_passed', 0)}/{r.get('tests_total', 0)} tests passed.",
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
