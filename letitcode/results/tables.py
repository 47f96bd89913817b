"""Tables (Markdown) from finished runs: the seed study's result tables and more.

- per run: model | approach | benchmark | BLEU | CodeBLEU | tests passed | pass@1 [95% CI]
- pass@1 by difficulty, one column per run (approach), with CIs
- error taxonomy by approach and by difficulty, with one qualitative example per category
- code quality for passing and failing solutions
- paired comparisons of runs on the same problems (difference, CI, p-value, verdict)
- latency and cost
The plots are `letitcode.results.plots`; the whole report (Markdown plus PNGs) is `letitcode.results.report`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from letitcode.data.problem import DIFFICULTIES
from letitcode.errors import UserError
from letitcode.hub.spec import approach_of, model_identity
from letitcode.results.dataset import read_run_dir
from letitcode.scoring.stats import format_ci, paired_comparison

LEVELS = (*DIFFICULTIES, "All")


@dataclass
class Run:
    path: Path
    label: str
    results: dict[str, Any]
    manifest: dict[str, Any]
    records: list[dict[str, Any]] = field(repr=False)
    model: str = ""
    approach: str = ""
    benchmark: str = ""


def load_runs(run_dirs: Sequence[str | Path], labels: Sequence[str] | None = None) -> list[Run]:
    """Read run directories (samples.jsonl, results.json, manifest.json). Labels default to the approach,
    made unique with the model and benchmark where several runs share it."""
    if not run_dirs:
        raise UserError("no run directories given")
    if labels and len(labels) != len(run_dirs):
        raise UserError(f"{len(labels)} labels for {len(run_dirs)} runs")
    runs = []
    for d in run_dirs:
        d = Path(d)
        records, results, manifest = read_run_dir(d)
        model, _ = model_identity(manifest)
        bench = str((manifest.get("benchmark") or {}).get("name") or results.get("benchmark"))
        runs.append(Run(d, "", results, manifest, records, model, approach_of(manifest), bench))
    if labels:
        for r, lab in zip(runs, labels, strict=True):
            r.label = lab
    else:
        _auto_labels(runs)
    return runs


def _auto_labels(runs: list[Run]) -> None:
    keys = [
        lambda r: r.approach,
        lambda r: f"{r.model} / {r.approach}",
        lambda r: f"{r.model} / {r.approach} / {r.benchmark}",
    ]
    for key in keys:
        names = [key(r) for r in runs]
        if len(set(names)) == len(names):
            break
    else:
        names = [f"{n} #{i + 1}" for i, n in enumerate(names)]
    for r, n in zip(runs, names, strict=True):
        r.label = n


# hand-written: a Markdown table is a few lines, and tabulate is only a transitive dependency here
def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(headers) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3f}"
    return str(x).replace("|", "\\|").replace("\n", " ")


def _f(x: Any, fmt: str = "{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def _level(run: Run, level: str) -> tuple[float | None, list[float] | None, int | None]:
    """(pass@1, CI, n_problems) of a run at a difficulty level, or overall for "All"."""
    if level == "All":
        return (
            run.results.get("pass@1"),
            (run.results.get("ci") or {}).get("pass@1"),
            run.results.get("n_problems"),
        )
    row = (run.results.get("by_difficulty") or {}).get(level)
    if not row:
        return None, None, None
    return row.get("pass@1"), (row.get("ci") or {}).get("pass@1"), row.get("n_problems")


def model_table(runs: Sequence[Run]) -> str:
    """The seed's first table: per model, BLEU | CodeBLEU | tests passed | pass@1 (with its CI)."""
    rows = []
    for r in runs:
        res = r.results
        rows.append(
            [
                r.label,
                r.model,
                r.benchmark,
                res.get("n_problems"),
                _f(res.get("bleu"), "{:.2f}"),
                _f(res.get("codebleu")),
                _f(res.get("test_pass_rate")),
                format_ci(res.get("pass@1"), (res.get("ci") or {}).get("pass@1"), res.get("n_problems")),
            ]
        )
    return md_table(
        ["run", "model", "benchmark", "problems", "BLEU", "CodeBLEU", "tests passed", "pass@1 [95% CI] (n)"],
        rows,
        "lllrrrrr",
    )


def difficulty_table(runs: Sequence[Run]) -> str:
    """The seed's second table: pass@1 by difficulty, one column per run."""
    rows = []
    for level in LEVELS:
        cells: list[Any] = [level]
        for r in runs:
            p, ci, n = _level(r, level)
            cells.append(format_ci(p, ci, n))
        if any(c != "-" for c in cells[1:]):
            rows.append(cells)
    return md_table(["difficulty", *[r.label for r in runs]], rows)


def _categories(runs: Sequence[Run]) -> list[str]:
    totals: dict[str, int] = {}
    for r in runs:
        for cat, n in ((r.results.get("error_taxonomy") or {}).get("counts") or {}).items():
            totals[cat] = totals.get(cat, 0) + n
    return sorted(totals, key=lambda c: (-totals[c], c))


