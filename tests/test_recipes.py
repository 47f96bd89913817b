"""SFT recipes and accelerate configs: every file parses, and every key is one its consumer knows.

Recipes go through the real `sft/train.py` parser (TRL's TrlParser over SFTConfig, ModelConfig and
LetItCode's options), which rejects unknown keys. Accelerate configs go through accelerate's own config
classes, and their nested keys are checked against `accelerate launch`'s arguments, which is where
accelerate copies them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "sft" / "recipes").glob("*/*.yaml"))
ACCELERATE = sorted((REPO / "accelerate_configs").glob("*.yaml"))
SEED_MODELS = {
    "gemma-7b": "google/gemma-7b",
    "llama-3.1-8b-instruct": "meta-llama/Llama-3.1-8B-Instruct",
    "phi-3-mini-4k-instruct": "microsoft/Phi-3-mini-4k-instruct",
}


def test_every_model_has_its_recipes():
    have = {(p.parent.name, p.stem) for p in RECIPES}
    for short in SEED_MODELS:
        assert {(short, m) for m in ("lora", "qlora", "dora", "full")} <= have, short
    assert {("embedded", m) for m in ("lora", "qlora", "dora", "full", "ia3")} <= have
    assert {p.stem for p in ACCELERATE} == {"single_gpu", "multi_gpu", "deepspeed_zero3", "fsdp"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recipe_parses_with_valid_keys(path):
    from letitcode.training.config import Hardware, parse_args

    raw = yaml.safe_load(path.read_text())
    assert isinstance(raw, dict) and raw
    import torch

    # TrainingArguments refuses bf16 without a GPU unless told to run on the CPU; the keys are what is tested
    cpu_flag = [] if torch.cuda.is_available() or path.parent.name == "embedded" else ["--use_cpu", "true"]
    script, sft, model = parse_args(["--config", str(path), *cpu_flag], hardware=Hardware(True, True, 80.0))
    assert script.method == path.stem == raw["method"]
    assert script.expected_gpu_memory_gb and script.expected_gpu_memory_gb > 0
    assert "GPU memory" in path.read_text()  # the expectation is explained in the header
    assert sft.output_dir == f"runs/sft/{path.parent.name}-{path.stem}"
    for key, value in raw.items():  # every key landed where it was meant to, none was dropped
        got = next(getattr(obj, key) for obj in (script, sft, model) if hasattr(obj, key))
        if key == "lora_target_modules":
            assert got == (value[0] if len(value) == 1 else value)
        elif key == "optim" and sft.use_cpu:  # a paged optimizer needs a GPU: its unpaged twin on the CPU
            from letitcode.training.config import _PAGED

            assert got.value == _PAGED.get(value, value)
        elif key in ("optim", "lr_scheduler_type"):  # enums
            assert got.value == value
        elif key == "report_to":  # TrainingArguments turns "none" into []
            assert got == ([] if value == "none" else [value])
        else:
            assert got == value, key
    if path.parent.name == "embedded":
        assert model.model_name_or_path == "embedded" and sft.use_cpu and not sft.bf16
        assert sft.max_steps and sft.max_steps <= 50  # minutes on a CPU
    else:
        assert model.model_name_or_path == SEED_MODELS[path.parent.name]
        assert sft.bf16 and sft.gradient_checkpointing
        # full fine-tuning: fp32 master weights under bf16 autocast; adapters: a bf16 base
        assert model.dtype == ("float32" if script.method == "full" else "bfloat16")
        assert script.effective_batch_size == 16 and "gradient_accumulation_steps" not in raw
    if script.method == "qlora":
        assert model.load_in_4bit and model.bnb_4bit_quant_type == "nf4" and model.use_bnb_nested_quant
    if script.method == "dora":
        assert model.use_dora
    expected_lr = {"full": 2e-5, "ia3": 3e-3}.get(script.method, 2e-4)
    assert sft.learning_rate == expected_lr


def test_recipe_launch_lines_name_existing_accelerate_configs():
    names = {p.name for p in ACCELERATE}
    for path in RECIPES:
        for line in path.read_text().splitlines():
            if "--config_file" in line:
                cfg = line.split("--config_file", 1)[1].split()[0]
                assert Path(cfg).name in names and (REPO / cfg).exists(), (path, cfg)


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.stem)
def test_accelerate_config_loads_with_valid_keys(path):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    cfg = load_config_from_file(str(path))  # raises on unknown top-level keys
    assert isinstance(cfg, ClusterConfig)
    raw = yaml.safe_load(path.read_text())
    dests = {a.dest for a in launch_command_parser()._actions}
    # `accelerate launch` copies nested keys onto its own arguments (fsdp_config.x -> --fsdp_x)
    for section, prefix in (("deepspeed_config", ""), ("fsdp_config", "fsdp_")):
        for key in raw.get(section, {}):
            arg = key if key.startswith(prefix) else prefix + key
            assert arg in dests, f"{path.name}: {section}.{key} is not an accelerate launch option"
    expected = {
        "single_gpu": "NO",
        "multi_gpu": "MULTI_GPU",
        "deepspeed_zero3": "DEEPSPEED",
        "fsdp": "FSDP",
    }[path.stem]
    assert str(cfg.distributed_type.value) == expected
    assert cfg.mixed_precision == "bf16"
    if path.stem == "deepspeed_zero3":
        assert cfg.deepspeed_config["zero_stage"] == 3 and cfg.deepspeed_config["zero3_save_16bit_model"]
    if path.stem == "fsdp":
        assert (
            cfg.fsdp_config["fsdp_version"] == 2
            and cfg.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
        )
