"""Sections 1, 2 and 5: in-context and fine-tuning methods compared (with the overfitting evidence), full
fine-tuning against PEFT and retrieval augmentation against the base configurations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from letitcode.results.tables import comparison_table, md_table
from letitcode.scoring.stats import format_ci, per_problem_pass_at_k
from letitcode.study.plan import SFT_TRAIN, SFT_VALIDATION
from letitcode.study.report.load import Study
from letitcode.study.report.numbers import (
    losses,
    num,
    p1,
    paired,
    per_problem,
    training_memory,
    unpaired_gap,
)


def _comparison_rows(study: Study, arms: Sequence[str], benches: Sequence[str]) -> list[dict[str, Any]]:
    comps = []
    for b in benches:
        for i, a in enumerate(arms):
            for c in arms[i + 1 :]:
                comp = paired(study, a, c, b)
                comp["labels"] = [f"{a} ({b})", f"{c} ({b})"]
                comp["bench"], comp["pair"] = b, (a, c)
                comps.append(comp)
    return comps


def _best_statement(study: Study, arms: Sequence[str], what: str) -> str:
    ranked = sorted(arms, key=lambda a: -study.run(a, study.primary).results["pass@1"])
    best = ranked[0]
    top = study.run(best, study.primary).results["pass@1"]
    ties = [a for a in ranked[1:] if study.run(a, study.primary).results["pass@1"] == top]
    wins, loses_not = [], []
    for other in ranked[1:]:
        c = paired(study, best, other, study.primary)
        (wins if c["verdict"] == f"{best} better" else loses_not).append((other, c))
    head = f"Highest pass@1 on `{study.primary}` among the {what}: **{best}** ({p1(study.run(best, study.primary))})"
    if ties:
        head += f", tied with {', '.join(ties)}"

    def ps(pairs: Sequence[tuple[str, dict[str, Any]]]) -> str:
        return ", ".join(f"{o} (p={c['p_value']:.3g})" for o, c in pairs)

    if loses_not and not wins:
        return (
            head
            + f". It is **not** significantly better than any other ({ps(loses_not)}), so the data do not name a best method."
        )
    if loses_not:
        return head + f". It is significantly better than {ps(wins)}, but not than {ps(loses_not)}."
    return head + f". It is significantly better than every other ({ps(wins)})."


def _verdict_lines(study: Study, a: str, others: Sequence[str]) -> list[str]:
    lines = []
    for o in others:
        comp = paired(study, a, o, study.primary)
        lines.append(
            f"- `{a}` against `{o}` on `{study.primary}`: {format_ci(comp['difference'], comp['ci'], signed=True)}, "
            f"p={comp['p_value']:.3g}: **{comp['verdict']}**."
        )
    return [*lines, ""]


def section_icl(study: Study) -> list[str]:
    arms = study.plan.comparisons.icl
    out = [
        "## 1. In-context learning methods compared",
        "",
        f"Methods: {', '.join(f'`{a}` ({study.plan.arm(a).strategy})' for a in arms)}, all on the base model "
        f"`{study.plan.model}`.",
        "",
    ]
    out += [_best_statement(study, arms, "in-context methods"), ""]
    comps = _comparison_rows(study, arms, study.benches)
    out += [
        "Paired comparisons on the same problems (exact McNemar test on one greedy sample per problem; a difference "
        "is claimed only when its 95% CI excludes 0 and p < 0.05):",
        "",
        comparison_table(comps),
        "",
    ]
    out += ["![pass@1 by difficulty, in-context methods](pass_by_difficulty_icl.png)", ""]
    out += ["### Is there evidence of overfitting?", ""] + _icl_overfitting(study, arms)
    return out


def _mix(records: Sequence[Mapping[str, Any]]) -> str:
    from collections import Counter

    c = Counter(r.get("difficulty") or "none" for r in records if r.get("sample_index", 0) == 0)
    return "/".join(f"{c.get(k, 0)}" for k in ("Easy", "Medium", "Hard"))


def _icl_overfitting(study: Study, arms: Sequence[str]) -> list[str]:
    """In-context methods train nothing: the evidence is memorisation of old problems (pretraining contamination),
    i.e. better pass@1 on problems from before the SFT cutoff than on problems released after it."""
    if not (study.has(SFT_TRAIN) and study.has(SFT_VALIDATION)):
        return [
            "Not measurable in this study: "
            + "; ".join(
                f"{k}: {study.prep['skipped'].get(k, 'not evaluated')}" for k in (SFT_TRAIN, SFT_VALIDATION)
            )
            + ".",
            "",
        ]
    temporal = study.prep["contamination"][study.primary]["temporal"]
    out = [
        "In-context methods change no weights, so they cannot overfit the SFT data; what they can show is "
        "memorisation from pretraining: a base model that scores better on older problems (here the SFT-source "
        f"problems `{SFT_TRAIN}` + `{SFT_VALIDATION}`, released before {study.plan.sft.cutoff_date or 'the cutoff'}) "
        f"than on problems released after them (`{study.primary}`"
        + (
            f", temporal: {temporal['reason']}"
            if temporal["temporal"]
            else ", which is **not** a temporal split here, so this gap does not isolate memorisation"
        )
        + ") has probably seen the older ones. The prompt templates were "
        "fixed before any run (their hashes are in each manifest), so they were not tuned on the test problems. "
        "Gap = old minus new pass@1, with an unpaired bootstrap CI (different problems on each side; difficulty mix "
        "Easy/Medium/Hard shown, since it differs between the sets).",
        "",
    ]
    rows, sig = [], []
    for a in arms:
        old = study.run(a, SFT_TRAIN).records + study.run(a, SFT_VALIDATION).records
        new = study.run(a, study.primary).records

        g = unpaired_gap(
            list(per_problem_pass_at_k(old, 1).values()), per_problem(study.run(a, study.primary))
        )
        control = unpaired_gap(
            per_problem(study.run(a, SFT_TRAIN)), per_problem(study.run(a, SFT_VALIDATION))
        )
        old_p = float(np.mean(list(per_problem_pass_at_k(old, 1).values())))
        rows.append(
            [
                a,
                f"{old_p:.3f} (n={len({r['task_id'] for r in old})}, {_mix(old)})",
                f"{study.run(a, study.primary).results['pass@1']:.3f} (n={study.run(a, study.primary).results['n_problems']}, {_mix(new)})",
                f"{format_ci(g['gap'], g['ci'], signed=True)}",
                "yes" if g["ci"][0] > 0 else "no",
                f"{format_ci(control['gap'], control['ci'], signed=True)}",
            ]
        )
        if g["ci"][0] > 0:
            sig.append(a)
    out += [
        md_table(
            [
                "method",
                "pass@1 old problems (n, E/M/H)",
                f"pass@1 {study.primary} (n, E/M/H)",
                "gap [95% CI]",
                "gap significant",
                f"control: {SFT_TRAIN} - {SFT_VALIDATION}",
            ],
            rows,
            "lrrrlr",
        ),
        "",
    ]
    out += [
        (
            "Evidence of memorisation: "
            + ", ".join(f"`{a}`" for a in sig)
            + " score significantly higher on the older "
            "problems (the difficulty mixes differ, so read this with the E/M/H counts)."
        )
        if sig
        else "No in-context method scores significantly higher on the older problems than on the newer ones: no evidence "
        "of memorisation (overfitting) at this sample size.",
        "",
        "The control column compares two halves of the old problems that neither method trained on; it should be "
        "near 0, and bounds how much of a gap chance alone produces here.",
        "",
    ]
    return out


def _overfit_probe_rows(
    study: Study, arms: Sequence[str]
) -> tuple[list[list[Any]], dict[str, dict[str, Any]]]:
    rows, gaps = [], {}
    for a in arms:
        tr, va = study.run(a, SFT_TRAIN), study.run(a, SFT_VALIDATION)
        g = unpaired_gap(per_problem(tr), per_problem(va))
        gaps[a] = g
        rows.append(
            [
                a,
                p1(tr),
                p1(va),
                p1(study.run(a, study.primary)),
                f"{format_ci(g['gap'], g['ci'], signed=True)}",
                "yes" if g["ci"][0] > 0 else "no",
            ]
        )
    return rows, gaps


def _loss_rows(study: Study, arms: Sequence[str]) -> list[list[Any]]:
    rows = []
    for a in arms:
        t = study.training[a]
        ls = losses(t["log_history"])
        m = t["manifest"]
        rows.append(
            [
                a,
                m.get("global_step"),
                num(ls["first_train"]),
                num(ls["final_train"]),
                num(ls["final_eval"]),
                num(ls["min_eval"])
                + (f" (step {ls['min_eval_step']})" if ls["min_eval_step"] is not None else ""),
                num(ls["eval_rise"], "{:+.3f}"),
                num(
                    ls["final_eval"] - ls["final_train"]
                    if ls["final_eval"] is not None and ls["final_train"] is not None
                    else None,
                    "{:+.3f}",
                ),
            ]
        )
    return rows


def _overfit_verdict(study: Study, arm: str, gap: dict[str, Any] | None) -> str:
    ls = losses(study.training[arm]["log_history"])
    signs = []
    if ls["eval_rise"] is not None and ls["min_eval"] and ls["eval_rise"] > 0.05 * ls["min_eval"]:
        signs.append(
            f"validation loss ended {ls['eval_rise']:+.3f} above its minimum (step {ls['min_eval_step']})"
        )
    if gap is not None and gap["ci"][0] > 0:
        signs.append(
            f"train-subset pass@1 exceeds validation pass@1 by {format_ci(gap['gap'], gap['ci'], signed=True)}"
        )
    if signs:
        return f"`{arm}`: evidence of overfitting: " + "; ".join(signs) + "."
    return (
        f"`{arm}`: no evidence of overfitting (validation loss did not rise more than 5% above its minimum"
        + (", and the train/validation pass@1 gap's CI includes 0" if gap is not None else "")
        + ")."
    )


def section_finetune(study: Study) -> list[str]:
    arms = study.plan.comparisons.finetune
    out = ["## 2. Fine-tuning methods compared", ""]
    desc = []
    for a in arms:
        m = study.training[a]["manifest"]
        hp = m.get("hyperparameters") or {}
        desc.append(
            f"`{a}` ({m.get('method')}: {m['parameters']['trainable']:,} trainable parameters, "
            f"{100 * m['parameters']['trainable_ratio']:.2f}% of {m['parameters']['total']:,}; lr {hp.get('learning_rate')}, "
            f"{m.get('global_step')} steps of effective batch {hp.get('effective_batch_size')})"
        )
    sft = study.prep["sft"]
    out += [
        "Methods: " + "; ".join(desc) + ".",
        "",
        f"SFT data: `{sft['dataset']}`: {sft['rows']} rows, {sft['removed_by_decontamination']} removed because they "
        f"match an evaluated problem, {sft['train_rows']} trained on, {sft['validation_rows']} held out for validation "
        "(split by problem).",
        "",
    ]
    out += [_best_statement(study, arms, "fine-tuning methods"), ""]
    out += ["Paired comparisons:", "", comparison_table(_comparison_rows(study, arms, study.benches)), ""]
    out += [
        "### Is there evidence of overfitting?",
        "",
        "Losses from each run's `trainer_state.json`:",
        "",
        md_table(
            [
                "method",
                "steps",
                "first train loss",
                "final train loss",
                "final validation loss",
                "min validation loss",
                "final - min validation",
                "validation - train (final)",
            ],
            _loss_rows(study, arms),
        ),
        "",
        "![SFT losses](sft_loss.png)",
        "",
    ]
    gaps: dict[str, Any] = {}
    if study.has(SFT_TRAIN) and study.has(SFT_VALIDATION):
        rows, gaps = _overfit_probe_rows(study, arms)
        out += [
            f"pass@1 on problems the models were trained on (`{SFT_TRAIN}`) against held-out problems of the same "
            f"source (`{SFT_VALIDATION}`) and the primary benchmark:",
            "",
            md_table(
                [
                    "method",
                    "pass@1 train subset",
                    "pass@1 validation",
                    f"pass@1 {study.primary}",
                    "gap [95% CI]",
                    "gap significant",
                ],
                rows,
            ),
            "",
        ]
    out += [
        "Rule: a method shows overfitting when its validation loss ends more than 5% above its minimum, or when "
        "its train-subset pass@1 exceeds its validation pass@1 with the gap's 95% CI above 0.",
        "",
    ]
    out += [f"- {_overfit_verdict(study, a, gaps.get(a))}" for a in arms] + [""]
    return out


def section_additional(study: Study) -> list[str]:
    c = study.plan.comparisons
    full, *peft = c.full_vs_peft
    out = ["## 5. Additional comparisons", "", f"### Full fine-tuning against PEFT ({', '.join(peft)})", ""]
    rows = []
    for a in c.full_vs_peft:
        t = study.training[a]
        m, done = t["manifest"], t["done"]
        ls = losses(t["log_history"])
        steps = m.get("global_step") or 0
        rows.append(
            [
                a,
                m.get("method"),
                f"{m['parameters']['trainable']:,}",
                f"{100 * m['parameters']['trainable_ratio']:.2f}%",
                num(m.get("train_seconds") / steps if steps and m.get("train_seconds") else None, "{:.2f}"),
                num(training_memory(m, done)[0], "{:.2f}"),
                num(ls["final_train"]),
                num(ls["final_eval"]),
                *[p1(study.run(a, b)) for b in study.benches],
            ]
        )
    kinds = {
        training_memory(study.training[a]["manifest"], study.training[a]["done"])[1] for a in c.full_vs_peft
    }
    mem_col = (
        "peak training GPU memory (GiB, largest rank)"
        if kinds == {"GPU peak"}
        else (
            "peak training RSS (GiB; no GPU)"
            if kinds == {"peak RSS"}
            else "peak training memory (GiB; GPU where measured, else RSS)"
        )
    )
    out += [
        md_table(
            [
                "arm",
                "method",
                "trainable parameters",
                "trainable share",
                "s / step",
                mem_col,
                "final train loss",
                "final validation loss",
                *[f"pass@1 {b}" for b in study.benches],
            ],
            rows,
            "ll" + "r" * (6 + len(study.benches)),
        ),
        "",
    ]
    comps = []
    for p in peft:
        for b in study.benches:
            comp = paired(study, full, p, b)
            comp["labels"] = [f"{full} ({b})", f"{p} ({b})"]
            comps.append(comp)
    out += [
        "Full fine-tuning against each PEFT type, paired on the same problems:",
        "",
        comparison_table(comps),
        "",
    ]
    out += _verdict_lines(study, full, peft)
    rag = c.rag
    out += [f"### Retrieval augmentation (`{rag}`) against the four base configurations", ""]
    stats = (study.run(rag, study.primary).manifest.get("prompt") or {}).get("exemplars") or {}
    if stats:
        out += [
            f"`{rag}` retrieves k={stats.get('k')} exemplars per problem with {stats.get('retriever')} from "
            f"{(stats.get('source') or {}).get('source')} ({stats.get('eligible')} eligible candidates, "
            f"{stats.get('excluded_overlap')} excluded for overlapping the evaluation set; mean "
            f"{stats.get('similarity')} of the chosen exemplars {num(stats.get('mean_similarity'))}).",
            "",
        ]
    comps = []
    for base in c.rag_baselines:
        for b in study.benches:
            comp = paired(study, rag, base, b)
            comp["labels"] = [f"{rag} ({b})", f"{base} ({b})"]
            comps.append(comp)
    out += [comparison_table(comps), ""]
    out += _verdict_lines(study, rag, c.rag_baselines)
    return out
