"""RayBernard/leetcode (the brief's SFT data): the request line dropped, title and slug parsed, other languages
skipped, decontamination by slug, and a study plan that trains on it.

No copy of the real dataset exists here: the rows are the fixture's, in RayBernard's format.
"""

from __future__ import annotations

import json
from pathlib import Path

from letitcode.data.benchmarks.raybernard import parse_instruction, problems_from_rows
from letitcode.data.problem import Problem
from letitcode.training import data as sft_data

FIXTURE = Path(__file__).parent / "fixtures" / "sft" / "raybernard_sample.jsonl"
BOILERPLATE = "Please explain the following problem in detail and provide code in python:"


def _rows() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def test_instruction_is_parsed_into_title_and_statement():
    title, statement, lang = parse_instruction(
        f"{BOILERPLATE}\nTwo Sum\n\nGiven an array of integers `nums`."
    )
    assert (title, statement, lang) == ("Two Sum", "Given an array of integers `nums`.", "python")
    title, statement, lang = parse_instruction(
        "Please write the following solution using java:\nJump Game\n\nYou are given..."
    )
    assert (title, lang) == ("Jump Game", "java") and statement == "You are given..."
    # no request line: the text is the statement, untitled
    assert parse_instruction("Given an array nums, return its sum.") == (
        "",
        "Given an array nums, return its sum.",
        None,
    )


def test_sft_rows_drop_the_request_line_and_carry_title_and_slug():
    data = sft_data.build_sft_data(str(FIXTURE), completion_format="code", style="chat", val_fraction=0)
    rows = data.train
    assert len(rows) == 10 and data.stats["titled"] == 10 and data.stats["skipped_other_language"] == 0
    by_slug = {r.problem.slug: r for r in rows}
    assert {"two-sum", "maximum-subarray", "move-zeroes"} <= set(by_slug)
    two = by_slug["two-sum"].problem
    assert two.title == "Two Sum" and two.description.startswith("Given an array of integers")
    for r in rows:
        assert "Please explain" not in r.problem.description
        prompt = r.example()["prompt"][-1]["content"]
        # the statement as the evaluator shows LeetCode problems: no request line (and no title line either)
        assert "Please explain the following problem" not in prompt and r.problem.description in prompt
    # the benchmark adapter reads the same rows the same way
    probs = {p.slug: p for p in problems_from_rows(_rows(), "fixture")}
    assert probs["two-sum"].title == "Two Sum" and not probs["two-sum"].description.startswith("Please")


def test_rows_in_another_language_are_skipped_and_counted(tmp_path):
    rows = _rows()
    rows[0]["instruction"] = rows[0]["instruction"].replace(
        "provide code in python:", "provide code in java:"
    )
    f = tmp_path / "mixed.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = sft_data.build_sft_data(str(f), val_fraction=0)
    assert data.stats["skipped_other_language"] == 1 and len(data.train) == 9
    assert "two-sum" not in {r.problem.slug for r in data.train}


def test_decontamination_matches_the_parsed_slug():
    # the benchmark's statement differs (another scrape): only the title/slug can match
    bench = [
        Problem("two-sum", "b", "Two Sum", "Completely different wording of the task.", "f", slug="two-sum")
    ]
    data = sft_data.build_sft_data(str(FIXTURE), val_fraction=0, decontaminate_against=bench)
    assert data.decontamination["removed_by"] == {"slug": 1} and len(data.train) == 9


def test_card_names_raybernard_for_a_local_copy_of_its_rows():
    from letitcode.training.artifacts import known_dataset_id

    data = sft_data.build_sft_data(str(FIXTURE), val_fraction=0)
    assert known_dataset_id(data.preset, str(FIXTURE), data.stats) == "RayBernard/leetcode"
    # Alpaca rows without RayBernard's title lines are not claimed to be RayBernard's
    assert known_dataset_id("alpaca", "x.jsonl", {"rows": 10, "titled": 0}) is None


def test_a_study_plan_can_train_on_raybernard(tmp_path, shared_data):
    from letitcode.data.benchmarks import load_benchmark
    from letitcode.retrieval import parse_exemplar_spec
    from letitcode.study.plan import load_plan
    from letitcode.study.prepare import prepare
    from letitcode.study.units import resolve_exemplars, train_command

    plan = load_plan("micro", data_dir=shared_data, sft_dataset=str(FIXTURE))
    prep = prepare(plan, tmp_path / "out")
    sft = prep["sft"]
    assert sft["enabled"] and sft["layout"] == "alpaca" and sft["rows"] == 10
    # no tests in RayBernard's rows: the trained-on/held-out pass@1 probes are skipped, saying why
    assert "no tests" in prep["skipped"]["sft_train_subset"]
    assert sft["pool_rows"] == 10 and 0 < sft["train_rows"] <= plan.sft.max_train_samples
    # the pool is read back as RayBernard rows for few-shot exemplars
    spec = resolve_exemplars("{sft_pool}", prep)
    assert spec.startswith("raybernard:")
    adapter, path, split = parse_exemplar_spec(spec, "leetcode")
    assert (
        adapter == "raybernard"
        and len(load_benchmark(adapter, dataset=path, split=split).problems) == sft["pool_rows"]
    )
    arm = next(a for a in plan.arms if a.train and a.train.method == "lora")
    cmd = train_command(plan, prep, arm, tmp_path / "out")
    assert "--recipe" in cmd and cmd[cmd.index("--recipe") + 1] == "none" and "--overwrite" in cmd
