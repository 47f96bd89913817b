"""The one-command study: plans, contamination measures, resumable units, and the report end to end.

The end-to-end test runs `experiments/study.py --preset micro` exactly as `make study PRESET=micro` does, with
`--model` pointing at a tiny from-config Llama saved with the embedded tokenizer (random weights: it exercises
every arm, run and report section in minutes; what it scores is meaningless).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, SHARED_DATA

from letitcode.data.overlap import ngram_overlap, word_ngrams
from letitcode.data.problem import Problem
from letitcode.errors import UserError
from letitcode.scoring.stats import format_ci
from letitcode.study.plan import PLANS_DIR, load_plan, preset_names
from letitcode.study.prepare import temporal_status
from letitcode.study.report import FIGURES, SECTIONS, load_study, write_report
from letitcode.study.report.numbers import jaccard, unpaired_gap
from letitcode.study.units import resolve_exemplars

PRESETS = preset_names()


def _problem(task_id: str, description: str, date: str | None = None) -> Problem:
    return Problem(
        task_id=task_id,
        source="t",
        title=task_id,
        description=description,
        entry_point="f",
        release_date=date,
    )


# ------------------------------------------------------------------------------------------------ plans


def test_every_preset_exists_and_validates(tmp_path: Path) -> None:
    assert {"micro", "embedded-cpu", "gemma-7b", "llama-3.1-8b-instruct", "phi-3-mini-4k-instruct"} <= set(
        PRESETS
    )
    for name in PRESETS:
        plan = load_plan(name, data_dir=tmp_path)
        assert plan.name == name
        assert any(b.role == "heldout" for b in plan.benchmarks)
        assert {a.train.method for a in plan.arms if a.train} >= {"lora", "qlora", "dora", "full"}
        assert {a.strategy for a in plan.arms if not a.train} >= {"zero_shot", "few_shot", "cot", "rag"}
        # {data} is substituted everywhere; nothing in a plan names a machine path
        assert "{data}" not in json.dumps(plan.to_dict())
        text = (PLANS_DIR / f"{name}.yaml").read_text()
        assert "/work/" not in text and "/root/" not in text
    for gpu in ("gemma-7b", "llama-3.1-8b-instruct", "phi-3-mini-4k-instruct"):
        model = load_plan(gpu).model
        repo, _, rev = model.partition("@")
        assert "/" in repo and len(rev) == 40, (
            f"{gpu}: the model must be a Hub id pinned to a commit, got {model}"
        )


def test_plan_overrides_and_errors(tmp_path: Path) -> None:
    plan = load_plan("micro", data_dir=tmp_path, model="/some/model", sft_dataset="org/data@abc")
    assert plan.model == "/some/model" and plan.sft.dataset == "org/data@abc"
    assert plan.benchmarks[0].dataset.startswith(str(tmp_path))

    bad = tmp_path / "bad.yaml"
    bad.write_text((PLANS_DIR / "micro.yaml").read_text().replace("max_new_tokens: 48", "max_new_tokenz: 48"))
    with pytest.raises(UserError, match="max_new_tokenz"):
        load_plan(str(bad))
    bad.write_text(
        (PLANS_DIR / "micro.yaml")
        .read_text()
        .replace("four: [zero_shot, few_shot, lora, qlora]", "four: [zero_shot, few_shot, lora, nope]")
    )
    with pytest.raises(UserError, match="comparisons.four names arm 'nope'"):
        load_plan(str(bad))
    with pytest.raises(UserError, match="unknown preset 'nope'"):
        load_plan("nope")


def test_missing_data_names_what_to_pass(tmp_path: Path) -> None:
    from letitcode.study.prepare import prepare

    plan = load_plan("micro", data_dir=tmp_path / "absent")
    # the LeetCodeDataset test file is optional (the embedded problems stand in); the SFT data is not
    with pytest.raises(UserError, match="--dataset"):
        prepare(plan, tmp_path / "out")


# ------------------------------------------------------------------------------------------------ contamination


def test_13_gram_overlap_counts_shared_word_sequences() -> None:
    train = "Given an integer array nums return the number of good pairs in the array where i is less than j today"
    corpus = word_ngrams(train)
    # the same 13 consecutive words (case and punctuation ignored) -> overlap; 12 of them -> none
    hit = _problem(
        "a", "Intro. GIVEN an integer array nums, return the number of good pairs in the array! More."
    )
    twelve = "given an integer array nums return the number of good pairs in"
    assert len(twelve.split()) == 12
    miss = _problem("b", f"{twelve} a list")
    res = ngram_overlap([hit, miss], corpus)
    assert res["n_overlap"] == 1 and res["task_ids"] == ["a"] and res["share"] == 0.5


def test_temporal_status() -> None:
    late = [_problem("a", "x", "2024-08-04"), _problem("b", "x", "2025-03-30")]
    assert temporal_status(late, "2024-07-01")["temporal"] is True
    assert temporal_status(late, "2024-09-01")["temporal"] is False
    assert temporal_status(late, None)["temporal"] is False
    undated = temporal_status([_problem("c", "x")], "2024-07-01")
    assert undated["temporal"] is False and "no release dates" in undated["reason"]


def test_exemplar_alternatives(tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text("{}\n")
    prep = {"sft": {"pool": str(pool)}}
    assert resolve_exemplars(["mbpp:/nope/mbpp.jsonl", "{sft_pool}"], prep) == f"leetcodedataset:{pool}"
    assert resolve_exemplars(None, prep) is None
    with pytest.raises(UserError, match="none of the exemplar sources"):
        resolve_exemplars(["mbpp:/nope/mbpp.jsonl"], prep)


def test_report_statistics() -> None:
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)
    assert jaccard(set(), set()) is None
    gap = unpaired_gap([1.0] * 30, [0.0] * 30)
    assert gap["gap"] == 1.0 and gap["ci"] == [1.0, 1.0]
    same = unpaired_gap([1, 0] * 20, [0, 1] * 20)
    assert same["ci"][0] < 0 < same["ci"][1]
    # differences print like every other CI (scoring.stats.format_ci: 3 decimals), with their sign
    assert format_ci(0.125, [-0.05, 0.3], signed=True) == "+0.125 [-0.050, 0.300]"
    assert format_ci(-0.5, None, signed=True) == "-0.500"


def test_report_fails_clearly_without_results(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"missing result .*plan\.json"):
        write_report(tmp_path)


# ------------------------------------------------------------------------------------------------ end to end


def _study(out: Path, model: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [
        sys.executable,
        "experiments/study.py",
        "--preset",
        "micro",
        "--output-dir",
        str(out),
        "--model",
        str(model),
        *extra,
    ]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def micro_study(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("shared data not found at ../shared/data (the micro study's SFT data comes from it)")
    out = tmp_path_factory.mktemp("study-micro")
    proc = _study(out, tiny_model)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_micro_study_produces_every_section_and_plot(micro_study: Path) -> None:
    text = (micro_study / "report.md").read_text()
    for section in SECTIONS:
        assert f"\n{section}" in text, f"report.md lacks {section!r}"
    for fig in FIGURES:
        data = (micro_study / fig).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, fig
        assert f"]({fig})" in text, f"report.md does not show {fig}"
    study = load_study(micro_study)
    arms = [a.name for a in study.plan.arms]
    assert arms == ["zero_shot", "few_shot", "cot", "rag", "lora", "qlora", "dora", "full"]
    # every approach saw exactly the same problems of every benchmark
    for bench in study.benches:
        ids = {tuple(sorted(r["task_id"] for r in study.run(a, bench).records)) for a in arms}
        assert len(ids) == 1, bench
    assert {"leetcodedataset_v031", "humaneval", "mbpp", "sft_train_subset", "sft_validation"} <= set(
        study.benches
    )
    # a contamination note beside the scores of every benchmark, with the share and the temporal verdict
    note = "of the evaluated problems share a 13-gram with the SFT data"
    for bench in study.benches:
        c = study.prep["contamination"][bench]
        assert c["sft_pool"]["n_problems"] == len(study.prep["benchmarks"][bench]["task_ids"])
        assert f"### {bench}" in text
    assert text.count(note) == len(study.benches)
    assert study.prep["contamination"]["leetcodedataset_v031"]["temporal"]["temporal"] is True
    assert "temporal split: **yes**" in text
    # deployment: a recommendation that names an arm, derived by the stated rule
    assert "**Recommendation: deploy `" in text and "**Rule.**" in text
    # error analysis: failure overlap and 3-5 qualitative examples
    assert "Problems every approach fails:" in text and "Jaccard" in text
    n_examples = text.count("#### Example ")
    assert 3 <= n_examples <= 5, n_examples
    # fine-tuning: losses came from trainer_state.json, with a validation loss for every method
    for arm in ("lora", "qlora", "dora", "full"):
        assert any("eval_loss" in e for e in study.training[arm]["log_history"]), arm
    # ethics numbers come from the runs
    assert (
        f"All {sum(sum((r.results.get('status_counts') or {}).values()) for r in study.runs.values())} generated programs"
        in text
    )
    # every run is a config of the merged result dataset (probes excepted), which the leaderboard reads
    from letitcode.results.load import load_summaries

    table = load_summaries([str(micro_study / "dataset")])
    assert len(table) == len(arms) * 3 and set(table["approach"]) == set(arms)


@pytest.mark.slow
def test_micro_study_resumes_and_report_fails_on_missing_result(
    micro_study: Path, tiny_model: Path, tmp_path: Path
) -> None:
    # a rerun skips every finished unit
    proc = _study(micro_study, tiny_model)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sum("train " in ln and "already done, skipped" in ln for ln in proc.stdout.splitlines()) == 4
    assert (
        proc.stdout.count("every benchmark already done, skipped") == 5
    )  # the base model's arms + 4 fine-tuned
    assert ": pass@1 " not in proc.stdout  # nothing was generated or scored again

    copy = tmp_path / "study"
    shutil.copytree(micro_study, copy, ignore=shutil.ignore_patterns("*.safetensors", "checkpoint-*"))
    missing = copy / "runs" / "qlora" / "humaneval" / "results.json"
    missing.unlink()
    with pytest.raises(UserError, match=r"missing result .*runs/qlora/humaneval/results\.json .*arm 'qlora'"):
        write_report(copy)
    # the same from the command line: one line on stderr, exit status 2, no report with holes
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    (copy / "report.md").unlink()
    proc = subprocess.run(
        [sys.executable, "experiments/study.py", "--output-dir", str(copy), "--report-only"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (
        proc.returncode == 2
        and "missing result" in proc.stderr
        and "qlora/humaneval/results.json" in proc.stderr
    )
    assert not (copy / "report.md").exists()
    state = next((copy / "train").glob("*-dora")) / "trainer_state.json"
    shutil.copy(micro_study / "runs" / "qlora" / "humaneval" / "results.json", missing)
    state.unlink()
    with pytest.raises(UserError, match=r"trainer_state\.json .*arm 'dora'"):
        write_report(copy)
