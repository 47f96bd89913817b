"""sft/train.py on the GPU path, rehearsed on CPU: recipes picked from --model/--method, fp32 master weights for
full fine-tuning, resume only for the same training configuration (a finished one trains zero steps),
bounded validation, precision/effective batch/memory in the manifest, device placement, and portable cards.

Runs use the tiny from-config Llama of conftest.py (`tiny_model`) for 1-2 steps.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from letitcode.errors import UserError

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "sft" / "raybernard_sample.jsonl"
LCD_FIXTURE = Path(__file__).parent / "fixtures" / "sources" / "leetcodedataset-v0.2.0-test.jsonl"


def _gpu():
    from letitcode.training.config import Hardware

    return Hardware(True, True, 80.0)


def _cpu():
    from letitcode.training.config import Hardware

    return Hardware(False, False)


def _argv(tiny_model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model", str(tiny_model), "--recipe", "none", "--dataset", str(FIXTURE), "--decontaminate", "false",
        "--output_dir", str(out), "--max_steps", "2", "--max_length", "256",
        "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "2", "--gradient_accumulation_steps", "1",
        "--val_fraction", "0.2",
        "--logging_steps", "1", "--eval_steps", "2", "--save_steps", "2", "--dataloader_num_workers", "0", *extra,
    ]  # fmt: skip


def _train(tiny_model: Path, out: Path, *extra: str, callbacks=None) -> dict:
    from letitcode.training.config import parse_args
    from letitcode.training.trainer import train

    return train(*parse_args(_argv(tiny_model, out, *extra), hardware=_cpu()), callbacks=callbacks)


def _steps(out: Path) -> list[int]:
    state = json.loads((out / "trainer_state.json").read_text())
    return [e["step"] for e in state["log_history"] if "loss" in e]


# ------------------------------------------------------------------------------------------------ recipes


def test_recipe_is_picked_from_model_and_method_without_config(capsys):
    from letitcode.training.config import parse_args

    s, t, m = parse_args(["--model", "google/gemma-7b", "--use_cpu", "true"], hardware=_gpu())
    assert s.recipe == "sft/recipes/gemma-7b/lora.yaml" and s.method == "lora"
    assert "recipe: sft/recipes/gemma-7b/lora.yaml" in capsys.readouterr().err
    assert m.model_name_or_path == "google/gemma-7b" and s.dataset_name == "RayBernard/leetcode"
    assert t.output_dir == "runs/sft/gemma-7b-lora" and s.expected_gpu_memory_gb == 32
    # a revision and a case difference still find the folder; the command line overrides the recipe
    s, t, m = parse_args(
        ["--model", "meta-llama/Llama-3.1-8B-Instruct@abc", "--method", "qlora", "--use_cpu", "true",
         "--learning_rate", "1e-4"],
        hardware=_gpu(),
    )  # fmt: skip
    assert s.recipe == "sft/recipes/llama-3.1-8b-instruct/qlora.yaml" and m.load_in_4bit
    assert t.learning_rate == 1e-4 and m.model_name_or_path == "meta-llama/Llama-3.1-8B-Instruct@abc"
    s, t, _ = parse_args(["--model", "embedded", "--method", "full"], hardware=_cpu())
    assert s.recipe == "sft/recipes/embedded/full.yaml" and t.max_steps == 20  # the recipe's, not TRL's -1
    s, t, _ = parse_args(["--model", "embedded", "--recipe", "none"], hardware=_cpu())
    assert s.recipe == "none" and t.max_steps == -1
    s, _, _ = parse_args(["--config", str(REPO / "sft/recipes/embedded/dora.yaml")], hardware=_cpu())
    assert s.recipe == "sft/recipes/embedded/dora.yaml" and s.method == "dora"


def test_missing_recipe_is_one_line_naming_the_recipes_that_exist():
    from letitcode.training.config import parse_args

    with pytest.raises(UserError) as e:
        parse_args(["--model", "google/gemma-7b", "--method", "ia3"], hardware=_gpu())
    msg = str(e.value)
    assert (
        "\n" not in msg and "--method ia3" in msg and "dora, full, lora, qlora" in msg and "--config" in msg
    )
    with pytest.raises(UserError) as e:
        parse_args(["--model", "org/some-other-model"], hardware=_gpu())
    msg = str(e.value)
    assert "\n" not in msg and "org/some-other-model" in msg and "--recipe none" in msg and "--config" in msg
    assert "gemma-7b: dora, full, lora, qlora" in msg and "embedded:" in msg


def test_recipes_compare_methods_at_one_effective_batch():
    from letitcode.training.config import effective_batch, parse_args

    for model in ("google/gemma-7b", "meta-llama/Llama-3.1-8B-Instruct", "microsoft/Phi-3-mini-4k-instruct"):
        got = {}
        for method in ("lora", "qlora", "dora", "full"):
            _, t, _ = parse_args(["--model", model, "--method", method, "--use_cpu", "true"], hardware=_gpu())
            got[method] = effective_batch(t)
        assert len(set(got.values())) == 1, (model, got)
    # explicit accumulation on the command line wins; an impossible factorisation is one line
    _, t, _ = parse_args(["--model", "google/gemma-7b", "--use_cpu", "true", "--gradient_accumulation_steps", "3"],
                         hardware=_gpu())  # fmt: skip
    assert t.gradient_accumulation_steps == 3
    with pytest.raises(UserError, match="effective_batch_size 16 is not a multiple"):
        parse_args(["--model", "google/gemma-7b", "--use_cpu", "true", "--per_device_train_batch_size", "3"],
                   hardware=_gpu())  # fmt: skip


def test_full_recipes_save_model_only_bounded_checkpoints_in_fp32():
    from letitcode.training.config import parse_args

    for model in ("google/gemma-7b", "meta-llama/Llama-3.1-8B-Instruct", "microsoft/Phi-3-mini-4k-instruct",
                  "embedded"):  # fmt: skip
        _, t, m = parse_args(["--model", model, "--method", "full", "--use_cpu", "true"], hardware=_gpu())
        assert t.save_only_model and t.save_total_limit and t.save_total_limit <= 2, model
        assert m.dtype == "float32", model  # fp32 master weights; bf16 only as autocast
    _, t, _ = parse_args(["--method", "full", "--recipe", "none", "--use_cpu", "true"], hardware=_gpu())
    assert t.save_only_model and t.save_total_limit == 2  # the generic defaults too


def test_gpu_without_bf16_falls_back_to_fp16_with_a_warning(capsys):
    from letitcode.training.config import Hardware, parse_args

    t4 = Hardware(True, False, 15.0)
    _, t, m = parse_args(["--model", "google/gemma-7b", "--use_cpu", "true"], hardware=t4)
    assert not t.bf16 and t.fp16 and m.dtype == "float16"
    assert "no bf16 support" in capsys.readouterr().err
    with pytest.raises(UserError, match="--bf16 false --fp16 true"):
        parse_args(["--model", "google/gemma-7b", "--use_cpu", "true", "--bf16", "true"], hardware=t4)


def test_paged_optimizer_is_replaced_on_cpu(capsys):
    from letitcode.training.config import parse_args

    args = ["--model", "microsoft/Phi-3-mini-4k-instruct", "--method", "qlora", "--use_cpu", "true"]
    _, t, _ = parse_args([*args, "--bf16", "false"], hardware=_cpu())
    assert t.optim.value == "adamw_bnb_8bit" and "needs a GPU" in capsys.readouterr().err
    gpu_args = ["--model", "microsoft/Phi-3-mini-4k-instruct", "--method", "qlora", "--bf16", "false"]
    _, t, _ = parse_args(gpu_args, hardware=_gpu())
    assert t.optim.value == "paged_adamw_8bit"  # a GPU keeps the recipe's paged optimizer


# ------------------------------------------------------------------------------------------------ placement


def test_device_map_is_never_auto_when_distributed():
    from letitcode.training.peft import device_map_for

    def dist(**kw):
        return {"type": "NO", "num_processes": 1, "deepspeed": False, "fsdp": False, "local_process_index": 0,
                **kw}  # fmt: skip

    assert device_map_for(dist(), cuda=False) is None
    assert device_map_for(dist(), cuda=True) == {"": 0}  # one process: one GPU, not every visible one
    assert device_map_for(dist(), cuda=True, requested="auto") == "auto"  # asked for explicitly
    fsdp = dist(type="FSDP", num_processes=4, fsdp=True, local_process_index=3)
    assert device_map_for(fsdp, cuda=True, requested="auto") is None  # FSDP shards (and loads) it itself
    assert device_map_for(fsdp, cuda=True, quantized=True) == {"": 3}  # a 4-bit model cannot move later
    ddp = dist(type="MULTI_GPU", num_processes=2, local_process_index=1)
    assert device_map_for(ddp, cuda=True, requested="auto") == {"": 1}  # its own GPU, not all of them
    assert device_map_for(dist(type="DEEPSPEED", num_processes=8, deepspeed=True), cuda=True) is None


def test_parameters_are_counted_at_full_size_under_zero3():
    import torch

    from letitcode.training.peft import count_parameters_sharded

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    assert count_parameters_sharded(model)["total"] == 4 * 4 + 4 + 4 * 2 + 2
    for p in model.parameters():  # what ZeRO-3 leaves: empty local tensors, full size in ds_numel
        p.ds_numel = p.numel()
        p.data = torch.empty(0)
    model[1].weight.requires_grad_(False)
    got = count_parameters_sharded(model)
    assert got["total"] == 30 and got["trainable"] == 22


def test_qlora_without_bitsandbytes_is_one_line(monkeypatch):
    from letitcode.training.peft import check_qlora_backend

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import fails as where it is not installed
    with pytest.raises(UserError) as e:
        check_qlora_backend(cuda=False)
    assert (
        "--method qlora" in str(e.value) and "letitcode[train]" in str(e.value) and "\n" not in str(e.value)
    )


# ------------------------------------------------------------------------------------------------ precision


def test_full_fine_tuning_keeps_fp32_weights_under_bf16_autocast(tiny_model, tmp_path):
    import torch
    from transformers import TrainerCallback

    seen: list[set] = []

    class Dtypes(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            seen.append({p.dtype for p in model.parameters()})

    out = tmp_path / "full"
    # a bf16 recipe on a bf16 device: the weights must stay fp32, bf16 only in the autocast
    manifest = _train(tiny_model, out, "--method", "full", "--bf16", "true", "--use_cpu", "true",
                      "--dtype", "bfloat16", callbacks=[Dtypes()])  # fmt: skip
    assert len(seen) == 2 and all(s == {torch.float32} for s in seen)
    assert manifest["master_weights"] == "fp32" and manifest["autocast"] == "bf16"
    assert manifest["precision"]["trainable_weights"] == "float32"
    assert manifest["hyperparameters"]["bf16"] is True


def test_adapters_train_in_fp32_on_a_frozen_base(tiny_model, tmp_path):
    manifest = _train(tiny_model, tmp_path / "lora", "--method", "lora", "--max_steps", "1")
    prec = manifest["precision"]
    assert prec["adapter_weights"] == "float32" and prec["base_weights"] == "float32"
    assert prec["master_weights"] == "fp32" and prec["autocast"] is None


# ------------------------------------------------------------------------------------------------ resume


def test_finished_run_trains_zero_steps_on_rerun(tiny_model, tmp_path, monkeypatch, capsys):
    out = tmp_path / "done"
    first = _train(tiny_model, out)
    assert first["global_step"] == 2 and first["fingerprint"]
    saved = (out / "trainer_state.json").read_text()

    import trl

    def no_training(*a, **kw):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(trl.SFTTrainer, "train", no_training)
    second = _train(tiny_model, out)
    assert (
        second["already_trained"]
        and second["global_step"] == 2
        and second["fingerprint"] == first["fingerprint"]
    )
    assert (out / "trainer_state.json").read_text() == saved
    assert "already trained" in capsys.readouterr().err


class _Kill(Exception):
    pass


def _killed_at_step_2(tiny_model, out, *extra):
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 2:
                raise _Kill  # as a kill would: checkpoint-1 was written, no final model

    with pytest.raises(_Kill):
        _train(tiny_model, out, "--save_steps", "1", *extra, callbacks=[Kill()])
    assert (out / "checkpoint-1").is_dir() and not (out / "adapter_model.safetensors").exists()


def test_changed_configuration_refuses_to_resume_same_one_resumes(tiny_model, tmp_path):
    out = tmp_path / "arm"
    _killed_at_step_2(tiny_model, out)
    assert json.loads((out / "checkpoint-1" / "training_config.json").read_text())["fingerprint"]

    with pytest.raises(UserError) as e:  # a new learning rate must not continue the old run
        _train(tiny_model, out, "--save_steps", "1", "--learning_rate", "1e-3")
    msg = str(e.value)
    assert "checkpoint-1" in msg and "learning_rate" in msg and "--overwrite" in msg and "\n" not in msg
    with pytest.raises(
        UserError, match="lora_r 16 -> 8"
    ):  # nor a new rank (it would crash loading the state)
        _train(tiny_model, out, "--save_steps", "1", "--lora_r", "8")

    resumed = _train(tiny_model, out, "--save_steps", "1")  # the same configuration continues
    assert resumed["resumed_from"] == "checkpoint-1" and resumed["global_step"] == 2
    assert _steps(out) == [1, 2]

    fresh = _train(tiny_model, out, "--save_steps", "1", "--learning_rate", "1e-3", "--overwrite")
    assert fresh["resumed_from"] is None and fresh["global_step"] == 2
    assert (
        fresh["hyperparameters"]["learning_rate"] == 1e-3 and fresh["fingerprint"] != resumed["fingerprint"]
    )
    assert _steps(out) == [1, 2]  # retrained from scratch, not appended to the old log


def test_finished_run_with_a_new_configuration_needs_overwrite(tiny_model, tmp_path):
    out = tmp_path / "finished"
    _train(tiny_model, out, "--max_steps", "1")
    with pytest.raises(UserError, match=r"max_steps 1 -> 2.*--overwrite"):  # more epochs/steps: not a resume
        _train(tiny_model, out, "--max_steps", "2")
    again = _train(tiny_model, out, "--max_steps", "2", "--overwrite")
    assert again["global_step"] == 2 and again["resumed_from"] is None


# ------------------------------------------------------------------------------------------------ validation


def test_validation_is_bounded(tiny_model, tmp_path):
    from transformers import TrainerCallback

    seen = {}

    class Args(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            seen["eval_batch"] = args.per_device_eval_batch_size
            seen["eval_on_start"] = args.eval_on_start

    out = tmp_path / "bounded"
    manifest = _train(tiny_model, out, "--val_fraction", "0.5", "--eval_loss_max_rows", "1",
                      "--per_device_eval_batch_size", "16", "--eval_on_start", "true", callbacks=[Args()])  # fmt: skip
    counts = manifest["data"]["counts"]
    assert counts["validation"] > 1 and counts["validation_loss_rows"] == 1
    assert seen == {
        "eval_batch": 2,
        "eval_on_start": False,
    }  # no bigger than the training batch; 2 steps: no baseline
    state = json.loads((out / "trainer_state.json").read_text())
    assert all(e["step"] > 0 for e in state["log_history"] if "eval_loss" in e)

    # no validation rows and eval_on_start: trains without evaluating instead of crashing
    m0 = _train(tiny_model, tmp_path / "noval", "--val_fraction", "0", "--eval_on_start", "true",
                "--max_steps", "1")  # fmt: skip
    assert m0["global_step"] == 1 and m0["losses"]["final_eval_loss"] is None


# ------------------------------------------------------------------------------------------------ manifest, card


def _strings(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from _strings(v)
    elif isinstance(x, str):
        yield x


def test_manifest_and_card_name_hub_ids_and_no_machine_paths(tiny_model, tmp_path):
    from huggingface_hub import ModelCard

    rows = [json.loads(line) for line in LCD_FIXTURE.read_text().splitlines()]
    for r in rows:  # LeetCodeDataset's layout; every row with a solution
        r["response"] = r.get("response") or f"```python\n{r['completion']}\n        return 0\n```"
    local = tmp_path / "data" / "LeetCodeDataset-v0.2.0-train.jsonl"
    local.parent.mkdir()
    local.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "card"
    manifest = _train(tiny_model, out, "--dataset", str(local), "--max_steps", "1",
                      "--completion_format", "code", "--max_length", "512")  # fmt: skip
    saved = json.loads((out / "manifest.json").read_text())
    assert saved["recipe"] == "none" and saved["effective_batch"] == 2
    assert saved["host_peak_rss_mb"] > 100 and saved["gpu_peak_memory_gib"] is None  # no CUDA here
    absolute = [s for s in _strings(saved) if s.startswith("/") or str(tmp_path) in s]
    assert not absolute, absolute
    assert saved["data"]["source"] == local.name
    assert saved["data"]["hub_id"] == "newfacade/LeetCodeDataset"

    text = (out / "README.md").read_text()
    assert str(tmp_path) not in text and str(tiny_model) not in text
    card = ModelCard.load(out / "README.md")
    assert card.data.datasets == ["newfacade/LeetCodeDataset"]
    files = card.data.to_dict()["dataset_files"]
    assert files[0]["file"] == local.name and files[0]["sha256_16"] == manifest["data"]["version"]
    assert "Precision: master weights fp32" in card.text


def test_card_license_and_revision_come_from_the_base(tmp_path):
    from letitcode.models import ResolvedModel
    from letitcode.training.artifacts import base_model_card_info

    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: bsd-3-clause\n---\n# a base model\n")
    got = base_model_card_info(ResolvedModel("org/base@abc", str(folder), "org/base", "abc", "f"))
    assert got == {"license": "bsd-3-clause", "revision": "abc"}
    # no card to read offline: a seed model's license is known, anything else stays unknown
    seed = base_model_card_info(ResolvedModel("x", str(tmp_path), "google/gemma-7b", None, "f"))
    assert seed["license"] == "gemma"
    other = base_model_card_info(ResolvedModel("x", str(tmp_path), "org/unknown", None, "f"))
    assert other["license"] is None


# ------------------------------------------------------------------------------------------------ decontamination


def test_decontamination_uses_the_evaluated_split_of_the_embedded_problems():
    from letitcode.training.config import parse_args
    from letitcode.training.prepare import load_decontamination

    s, _, _ = parse_args(["--recipe", "none"], hardware=_cpu())
    problems, info = load_decontamination(s)
    assert info["split"] == "test" and 0.4 * 1405 < len(problems) < 0.6 * 1405  # the test half, not all 1,405
    s, _, _ = parse_args(["--recipe", "none", "--eval_split", "all"], hardware=_cpu())
    problems, info = load_decontamination(s)
    assert info["split"] == "all" and len(problems) == 1405


def test_resume_from_the_last_checkpoint_never_trains_past_max_steps(tiny_model, tmp_path):
    from transformers import TrainerCallback

    class KillAfterLastSave(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.global_step == 2:
                raise _Kill  # killed between the last checkpoint and the final save

    out = tmp_path / "last"
    with pytest.raises(_Kill):
        _train(tiny_model, out, "--save_steps", "1", callbacks=[KillAfterLastSave()])
    assert (out / "checkpoint-2").is_dir() and not (out / "manifest.json").exists()
    again = _train(tiny_model, out, "--save_steps", "1")
    assert again["resumed_from"] == "checkpoint-2" and again["global_step"] == 2
    assert _steps(out) == [1, 2]


def test_dry_run_prints_the_resolved_configuration_and_loads_nothing(tmp_path):
    import subprocess

    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "sft" / "train.py"), "--model", "google/gemma-7b", "--method", "full",
         "--use_cpu", "true", "--dry_run", "--output_dir", str(tmp_path / "never")],
        capture_output=True, text=True, cwd=REPO, env={**env, "PYTHONPATH": str(REPO)}, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["recipe"] == "sft/recipes/gemma-7b/full.yaml" and got["effective_batch"] == 16
    assert got["precision"]["master_weights"] == "fp32" and got["expected_gpu_memory_gb"] == 40
    assert not (tmp_path / "never").exists()