def taxonomy_table(runs: Sequence[Run]) -> str:
    """Error categories by approach: count and share of that run's samples."""
    cats = _categories(runs)
    rows = []
    for cat in cats:
        cells: list[Any] = [cat]
        for r in runs:
            tax = r.results.get("error_taxonomy") or {}
            n = (tax.get("counts") or {}).get(cat, 0)
            total = tax.get("n_samples") or r.results.get("n_samples") or 0
            cells.append(f"{n} ({n / total:.0%})" if total else n)
        rows.append(cells)
    rows.append(["passed", *[f"{(r.results.get('status_counts') or {}).get('passed', 0)}" for r in runs]])
    return md_table(["category", *[r.label for r in runs]], rows)


def taxonomy_by_difficulty(run: Run) -> str:
    by = (run.results.get("error_taxonomy") or {}).get("by_difficulty") or {}
    if not by:
        return ""
    levels = [lvl for lvl in DIFFICULTIES if lvl in by]
    cats = sorted(
        {c for lvl in levels for c in by[lvl]}, key=lambda c: (-sum(by[lv].get(c, 0) for lv in levels), c)
    )
    return md_table(["category", *levels], [[c, *[by[lvl].get(c, 0) for lvl in levels]] for c in cats])


def quality_table(runs: Sequence[Run]) -> str:
    rows = []
    for r in runs:
        q = r.results.get("quality") or {}
        for group in ("passing", "failing"):
            g = q.get(group) or {}
            if not g.get("n"):
                continue
            fams = g.get("ruff_by_family_per_sample") or {}
            top = ", ".join(f"{f} {v:.2f}" for f, v in list(fams.items())[:4]) or "-"
            rows.append(
                [
                    r.label,
                    group,
                    g["n"],
                    g.get("ruff_per_sample"),
                    g.get("clean_fraction"),
                    top,
                    g.get("cc_max_mean"),
                    g.get("loc_mean"),
                ]
            )
    return md_table(
        [
            "run",
            "solutions",
            "n",
            "ruff violations / solution",
            "lint-clean share",
            "top rule families / solution",
            "max cyclomatic complexity (mean)",
            "LOC (mean)",
        ],
        rows,
        "llrrrlrr",
    )


def comparisons(runs: Sequence[Run], *, k: int = 1) -> list[dict[str, Any]]:
    """Paired comparisons of every two runs of the same benchmark that share problems."""

    out = []
    for a, b in itertools.combinations(runs, 2):
        if a.benchmark != b.benchmark:
            continue
        if not {r["task_id"] for r in a.records} & {r["task_id"] for r in b.records}:
            continue
        out.append(paired_comparison(a.records, b.records, k=k, labels=(a.label, b.label)))
    return out


def comparison_table(comps: Sequence[dict[str, Any]]) -> str:
    rows = [
        [
            c["labels"][0],
            c["labels"][1],
            c["n_problems"],
            c["a"],
            c["b"],
            format_ci(c["difference"], c["ci"], signed=True),
            c["test"],
            f"{c['p_value']:.3g}",
            c["verdict"],
        ]
        for c in comps
    ]
    return md_table(
        ["A", "B", "shared problems", "pass@1 A", "pass@1 B", "A - B [95% CI]", "test", "p", "verdict"],
        rows,
        "llrrrllrl",
    )


def cost_table(runs: Sequence[Run]) -> str:
    rows = []
    for r in runs:
        gen = r.manifest.get("generation") or {}
        rows.append(
            [
                r.label,
                r.results.get("latency_p50_s"),
                r.results.get("latency_p95_s"),
                r.results.get("tokens_per_solved"),
                gen.get("tokens"),
                gen.get("wall_s"),
            ]
        )
    return md_table(
        [
            "run",
            "latency p50 (s)",
            "latency p95 (s)",
            "tokens per passing sample",
            "tokens",
            "generation wall (s)",
        ],
        rows,
    )


def examples_section(run: Run) -> str:
    ex = (run.results.get("error_taxonomy") or {}).get("examples") or {}
    parts = []
    for cat, e in ex.items():
        title = e.get("title") or e.get("task_id")
        lines = [f"#### {run.label}: `{cat}` - {title} ({e.get('difficulty') or 'no difficulty'})", ""]
        if e.get("problem"):
            lines += ["> " + " ".join(str(e["problem"]).split())[:400], ""]
        if e.get("code"):
            lines += ["```python", str(e["code"]).rstrip(), "```", ""]
        elif e.get("completion") is not None:
            lines += [
                "The model wrote no code. Its answer began:",
                "",
                "```text",
                str(e["completion"]).rstrip()[:400],
                "```",
                "",
            ]
        if e.get("first_failure"):
            lines += [f"First failing test: `{' '.join(str(e['first_failure']).split())[:300]}`", ""]
        if e.get("error"):
            lines += [f"Error: `{' '.join(str(e['error']).split())[:300]}`", ""]
        parts.append("\n".join(lines))
    return "\n".join(parts)
