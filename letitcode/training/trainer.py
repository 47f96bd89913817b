"""Supervised fine-tuning with TRL: configuration, data, trainer, resume, merge, model card and Hub push.

`sft/train.py` is a thin wrapper around `parse_args` + `train`. Configuration goes through TRL's own
`TrlParser` over (`SFTScriptArguments`, `trl.SFTConfig`, `SFTModelConfig`), so precedence is

    generic defaults < per-method defaults (`method_defaults`) < YAML recipe (`--config`) < command line.

TRL 1.16's `SFTConfig` defaults (bf16=True, gradient checkpointing on, max_length=1024, lr 2e-5) suit a GPU
and full fine-tuning; `method_defaults` sets every one of them deliberately for the method and the hardware.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trl import ModelConfig

from letitcode import models, prompts
from letitcode.errors import UserError
from letitcode.hub import publish as hub
from letitcode.records import library_versions, write_json
from letitcode.training.data import DEFAULT_DATASET, SFTData, build_sft_data, load_rows, write_rows

log = logging.getLogger(__name__)

METHODS = ("lora", "qlora", "dora", "full", "ia3")
ADAPTER_METHODS = ("lora", "qlora", "dora", "ia3")
REPO = Path(__file__).resolve().parents[2]
MODEL_CARDS = REPO / "model_cards"
RECIPES = REPO / "sft" / "recipes"
# IA³ targets where PEFT has no default for the architecture (Phi-3 fuses q/k/v and gate/up projections).
_IA3_FALLBACK = {"phi3": (["qkv_proj", "down_proj"], ["down_proj"])}
# Pushed to the Hub from the output folder; checkpoints, evaluation scratch and pickles stay local.
_PUSH_IGNORE = [
    "checkpoint-*",
    "checkpoint-*/**",
    "eval/**",
    "merged/**",
    "runs/**",
    "training_args.bin",
    "*.pt",
]


# ------------------------------------------------------------------------------------------- configuration


@dataclass
class SFTScriptArguments:
    """LetItCode's own SFT options (everything that is neither a TRL `SFTConfig` nor a `ModelConfig` field)."""

    method: str = field(
        default="lora",
        metadata={
            "help": "Fine-tuning method; picks per-method defaults (see README).",
            "choices": list(METHODS),
        },
    )
    dataset_name: str = field(
        default=DEFAULT_DATASET,
        metadata={
            "help": "SFT data: a Hub dataset id ORG/NAME[@REVISION] or a local JSONL/JSON/Parquet file or folder.",
            "aliases": ["--dataset"],
        },
    )
    dataset_revision: str | None = field(default=None, metadata={"help": "Hub revision of the dataset."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split of the source to train on."})
    column_map: str | None = field(
        default=None,
        metadata={
            "help": "Override detected columns: FIELD=COLUMN pairs, e.g. 'description=query,target=response' "
            "(fields: description, target, input, title, slug, difficulty, starter_code, task_id; dotted paths "
            "reach nested columns such as meta.difficulty). A YAML mapping also works in recipes."
        },
    )
    completion_format: str = field(
        default="code+explanation",
        metadata={
            "help": "Train on the target as is ('code+explanation') or on its code only ('code': fences and prose "
            "stripped).",
            "choices": ["code", "code+explanation"],
        },
    )
    prompt_style: str = field(
        default="auto",
        metadata={
            "help": "'chat' (chat template), 'completion' (plain text), or 'auto': the seed table "
            "(letitcode.prompts.SEED_STYLES), else chat when the tokenizer has a chat template. The evaluator "
            "uses the same rule, and reads the style from the training manifest.",
            "choices": ["auto", "chat", "completion"],
        },
    )
    val_fraction: float = field(
        default=0.1,
        metadata={"help": "Share of problems held out for validation (split by problem, hashed)."},
    )
    split_seed: int = field(
        default=0, metadata={"help": "Seed of the train/validation split (not the training seed)."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep at most this many training rows."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep at most this many validation rows."}
    )
    eval_benchmark: str = field(
        default="leetcode",
        metadata={
            "help": "The evaluation benchmark: its problems are removed from the training data (decontamination), "
            "and --eval_after scores it when the training data has no tests."
        },
    )
    eval_dataset: str | None = field(
        default=None,
        metadata={"help": "Local file or Hub id of the evaluation benchmark (default: per benchmark)."},
    )
    eval_split: str | None = field(
        default=None,
        metadata={
            "help": "Split of the evaluation benchmark that is evaluated, and decontaminated against (default: "
            "'test' for the embedded leetcode problems, whose other half may be trained on; the benchmark's own "
            "default otherwise)."
        },
    )
    eval_revision: str | None = field(
        default=None, metadata={"help": "Hub revision of the evaluation benchmark."}
    )
    decontaminate: bool = field(
        default=True,
        metadata={
            "help": "Remove training problems that appear in the evaluation benchmark (slug/title/description)."
        },
    )
    eval_after: bool = field(
        default=False,
        metadata={
            "help": "After training, score pass@1 on a train subset and on held-out problems (overfitting.json)."
        },
    )
    eval_limit: int = field(
        default=20, metadata={"help": "Problems per side for --eval_after (difficulty-stratified)."}
    )
    eval_max_new_tokens: int = field(default=512, metadata={"help": "Generation budget for --eval_after."})
    merge: bool = field(
        default=False,
        metadata={"help": "Also save (and with --push_to_hub, push) the adapter merged into the base model."},
    )
    merged_hub_model_id: str | None = field(
        default=None, metadata={"help": "Repo for the merged model (default: HUB_MODEL_ID-merged)."}
    )
    resume: bool = field(
        default=True,
        metadata={
            "help": "Resume from the last checkpoint in output_dir when it was written by the same training "
            "configuration (rerun = resume; a finished run trains zero steps)."
        },
    )
    overwrite: bool = field(
        default=False,
        metadata={
            "help": "When output_dir holds a run of a different training configuration, retrain from scratch "
            "(its checkpoints and outputs are deleted) instead of failing."
        },
    )
    recipe: str = field(
        default="auto",
        metadata={
            "help": "'auto': without --config, use sft/recipes/<model>/<method>.yaml; 'none': generic "
            "per-method defaults; or a recipe file (same as --config)."
        },
    )
    effective_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Examples per optimizer step over all processes; sets gradient_accumulation_steps to "
            "EFFECTIVE / (per_device_train_batch_size x processes) unless that is given on the command line."
        },
    )
    dry_run: bool = field(
        default=False,
        metadata={
            "help": "Print the resolved configuration (recipe, effective batch, precision, target modules, "
            "expected GPU memory) and exit before loading anything."
        },
    )
    eval_loss_max_rows: int = field(
        default=200,
        metadata={
            "help": "The validation loss is computed on at most this many validation rows (the first ones of "
            "the deterministic split), so each validation pass stays bounded in time and memory (0: all; "
            "default 200 on a GPU, 32 on a CPU)."
        },
    )
    cpu_memory_saving: str = field(
        default="auto",
        metadata={
            "help": "On a CPU (never on a GPU; see letitcode/cpu_memory.py): 'on' scores TRL's fused LM head in "
            "small tiles and fixes malloc's mmap threshold, so freed activations go back to the OS (with "
            "gradient checkpointing, LoRA peak RSS 0.83x -> 0.52x of full fine-tuning, LoRA steps 1.5x "
            "slower); 'auto' always uses the small tiles (no slower) and adds the malloc threshold only with "
            "--gradient_checkpointing, which already trades speed for memory; 'off' neither.",
            "choices": ["auto", "on", "off"],
        },
    )
    expected_gpu_memory_gb: float | None = field(
        default=None,
        metadata={
            "help": "GPU memory the recipe expects per device; a smaller GPU gets a warning before loading."
        },
    )


@dataclass
class SFTModelConfig(ModelConfig):
    """TRL's ModelConfig with `--model` as an alias and LetItCode's model specs (`embedded`, ORG/NAME@REV, folder)."""

    model_name_or_path: str | None = field(
        default="embedded",
        metadata={
            "help": "'embedded' (SmolLM2-135M-Instruct, offline), a Hub id ORG/NAME[@REVISION], or a local folder.",
            "aliases": ["--model"],
        },
    )


@dataclass(frozen=True)
class Hardware:
    cuda: bool
    bf16: bool
    gpu_memory_gb: float | None = None

    @classmethod
    def detect(cls) -> Hardware:
        import torch

        if not torch.cuda.is_available():
            return cls(False, False)
        mem = torch.cuda.get_device_properties(0).total_memory / 2**30
        return cls(True, torch.cuda.is_bf16_supported(), round(mem, 1))


def method_defaults(method: str, hw: Hardware) -> dict[str, Any]:
    """Defaults for one method on this hardware; a recipe or the command line overrides any of them."""
    if method not in METHODS:
        raise UserError(f"--method {method!r} is not one of {', '.join(METHODS)}")
    d: dict[str, Any] = {
        # TRL 1.16 turns bf16 and gradient checkpointing on by default: only where they help.
        "bf16": hw.bf16,
        "fp16": False,
        "use_cpu": not hw.cuda,
        "gradient_checkpointing": hw.cuda,
        "dtype": "bfloat16" if hw.bf16 else "float32",
        # Covers 98% of LeetCodeDataset prompt+code examples (SmolLM2 tokenizer: p50 555, p90 809 tokens).
        "max_length": 1024,
        # CPU: one 1024-token row per step, as the embedded recipes (4 rows x 1024 tokens without gradient
        # checkpointing peaked at 10.8 GB RSS on the embedded model)
        "per_device_train_batch_size": 4 if hw.cuda else 1,
        "per_device_eval_batch_size": 4 if hw.cuda else 1,
        "gradient_accumulation_steps": 4 if hw.cuda else 1,
        "num_train_epochs": 3,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0.03,  # a ratio of the total steps when < 1
        "weight_decay": 0.0,
        "logging_steps": 10,
        "logging_first_step": True,
        "eval_strategy": "steps",
        "eval_steps": 0.1,
        "save_strategy": "steps",
        "save_steps": 0.1,
        "save_total_limit": 2,
        "report_to": "none",
        "seed": 42,
        # a validation pass stays minutes long: on 2 CPU cores one 1024-token row takes ~30 s to score
        "eval_loss_max_rows": 200 if hw.cuda else 32,
        "use_peft": method in ADAPTER_METHODS,
        "use_dora": method == "dora",
        "load_in_4bit": method == "qlora",
    }
    if method in ("lora", "qlora", "dora"):
        # Common LoRA practice (QLoRA paper, alignment-handbook recipes): r=16, alpha=2r, every linear layer.
        d.update(
            learning_rate=2e-4,
            lora_r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            lora_target_modules=["all-linear"],
        )
    if method == "qlora":
        d.update(bnb_4bit_quant_type="nf4", use_bnb_nested_quant=True)
    if method == "full":
        # fp32 master weights, bf16 autocast where the GPU has it (TrainingArguments bf16=True on an fp32 model):
        # at lr 2e-5 most updates of a pure-bf16 weight fall below its resolution. Checkpoints hold the model
        # only (no optimizer state: ~3x smaller), and at most two are kept.
        d.update(learning_rate=2e-5, dtype="float32", save_only_model=True)
    if method == "ia3":
        d.update(learning_rate=3e-3)  # (IA)³ / T-Few used 3e-3: its vectors start at 1 and need a larger step
    return d


def make_parser() -> Any:
    from trl import SFTConfig, TrlParser

    return TrlParser((SFTScriptArguments, SFTConfig, SFTModelConfig))


def _peek(argv: list[str], *flags: str) -> str | None:
    """The value of the last of `flags` on the command line (`--flag V` or `--flag=V`)."""
    found = None
    for i, a in enumerate(argv):
        for f in flags:
            if a == f and i + 1 < len(argv):
                found = argv[i + 1]
            elif a.startswith(f + "="):
                found = a.split("=", 1)[1]
    return found


def _read_yaml(path: str) -> dict[str, Any]:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except OSError as e:
        raise UserError(f"--config {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise UserError(f"--config {path}: not valid YAML: {str(e).splitlines()[0]}") from e
    if not isinstance(data, dict):
        raise UserError(f"--config {path}: must be a YAML mapping of option: value")
    return data


def model_short_name(spec: str) -> str:
    spec = spec.rstrip("/").split("@")[0]
    return Path(spec).name or spec


def recipe_slug(model: str) -> str:
    """The recipe folder of a model spec: `google/gemma-7b@sha` -> `gemma-7b`, `embedded` -> `embedded`."""
    return model_short_name(model).lower()


def available_recipes() -> dict[str, list[str]]:
    """{model folder: [methods]} of sft/recipes."""
    out: dict[str, list[str]] = {}
    for path in sorted(RECIPES.glob("*/*.yaml")):
        out.setdefault(path.parent.name, []).append(path.stem)
    return out


def find_recipe(model: str, method: str) -> Path:
    """sft/recipes/<slug>/<method>.yaml, or a one-line UserError saying which recipes exist."""
    slug = recipe_slug(model)
    have = available_recipes()
    path = RECIPES / slug / f"{method}.yaml"
    if path.exists():
        return path
    if slug in have:
        raise UserError(
            f"no recipe for --model {model} --method {method}: sft/recipes/{slug}/ has "
            f"{', '.join(have[slug])}; pick one of those methods, pass --config FILE, or --recipe none for "
            "generic defaults"
        )
    listing = "; ".join(f"{m}: {', '.join(ms)}" for m, ms in have.items())
    raise UserError(
        f"no recipe for --model {model} (recipes exist for {listing}): pass --config FILE, or --recipe none "
        f"to train with generic per-method defaults"
    )


def _relative(path: str | Path) -> str:
    """A path for manifests and cards: relative to the checkout or the working directory, else its name."""
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    p = p.resolve()
    for root in (REPO, Path.cwd().resolve()):
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            continue
    return p.name


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def parse_args(argv: list[str] | None = None, *, hardware: Hardware | None = None) -> tuple[Any, Any, Any]:
    """(script_args, sft_config, model_config) with defaults < method defaults < YAML < command line.

    Without `--config`, the recipe `sft/recipes/<model>/<method>.yaml` is the YAML (`--recipe none`: no
    recipe). `script_args.recipe` holds the recipe file used (relative) or "none".
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    hw = hardware or Hardware.detect()
    config_path = _peek(argv, "--config")
    recipe_flag = _peek(argv, "--recipe") or "auto"
    cli_model = _peek(argv, "--model", "--model_name_or_path", "--model-name-or-path")
    if config_path is None and recipe_flag not in ("auto", "none"):
        config_path = recipe_flag  # --recipe FILE is --config FILE
        argv = ["--config", config_path, *argv]
    elif config_path is None and recipe_flag == "auto":
        found = find_recipe(cli_model or "embedded", _peek(argv, "--method") or "lora")
        config_path = str(found)
        argv = ["--config", config_path, *argv]
        print(f"recipe: {_relative(found)} (--recipe none for generic defaults)", file=sys.stderr)
    config = _read_yaml(config_path) if config_path else {}
    method = _peek(argv, "--method") or config.get("method") or "lora"
    model = cli_model or config.get("model_name_or_path") or "embedded"
    # TRL 1.16's own SFTConfig default (gradient_checkpointing=True) trips transformers 5's rename warning on
    # every run; the flag still works (it mirrors activation_checkpointing), so the warning is only noise.
    warnings.filterwarnings(
        "ignore", message=r"`gradient_checkpointing` is deprecated", category=FutureWarning
    )
    argv = _precision_for_hardware(argv, config, hw)
    parser = make_parser()
    defaults = method_defaults(str(method), hw)
    defaults["output_dir"] = str(Path("runs") / "sft" / f"{model_short_name(str(model))}-{method}")
    unused = parser.set_defaults_with_config(**defaults)
    assert not unused, unused  # method_defaults only names real options
    try:
        script_args, sft_args, model_args = parser.parse_args_and_config(argv)
    except ValueError as e:  # unknown keys in the YAML recipe, bad values
        msg = str(e).splitlines()[0]
        if "bf16" in msg:
            msg += " This recipe is for a GPU: on a CPU use sft/recipes/embedded/, or pass --bf16 false --use_cpu true."
        raise UserError(msg) from e
    if isinstance(script_args.column_map, dict):
        script_args.column_map = json.dumps(script_args.column_map)
    script_args.recipe = _relative(config_path) if config_path else "none"
    _apply_effective_batch(script_args, sft_args, argv)
    _optimizer_for_device(sft_args, hw)
    return script_args, sft_args, model_args


def _precision_for_hardware(argv: list[str], config: dict[str, Any], hw: Hardware) -> list[str]:
    """On a GPU without bf16 (T4, V100), a bf16 recipe trains in fp16 instead, with a warning line.

    An explicit `--bf16 true` on such a GPU is an error that says what to pass.
    """
    if not hw.cuda or hw.bf16:
        return argv
    cli = _peek(argv, "--bf16")
    if cli is not None and _truthy(cli):
        raise UserError(
            "--bf16 true: this GPU has no bf16 support (e.g. T4, V100); pass --bf16 false --fp16 true "
            "--dtype float16"
        )
    if cli is None and _truthy(config.get("bf16", False)):
        extra = ["--bf16", "false", "--fp16", "true"]
        if _peek(argv, "--dtype") is None and config.get("dtype") == "bfloat16":
            extra += ["--dtype", "float16"]
        print(
            "warning: this GPU has no bf16 support: the recipe's bf16 training runs in fp16 instead "
            f"({' '.join(extra)})",
            file=sys.stderr,
        )
        return [*argv, *extra]
    return argv


def _apply_effective_batch(script_args: Any, sft_args: Any, argv: list[str]) -> None:
    """`effective_batch_size` sets gradient accumulation for the number of processes of this launch."""
    target = script_args.effective_batch_size
    world = max(1, int(sft_args.world_size))
    if not target or _peek(argv, "--gradient_accumulation_steps") is not None:
        return
    per_step = sft_args.per_device_train_batch_size * world
    if target % per_step:
        raise UserError(
            f"--effective_batch_size {target} is not a multiple of --per_device_train_batch_size "
            f"{sft_args.per_device_train_batch_size} x {world} process(es): change one of them, or pass "
            "--gradient_accumulation_steps"
        )
    sft_args.gradient_accumulation_steps = target // per_step


# Paged optimizers page their states to host memory through CUDA unified memory: only on a GPU.
_PAGED = {
    "paged_adamw_8bit": "adamw_bnb_8bit",
    "paged_adamw_32bit": "adamw_torch",
    "paged_lion_8bit": "lion_8bit",
    "paged_lion_32bit": "lion_32bit",
    "paged_ademamix_8bit": "ademamix_8bit",
    "paged_ademamix_32bit": "ademamix",
}


def _optimizer_for_device(sft_args: Any, hw: Hardware) -> None:
    optim = str(getattr(sft_args.optim, "value", sft_args.optim))
    if (hw.cuda and not sft_args.use_cpu) or optim not in _PAGED:
        return
    from transformers.training_args import OptimizerNames

    sft_args.optim = OptimizerNames(_PAGED[optim])
    print(f"note: --optim {optim} needs a GPU; on the CPU using {_PAGED[optim]}", file=sys.stderr)


def describe(script_args: Any, sft_args: Any, model_args: Any) -> dict[str, Any]:
    """The resolved configuration that `--dry_run` prints: nothing is loaded."""
    method = script_args.method
    autocast = "bf16" if sft_args.bf16 else ("fp16" if sft_args.fp16 else None)
    if method == "full":
        precision = {"master_weights": "fp32", "autocast": autocast, "load_dtype": "float32"}
    else:
        base = f"{model_args.bnb_4bit_quant_type} 4-bit" if model_args.load_in_4bit else model_args.dtype
        precision = {"base_weights": base, "adapter_weights": "float32", "autocast": autocast}
    dist = distributed_kind(sft_args)
    return {
        "recipe": script_args.recipe,
        "model": model_args.model_name_or_path,
        "method": method,
        "dataset": script_args.dataset_name,
        "output_dir": sft_args.output_dir,
        "processes": dist["num_processes"],
        "distributed": dist["type"],
        "per_device_train_batch_size": sft_args.per_device_train_batch_size,
        "gradient_accumulation_steps": sft_args.gradient_accumulation_steps,
        "effective_batch": effective_batch(sft_args),
        "learning_rate": sft_args.learning_rate,
        "max_steps": sft_args.max_steps,
        "num_train_epochs": sft_args.num_train_epochs,
        "precision": precision,
        "optim": str(getattr(sft_args.optim, "value", sft_args.optim)),
        "target_modules": model_args.lora_target_modules if method in ("lora", "qlora", "dora") else None,
        "lora_r": model_args.lora_r if method in ("lora", "qlora", "dora") else None,
        "expected_gpu_memory_gb": script_args.expected_gpu_memory_gb,
        "eval": {"split": resolved_eval_split(script_args), "benchmark": script_args.eval_benchmark},
    }


# ------------------------------------------------------------------------------------------------ pieces


def build_peft_config(method: str, model_args: Any, model_type: str | None) -> Any:
    """The PEFT config of `method`: TRL's `get_peft_config` for the LoRA family, IA³ from PEFT's defaults."""
    if method == "full":
        if model_args.load_in_4bit or model_args.load_in_8bit:
            raise UserError(
                "--method full cannot train a quantized model: drop --load_in_4bit/--load_in_8bit"
            )
        return None
    if method == "ia3":
        from peft import IA3Config
        from peft.utils import (
            TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING,
            TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING,
        )

        targets = TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING.get(model_type or "")
        ff = TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING.get(model_type or "")
        if targets is None and model_type in _IA3_FALLBACK:
            targets, ff = _IA3_FALLBACK[model_type]
        if targets is None:
            raise UserError(
                f"--method ia3: PEFT has no default IA³ modules for model type {model_type!r}; use --method lora"
            )
        return IA3Config(
            task_type="CAUSAL_LM", target_modules=list(targets), feedforward_modules=list(ff or [])
        )
    from trl import get_peft_config

    model_args.use_peft = True
    return get_peft_config(model_args)


def count_parameters(model: Any) -> dict[str, int]:
    """Trainable and total parameters, and how many linear layers are bitsandbytes-quantized."""
    if hasattr(model, "get_nb_trainable_parameters"):  # PEFT: counts 4-bit packed weights correctly
        trainable, total = model.get_nb_trainable_parameters()
    else:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
    quantized = sum(type(m).__module__.startswith("bitsandbytes") for m in model.modules())
    return {"trainable": int(trainable), "total": int(total), "quantized_linear_layers": int(quantized)}


def hyperparameters(method: str, sft_args: Any, peft_config: Any, quant: Any) -> dict[str, Any]:
    keys = (
        "learning_rate",
        "num_train_epochs",
        "max_steps",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "lr_scheduler_type",
        "warmup_steps",
        "weight_decay",
        "optim",
        "max_length",
        "packing",
        "bf16",
        "gradient_checkpointing",
        "seed",
    )
    hp: dict[str, Any] = {"method": method, **{k: getattr(sft_args, k) for k in keys}}
    hp["optim"] = str(hp["optim"].value if hasattr(hp["optim"], "value") else hp["optim"])
    hp["lr_scheduler_type"] = str(getattr(hp["lr_scheduler_type"], "value", hp["lr_scheduler_type"]))
    hp["effective_batch_size"] = (
        sft_args.per_device_train_batch_size
        * sft_args.gradient_accumulation_steps
        * max(1, sft_args.world_size)
    )
    if peft_config is not None:
        pc = peft_config.to_dict()
        keep = (
            "peft_type",
            "r",
            "lora_alpha",
            "lora_dropout",
            "target_modules",
            "use_dora",
            "feedforward_modules",
        )
        hp["peft"] = {
            k: (sorted(v) if isinstance(v, (set, list)) else getattr(v, "value", v))
            for k, v in pc.items()
            if k in keep
        }
    if quant is not None:
        hp["quantization"] = {
            "load_in_4bit": quant.load_in_4bit,
            "bnb_4bit_quant_type": quant.bnb_4bit_quant_type,
            "bnb_4bit_use_double_quant": quant.bnb_4bit_use_double_quant,
            "bnb_4bit_compute_dtype": str(quant.bnb_4bit_compute_dtype).replace("torch.", ""),
        }
    return hp


def plot_losses(log_history: list[dict[str, Any]], path: str | Path) -> dict[str, Any]:
    """Plot train and eval loss against the step to `path` (PNG). Returns the last values of each curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e and "step" in e]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", marker="." if len(train) < 30 else None)
    if evals:
        ax.plot(*zip(*evals, strict=True), label="validation loss", marker="o")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")
    ax.set_ylabel("loss (completion tokens)")
    ax.set_title("SFT loss")
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return {
        "final_train_loss": train[-1][1] if train else None,
        "final_eval_loss": evals[-1][1] if evals else None,
        "train_points": len(train),
        "eval_points": len(evals),
    }


def drop_overlong_prompts(dataset: Any, tokenizer: Any, max_length: int | None) -> tuple[Any, int]:
    """Drop examples whose prompt alone fills `max_length` tokens: truncation would leave no completion token.

    Without packing TRL drops those itself after truncating; with packing it truncates while packing, and such
    an example becomes a row with no trainable token (a wasted step logged as loss 0.0: measured on
    LeetCodeDataset at 1024 tokens, 8 of 709 packed rows).
    """
    if dataset is None or max_length is None:
        return dataset, 0

    def prompt_len(example: dict[str, Any]) -> dict[str, int]:
        # what TRL tokenizes as the prompt (BOS included), as the evaluator does
        return {"_n": len(prompts.encode_prompt(tokenizer, example["prompt"]))}

    n = dataset.map(prompt_len, desc="Measuring prompts")["_n"]
    keep = [i for i, k in enumerate(n) if k < max_length]
    if len(keep) == len(n):
        return dataset, 0
    return dataset.select(keep), len(n) - len(keep)


def last_checkpoint(output_dir: str | Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None


def merge_adapter(
    adapter_dir: str | Path, base_path: str, out_dir: str | Path, dtype: str = "float32"
) -> Path:
    """Merge an adapter into a fresh, unquantized copy of its base (QLoRA adapters too) and save it."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=getattr(torch, dtype))
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    out = Path(out_dir)
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(adapter_dir)).save_pretrained(out)
    return out


# ------------------------------------------------------------------------------------------------ resume

FINGERPRINT_FILE = "training_config.json"
# TrainingArguments fields that do not change the trained weights: where things go, how often to log,
# evaluate or save, and how the work is spread over devices. Everything else is part of the fingerprint.
_NOT_RESULT_PREFIXES = (
    "logging_",
    "eval_",
    "save_",
    "hub_",
    "push_",
    "dataloader_",
    "report_",
    "ddp_",
    "fsdp",
    "torch_compile",
    "include_",
    "jit_",
    "mp_",
    "accelerator_config",
    "parallelism_config",
)
_NOT_RESULT = {
    "output_dir",
    "run_name",
    "resume_from_checkpoint",
    "overwrite_output_dir",
    "do_train",
    "do_eval",
    "do_predict",
    "per_device_eval_batch_size",
    "prediction_loss_only",
    "disable_tqdm",
    "local_rank",
    "deepspeed",
    "use_cpu",
    "gradient_checkpointing",
    "gradient_checkpointing_kwargs",
    "activation_checkpointing",
    "activation_offloading",
    "restore_callback_states_from_checkpoint",
    "skip_memory_metrics",
    "log_level",
    "log_level_replica",
    "log_on_each_node",
    "label_names",
    "remove_unused_columns",
    "dataset_num_proc",
    "trackio_space_id",
    "project",
    "bf16_full_eval",
    "fp16_full_eval",
    "batch_eval_metrics",
    "average_tokens_across_devices",
    "use_liger_kernel",
    "liger_kernel_config",
    "model_init_kwargs",
}
_MODEL_KEYS = ("dtype", "attn_implementation", "use_peft", "lora_r", "lora_alpha", "lora_dropout",
               "lora_target_modules", "lora_target_parameters", "lora_modules_to_save", "lora_task_type",
               "use_rslora", "use_dora", "load_in_8bit", "load_in_4bit", "bnb_4bit_quant_type",
               "use_bnb_nested_quant", "bnb_4bit_quant_storage")  # fmt: skip


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: getattr(o, "value", str(o)), sort_keys=True))


def training_config(
    method: str, sft_args: Any, model_args: Any, resolved: Any, data: SFTData, train_ds: Any, load_dtype: str
) -> dict[str, Any]:
    """Everything that decides the trained weights: the model and its revision, the exact training examples
    (hashed, so data, its revision, decontamination, column maps and prompt templates all count), the method and
    the hyperparameters. A rerun resumes only a run whose configuration is this one."""
    import hashlib

    examples = hashlib.sha256()
    for ex in train_ds:
        examples.update(json.dumps(ex, sort_keys=True, ensure_ascii=False, default=str).encode())
    sft = {
        k: v
        for k, v in sft_args.to_dict().items()
        if k not in _NOT_RESULT and not k.startswith(_NOT_RESULT_PREFIXES) and not k.startswith("_")
    }
    # effective batch, not its factorisation: a relaunch on another number of GPUs keeps the same run
    sft.pop("gradient_accumulation_steps", None)
    sft.pop("per_device_train_batch_size", None)
    sft["effective_batch_size"] = effective_batch(sft_args)
    model = {k: getattr(model_args, k, None) for k in _MODEL_KEYS}
    model["load_dtype"] = load_dtype
    return _jsonable({
        "method": method,
        "model": {"hub_id": resolved.hub_id, "revision": resolved.revision, "fingerprint": resolved.fingerprint},
        "data": {"source": _relative(data.raw.source) if not data.raw.from_hub else data.raw.source,
                 "revision": data.raw.revision, "version": data.raw.version, "split": data.raw.split,
                 "train_examples": len(train_ds), "train_examples_sha256": examples.hexdigest()[:16]},
        "model_args": model,
        "training_args": sft,
    })  # fmt: skip


def config_fingerprint(config: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}." if isinstance(v, dict) else f"{prefix}{k}"))
    return out


def config_changes(old: dict[str, Any] | None, new: dict[str, Any], limit: int = 4) -> str:
    """'learning_rate 0.0002 -> 0.0001, lora_r 16 -> 8' for the first few settings that differ."""
    if old is None:
        return "written before LetItCode recorded training configurations"
    a, b = _flat(old), _flat(new)
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    shown = [f"{k.rsplit('.', 1)[-1]} {a.get(k)!r} -> {b.get(k)!r}" for k in keys[:limit]]
    return ", ".join(shown) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _final_weights_saved(output_dir: Path) -> bool:
    return any((output_dir / f).exists() for f in ("adapter_model.safetensors", "model.safetensors",
                                                    "model.safetensors.index.json", "adapter_model.bin",
                                                    "pytorch_model.bin"))  # fmt: skip


# What a run writes into its output folder; --overwrite removes exactly these (never anything else there).
_RUN_FILES = ("checkpoint-*", "merged", "eval", "runs", "manifest.json", FINGERPRINT_FILE, "trainer_state.json",
              "loss.png", "README.md", "overfitting.json", "adapter_*", "model*.safetensors*", "pytorch_model*",
              "config.json", "generation_config.json", "tokenizer*", "special_tokens_map.json", "chat_template.*",
              "training_args.bin", "vocab.json", "merges.txt", "added_tokens.json")  # fmt: skip


def wipe_run(output_dir: Path) -> list[str]:
    """Delete a previous run's outputs from `output_dir` (only the files a run writes). Returns their names."""
    removed = []
    for pattern in _RUN_FILES:
        for p in sorted(output_dir.glob(pattern)):
            if p.is_symlink() or p.is_file():
                p.unlink()
            elif p.is_dir():
                shutil.rmtree(p)
            removed.append(p.name)
    return removed


@dataclass
class ResumePlan:
    action: str  # "fresh", "resume", "done"
    checkpoint: str | None = None
    note: str | None = None
    manifest: dict[str, Any] | None = None


def plan_resume(
    output_dir: Path,
    fingerprint: str,
    config: dict[str, Any],
    *,
    resume: bool,
    overwrite: bool,
    explicit_checkpoint: str | None = None,
) -> ResumePlan:
    """What a (re)run does in `output_dir`: train from scratch, resume a checkpoint of this same configuration,
    or nothing because this configuration already finished there. A different configuration's checkpoints or
    outputs are an error unless `overwrite` (then they are deleted and training starts from scratch)."""
    if not output_dir.is_dir():
        return ResumePlan("fresh")
    manifest = _read_json(output_dir / "manifest.json")
    if manifest and manifest.get("fingerprint") == fingerprint and _final_weights_saved(output_dir):
        return ResumePlan("done", manifest=manifest)
    if explicit_checkpoint:
        return ResumePlan("resume", checkpoint=explicit_checkpoint)
    ckpt = last_checkpoint(output_dir)
    previous = None
    if ckpt:
        previous = _read_json(Path(ckpt) / FINGERPRINT_FILE)
    elif manifest is not None or (output_dir / FINGERPRINT_FILE).exists():
        previous = manifest if manifest is not None else _read_json(output_dir / FINGERPRINT_FILE)
    if ckpt is None and previous is None:
        return ResumePlan("fresh")
    old_fp = (previous or {}).get("fingerprint")
    if old_fp == fingerprint:
        if not resume:
            return ResumePlan("fresh", note="--resume false: training from scratch")
        if ckpt and not _has_optimizer_state(Path(ckpt)):
            # a model-only checkpoint (full fine-tuning): no optimizer state to continue from
            return ResumePlan("fresh", note=f"{Path(ckpt).name} holds the model only (no optimizer state): "
                              "training restarts from step 0")  # fmt: skip
        return ResumePlan("resume", checkpoint=ckpt) if ckpt else ResumePlan("fresh")
    what = (
        f"{Path(ckpt).name} of a different training configuration"
        if ckpt
        else "a run of a different training configuration"
    )
    changes = config_changes((previous or {}).get("config"), config)
    if not overwrite:
        raise UserError(
            f"{_relative(output_dir)} holds {what} ({changes}): pass --overwrite to retrain from scratch, "
            "or another --output_dir"
        )
    return ResumePlan("fresh", note=f"--overwrite: retraining from scratch ({changes})")


def _has_optimizer_state(ckpt: Path) -> bool:
    return (ckpt / "optimizer.pt").exists() or any(ckpt.glob("global_step*")) or any(ckpt.glob("optimizer*"))


def _fingerprint_callback(record: dict[str, Any]) -> Any:
    """Writes the training configuration into every checkpoint, so a resume can check it."""
    from transformers import TrainerCallback

    class FingerprintCallback(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.is_world_process_zero:
                ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if ckpt.is_dir():
                    write_json(ckpt / FINGERPRINT_FILE, record)
            return control

    return FingerprintCallback()


# ------------------------------------------------------------------------------------------------ placement


def effective_batch(sft_args: Any) -> int:
    """Examples per optimizer step over every process."""
    return int(
        sft_args.per_device_train_batch_size
        * sft_args.gradient_accumulation_steps
        * max(1, sft_args.world_size)
    )


def distributed_kind(sft_args: Any) -> dict[str, Any]:
    """How this launch spreads the work: accelerate's distributed type, process count, DeepSpeed/FSDP."""
    state = sft_args.distributed_state
    kind = str(getattr(state.distributed_type, "value", state.distributed_type))
    return {
        "type": kind,
        "num_processes": int(state.num_processes),
        "deepspeed": sft_args.deepspeed_plugin is not None or kind == "DEEPSPEED",
        "fsdp": bool(sft_args.fsdp) or kind == "FSDP",
        "local_process_index": int(state.local_process_index),
    }


def device_map_for(
    dist: dict[str, Any], cuda: bool, requested: Any = None, *, quantized: bool = False
) -> Any:
    """The `device_map` to load the model with: never "auto" when distributed.

    TRL 1.16 sets None for DDP and DeepSpeed but leaves "auto" under FSDP, which spreads one replica over every
    GPU. DeepSpeed and FSDP place the model themselves (ZeRO-3 partitions it; FSDP's CPU-RAM-efficient
    loading needs a plain load): None, unless the model is quantized and cannot be moved after loading. Every
    other launch loads each process's whole model straight onto its local GPU; a single process uses that one
    GPU, not every visible one, unless `model_init_kwargs.device_map` asks otherwise.
    """
    if not cuda:
        return None
    local = {"": dist["local_process_index"]}
    if (dist["deepspeed"] or dist["fsdp"]) and not quantized:
        return None
    if dist["num_processes"] > 1 or dist["fsdp"] or dist["deepspeed"]:
        return local
    return requested if requested is not None else local


def count_parameters_sharded(model: Any) -> dict[str, int]:
    """`count_parameters`, with ZeRO-3 partitioned parameters counted at their full size (`ds_numel`)."""
    params = list(model.parameters())
    if not any(hasattr(p, "ds_numel") for p in params):
        return count_parameters(model)
    n = lambda p: int(getattr(p, "ds_numel", p.numel()))  # noqa: E731
    quantized = sum(type(m).__module__.startswith("bitsandbytes") for m in model.modules())
    return {"trainable": sum(n(p) for p in params if p.requires_grad), "total": sum(n(p) for p in params),
            "quantized_linear_layers": int(quantized)}  # fmt: skip


def _dtype_name(dtypes: set[Any]) -> str | None:
    if not dtypes:
        return None
    return "+".join(sorted(str(d).replace("torch.", "") for d in dtypes))


def precision_record(
    method: str, model: Any, sft_args: Any, dist: dict[str, Any], quant: Any
) -> dict[str, Any]:
    """What trains in which precision, measured on the model the trainer holds (before accelerate wraps it)."""
    trainable = {p.dtype for p in model.parameters() if p.requires_grad}
    frozen = {p.dtype for p in model.parameters() if not p.requires_grad}
    autocast = "bf16" if sft_args.bf16 else ("fp16" if sft_args.fp16 else None)
    rec: dict[str, Any] = {"autocast": autocast, "trainable_weights": _dtype_name(trainable)}
    if method == "full":
        rec["master_weights"] = (
            "fp32" if trainable == {__import__("torch").float32} else _dtype_name(trainable)
        )
        if dist["deepspeed"]:
            rec["strategy"] = (
                "DeepSpeed: fp32 weights loaded, bf16/fp16 working copy, fp32 master in the optimizer"
            )
        else:
            rec["strategy"] = "fp32 weights" + (f" with {autocast} autocast" if autocast else "")
    else:
        base = _dtype_name({d for d in frozen if d.is_floating_point})
        if quant is not None and getattr(quant, "load_in_4bit", False):
            compute = str(quant.bnb_4bit_compute_dtype).replace("torch.", "")
            base = f"{quant.bnb_4bit_quant_type} 4-bit (compute {compute})"
        rec["base_weights"] = base
        rec["adapter_weights"] = _dtype_name(trainable)
        rec["master_weights"] = "fp32" if rec["adapter_weights"] == "float32" else rec["adapter_weights"]
    return rec


def gpu_peak_memory_gib() -> list[float] | None:
    """torch.cuda.max_memory_allocated of every rank, in GiB, gathered (None without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return None
    mine = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    from accelerate.utils import gather_object

    return [float(x) for x in gather_object([mine])]


def host_peak_rss_mb() -> float:
    import resource

    # ru_maxrss is in KiB on Linux, in bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1 << 20) if sys.platform == "darwin" else rss / 1024, 1)


def check_qlora_backend(cuda: bool) -> None:
    """--method qlora needs bitsandbytes with 4-bit kernels for this device: a one-line error otherwise."""
    try:
        import bitsandbytes as bnb
    except Exception as e:  # noqa: BLE001 - ImportError or a broken native library
        raise UserError(
            f"--method qlora needs bitsandbytes ({type(e).__name__}: {str(e).splitlines()[0][:120]}): "
            "pip install 'letitcode[train]', or use --method lora"
        ) from e
    if not cuda:
        return
    import torch

    try:
        q, state = bnb.functional.quantize_4bit(
            torch.ones(64, 64, device="cuda", dtype=torch.float16), quant_type="nf4"
        )
        bnb.functional.dequantize_4bit(q, state)
    except Exception as e:  # noqa: BLE001 - no CUDA kernels in this build
        raise UserError(
            f"--method qlora: bitsandbytes {getattr(bnb, '__version__', '?')} has no working CUDA 4-bit support "
            f"here ({type(e).__name__}: {str(e).splitlines()[0][:120]}): install a bitsandbytes build for this "
            "CUDA version, or use --method lora"
        ) from e


# ------------------------------------------------------------------------------------------------ cards


def _template(name: str) -> Path:
    path = MODEL_CARDS / name
    if not path.exists():
        raise UserError(f"model card template {path} is missing (run from a LetItCode checkout)")
    return path


# Hub datasets that a local file of a detected layout is a copy of (the card names the Hub id, not the path).
_LAYOUT_DATASETS = {"leetcodedataset": "newfacade/LeetCodeDataset", "greengerong": "greengerong/leetcode",
                    "alpaca": "RayBernard/leetcode"}  # fmt: skip
# Licenses of the seed models, for when their card cannot be read (offline). Any other base: its card's.
_SEED_LICENSES = {"google/gemma-7b": "gemma", "meta-llama/Llama-3.1-8B-Instruct": "llama3.1",
                  "microsoft/Phi-3-mini-4k-instruct": "mit", "HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0",
                  "google/gemma-3-270m": "gemma"}  # fmt: skip


def known_dataset_id(
    layout: str | None, source: str | None, counts: dict[str, Any] | None = None
) -> str | None:
    """The Hub dataset a local file of this layout comes from: LeetCodeDataset's own columns, greengerong's, or
    RayBernard's Alpaca rows (only when their instructions have its title lines: Alpaca alone says nothing)."""
    if layout == "alpaca":
        counts = counts or {}
        if not counts.get("titled") or counts["titled"] < 0.5 * max(1, counts.get("rows", 0)):
            return None
    return _LAYOUT_DATASETS.get(layout or "")


def base_model_card_info(resolved: Any) -> dict[str, Any]:
    """The base model's license (from its card: a local README.md, else the Hub's, else the seed table) and
    revision, for the fine-tuned model's card."""
    license_ = None
    folder = Path(resolved.path)
    readme = folder / "README.md"
    card_path = readme if readme.exists() else None
    if card_path is None and resolved.hub_id:
        try:
            card_path = hub.download_file(resolved.hub_id, "README.md")
        except Exception:  # noqa: BLE001 - offline, gated or missing: the license stays unknown or the seed's
            card_path = None
    if card_path is not None:
        try:
            from huggingface_hub import ModelCard

            license_ = ModelCard.load(card_path).data.license
        except Exception:  # noqa: BLE001 - an unreadable card only means the license is unknown
            license_ = None
    if license_ is None and resolved.hub_id:
        license_ = _SEED_LICENSES.get(resolved.hub_id)
    return {"license": license_, "revision": resolved.revision}


def build_card(
    kind: str,
    manifest: dict[str, Any],
    *,
    repo_id: str | None,
    overfitting: dict[str, Any] | None = None,
    has_loss_plot: bool = True,
    base_info: dict[str, Any] | None = None,
) -> Any:
    """A `huggingface_hub.ModelCard` from `model_cards/{adapter,full_model}.md` for this run.

    Datasets are named by Hub id (a local copy of a known layout by the id it is a copy of, with its file
    version in the text), the base model by Hub id and revision; the license is the base model's.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    base_id = manifest["model"].get("hub_id")
    base_info = base_info or {}
    data = manifest["data"]
    method = manifest["method"]
    eval_results = []
    held = (overfitting or {}).get("heldout") or {}
    if held.get("pass@1") is not None:
        eval_results.append(
            EvalResult(
                task_type="text-generation",
                task_name="Code generation (LeetCode, execution-based)",
                dataset_type=held.get("dataset_id") or held.get("benchmark") or "leetcode",
                dataset_name=held.get("name") or held.get("benchmark") or "LeetCode",
                dataset_split=held.get("split") or "heldout",
                dataset_revision=held.get("revision"),
                metric_type="pass@1",
                metric_name="pass@1 (greedy)",
                metric_value=round(float(held["pass@1"]), 4),
            )
        )
    tags = ["letitcode", "code", "leetcode", "trl", "sft", method]
    if kind == "adapter":
        tags += ["peft", "lora" if method in ("lora", "qlora", "dora") else method]
    dataset_id = (
        data["source"]
        if data.get("from_hub")
        else (
            data.get("hub_id") or known_dataset_id(data.get("layout"), data.get("source"), data.get("counts"))
        )
    )
    extra: dict[str, Any] = {}
    if base_info.get("revision"):
        extra["base_model_revision"] = base_info["revision"]
    if not data.get("from_hub") and dataset_id:
        # a local copy: which file (name only) and its content hash, since no Hub revision identifies it
        extra["dataset_files"] = [{"dataset": dataset_id, "file": Path(str(data.get("source"))).name,
                                   "sha256_16": data.get("version")}]  # fmt: skip
    elif data.get("from_hub") and data.get("revision"):
        extra["dataset_revision"] = data["revision"]
    card_data = ModelCardData(
        base_model=base_id,
        library_name="peft" if kind == "adapter" else "transformers",
        license=base_info.get("license"),
        datasets=[dataset_id] if dataset_id else None,
        tags=sorted(set(tags)),
        pipeline_tag="text-generation",
        model_name=repo_id or Path(manifest["output_dir"]).name,
        eval_results=eval_results or None,
        base_model_relation="adapter" if kind == "adapter" else "finetune",
        **extra,
    )
    template = _template("adapter.md" if kind == "adapter" else "full_model.md")
    hp = manifest["hyperparameters"]
    local_base = manifest["model"].get("path") if not base_id else None
    return ModelCard.from_template(
        card_data,
        template_path=str(template),
        repo_id=repo_id or Path(manifest["output_dir"]).name,
        base_model_id=base_id,
        base_model_revision=base_info.get("revision"),
        base_model_local=Path(local_base).name if local_base else None,
        method=method,
        method_name={
            "lora": "LoRA",
            "qlora": "QLoRA (4-bit NF4 base, double quantization)",
            "dora": "DoRA",
            "ia3": "IA³",
            "full": "full fine-tuning",
        }[method],
        dataset={
            **data,
            "source": dataset_id if dataset_id and not data.get("from_hub") else data.get("source"),
            "local_file": None if data.get("from_hub") else Path(str(data.get("source"))).name,
        },
        hyperparameters=hp,
        peft=hp.get("peft"),
        quantization=hp.get("quantization"),
        parameters=manifest.get("parameters", {}),
        precision=manifest.get("precision"),
        losses=manifest.get("losses", {}),
        overfitting=overfitting,
        has_loss_plot=has_loss_plot,
        versions=manifest.get("library_versions", {}),
        merged_from_adapter=manifest.get("merged_from_adapter"),
        created=manifest.get("created"),
    )


# ------------------------------------------------------------------------------------------------ push


def _staging(src: Path, dest: Path, *, base_hub_id: str | None) -> None:
    """Copy what gets published; point an adapter at its base's Hub id instead of a local folder."""
    import fnmatch

    for p in src.iterdir():
        if any(fnmatch.fnmatch(p.name, pat.split("/")[0]) for pat in _PUSH_IGNORE):
            continue
        if p.is_dir():
            continue  # checkpoints, eval scratch, merged/: never part of the adapter repo
        shutil.copy2(p, dest / p.name)
    cfg_path = dest / "adapter_config.json"
    if cfg_path.exists() and base_hub_id:
        cfg = json.loads(cfg_path.read_text())
        cfg["base_model_name_or_path"] = (
            base_hub_id  # models.resolve maps the embedded model's id back offline
        )
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True))


def push_run(
    folder: Path, repo_id: str, card: Any, *, base_hub_id: str | None, private: bool, message: str
) -> str:
    with tempfile.TemporaryDirectory(prefix="letitcode-push-") as tmp:
        stage = Path(tmp)
        _staging(folder, stage, base_hub_id=base_hub_id)
        card.save(stage / "README.md")
        return hub.push_folder(repo_id, stage, commit_message=message, private=private)


# ------------------------------------------------------------------------------------------------ eval-after


def evaluate_after(
    output_dir: Path,
    model_dir: Path,
    data: SFTData,
    script_args: Any,
    losses: dict[str, Any],
    approach: str,
    dtype: str = "float32",
) -> dict[str, Any]:
    """pass@1 on a train subset and on held-out problems, with the evaluator, into overfitting.json.

    With training rows that carry tests (LeetCodeDataset layout) both sides come from the SFT data: the
    training problems, and the validation problems the split held out. Otherwise only the held-out side can be
    scored, on the (decontaminated) evaluation benchmark.
    """
    from letitcode.config import EvalConfig
    from letitcode.devices import adapter_quantization
    from letitcode.pipeline import run_eval

    eval_dir = output_dir / "eval"
    common = dict(
        model=str(model_dir),
        limit=script_args.eval_limit,
        max_new_tokens=script_args.eval_max_new_tokens,
        prompt_style=data.style,
        skip_overlong=True,  # a prompt past the model's context is skipped and listed, not the end of the run
        approach=f"sft-{approach}",
        dtype=dtype,
        device="auto",  # the GPU this process trained on (one per unit), else the CPU; QLoRA on its 4-bit base
        quantization="4bit" if adapter_quantization(model_dir) else "none",
    )
    sides: dict[str, dict[str, Any] | None] = {}
    if data.has_tests and data.train and data.validation:
        for side, rows in (("train", data.train), ("heldout", data.validation)):
            rows_file = write_rows(rows, eval_dir / f"{side}_rows.jsonl")
            res = run_eval(
                EvalConfig(
                    benchmark="leetcodedataset",
                    dataset=str(rows_file),
                    output_dir=str(eval_dir / side),
                    **common,
                )
            )
            sides[side] = {
                "pass@1": res.get("pass@1"),
                "n": res.get("n_problems", res.get("n")),
                "by_difficulty": {k: v.get("pass@1") for k, v in (res.get("by_difficulty") or {}).items()},
                "benchmark": "leetcodedataset",
                "source": f"{data.raw.source if data.raw.from_hub else _relative(data.raw.source)} "
                f"({side} split of the SFT data)",
                "dataset_id": data.raw.source if data.raw.from_hub else None,
                "revision": data.raw.revision,
                "split": "train" if side == "train" else "validation",
                "name": "LeetCodeDataset"
                + (" (held-out problems)" if side == "heldout" else " (training problems)"),
            }
        note = (
            "train and held-out problems both come from the SFT data; held-out problems were never trained on"
        )
    else:
        sides["train"] = None
        res = run_eval(
            EvalConfig(
                benchmark=script_args.eval_benchmark,
                dataset=script_args.eval_dataset,
                split=resolved_eval_split(script_args),
                revision=script_args.eval_revision,
                output_dir=str(eval_dir / "heldout"),
                **common,
            )
        )
        sides["heldout"] = {
            "pass@1": res.get("pass@1"),
            "n": res.get("n_problems", res.get("n")),
            "by_difficulty": {k: v.get("pass@1") for k, v in (res.get("by_difficulty") or {}).items()},
            "benchmark": script_args.eval_benchmark,
            "dataset_id": _relative(script_args.eval_dataset)
            if script_args.eval_dataset and os.path.isabs(script_args.eval_dataset)
            else script_args.eval_dataset,
            "revision": script_args.eval_revision,
            "split": resolved_eval_split(script_args),
            "name": script_args.eval_benchmark,
        }
        note = (
            "the SFT data has no tests, so train pass@1 cannot be measured; held-out = the evaluation benchmark, "
            "decontaminated against the training data"
        )
    train_p = (sides.get("train") or {}).get("pass@1")
    held_p = (sides.get("heldout") or {}).get("pass@1")
    out = {
        "train_pass@1": train_p,
        "heldout_pass@1": held_p,
        "gap": (train_p - held_p) if train_p is not None and held_p is not None else None,
        "train": sides.get("train"),
        "heldout": sides.get("heldout"),
        "final_train_loss": losses.get("final_train_loss"),
        "final_eval_loss": losses.get("final_eval_loss"),
        "note": note,
    }
    (output_dir / "overfitting.json").write_text(json.dumps(out, indent=2))
    return out


# ------------------------------------------------------------------------------------------------ the run


def _load_decontamination(script_args: Any) -> tuple[list[Any] | None, dict[str, Any]]:
    if not script_args.decontaminate:
        log.warning("decontamination is OFF: training problems may overlap the evaluation benchmark")
        return None, {"benchmark": script_args.eval_benchmark}
    from letitcode.data.benchmarks import load_benchmark

    bench = load_benchmark(
        script_args.eval_benchmark,
        dataset=script_args.eval_dataset,
        split=resolved_eval_split(script_args),
        revision=script_args.eval_revision,
    )
    return list(bench.problems), {"benchmark": bench.manifest(), "split": bench.split}


def _check_gpu_expectation(expected: float | None, hw: Hardware) -> str | None:
    # expected_gpu_memory_gb is in GB as cards are sold (10**9 bytes: an "80 GB" H100 has 79.2 GiB);
    # hw.gpu_memory_gb is GiB (total_memory / 2**30): compare bytes, not the two numbers
    if (
        expected is None
        or not hw.cuda
        or hw.gpu_memory_gb is None
        or hw.gpu_memory_gb * 2**30 >= expected * 1e9
    ):
        return None
    msg = (
        f"this recipe expects about {expected:g} GB ({expected * 1e9 / 2**30:.1f} GiB) of GPU memory per device; "
        f"this GPU has {hw.gpu_memory_gb:g} GiB"
    )
    log.warning(msg)
    print(f"warning: {msg}", file=sys.stderr)
    return msg


def train(
    script_args: Any, sft_args: Any, model_args: Any, *, callbacks: list[Any] | None = None
) -> dict[str, Any]:
    """Run one SFT job end to end; returns the manifest (also written to OUTPUT_DIR/manifest.json).

    `callbacks` are extra `transformers.TrainerCallback`s (the memory benchmark times steps with one).
    A rerun of a finished configuration trains zero steps; see `plan_resume`.
    """
    import torch
    from transformers import AutoTokenizer
    from trl import SFTTrainer, get_quantization_config

    method = script_args.method
    output_dir = Path(sft_args.output_dir)
    push = bool(sft_args.push_to_hub)
    sft_args.push_to_hub = (
        False  # LetItCode pushes itself, through letitcode.hub.publish, after the card is written
    )
    if push:
        if not sft_args.hub_model_id:
            raise UserError("--push_to_hub needs --hub_model_id ORG/NAME")
        hub.require_token("--push_to_hub")  # fail now, not after training
    if method == "qlora" and not model_args.load_in_4bit:
        raise UserError(
            "--method qlora loads the base in 4 bit: drop --load_in_4bit false, or use --method lora"
        )

    hw = Hardware.detect()
    if method == "qlora":
        check_qlora_backend(hw.cuda and not sft_args.use_cpu)
    gpu_warning = _check_gpu_expectation(script_args.expected_gpu_memory_gb, hw)
    cpu_memory_settings = None
    if not hw.cuda and script_args.cpu_memory_saving != "off":
        from letitcode import cpu_memory

        malloc = script_args.cpu_memory_saving == "on" or bool(sft_args.gradient_checkpointing)
        # before the model loads: its allocations follow the setting
        cpu_memory_settings = {"mode": script_args.cpu_memory_saving, **cpu_memory.apply(malloc=malloc)}

    revision = None if model_args.model_revision in (None, "", "main") else model_args.model_revision
    resolved = models.resolve(model_args.model_name_or_path, revision=revision)
    if resolved.is_adapter:
        raise UserError(
            f"--model {model_args.model_name_or_path!r} is an adapter; pass its base model (and merge first "
            "if you want to keep training it)"
        )
    tokenizer = AutoTokenizer.from_pretrained(resolved.path)
    # explicit > seed table > chat template (letitcode.prompts.resolve_style, as the evaluator resolves it)
    style = prompts.resolve_style(
        script_args.prompt_style,
        model=model_args.model_name_or_path,
        resolved=resolved,
        has_chat_template=bool(getattr(tokenizer, "chat_template", None)),
    ).style

    # the data first: an unreachable or malformed dataset fails before anything slower is loaded
    raw = load_rows(
        script_args.dataset_name, split=script_args.dataset_train_split, revision=script_args.dataset_revision
    )
    problems, deco_info = _load_decontamination(script_args)
    data = build_sft_data(
        script_args.dataset_name,
        raw=raw,
        revision=script_args.dataset_revision,
        split=script_args.dataset_train_split,
        column_map=script_args.column_map,
        completion_format=script_args.completion_format,  # type: ignore[arg-type]
        style=style,  # type: ignore[arg-type]
        val_fraction=script_args.val_fraction,
        split_seed=script_args.split_seed,
        decontaminate_against=problems,
        decontamination_info=deco_info,
        max_train_samples=script_args.max_train_samples,
        max_eval_samples=script_args.max_eval_samples,
    )
    train_ds, eval_ds = data.datasets()
    if style == "chat" and not prompts.supports_system_turn(tokenizer):  # Gemma: fold as evaluation does
        train_ds, eval_ds = (
            d.map(prompts.fit_example, fn_kwargs={"tokenizer": tokenizer}) if d is not None else d
            for d in (train_ds, eval_ds)
        )
    if train_ds is None:
        raise UserError("no training rows left after the split; lower --val_fraction")
    train_ds, dropped = drop_overlong_prompts(train_ds, tokenizer, sft_args.max_length)
    eval_ds, dropped_eval = drop_overlong_prompts(eval_ds, tokenizer, sft_args.max_length)
    data.stats["dropped_prompt_over_max_length"] = {"train": dropped, "validation": dropped_eval}
    if dropped or dropped_eval:
        print(
            f"note: dropped {dropped} training and {dropped_eval} validation examples whose prompt alone is "
            f"{sft_args.max_length}+ tokens (no room for the solution); raise --max_length to keep them",
            file=sys.stderr,
        )
    if len(train_ds) == 0:
        raise UserError(f"every training prompt is longer than --max_length {sft_args.max_length}: raise it")
    if eval_ds is not None and len(eval_ds) == 0:
        eval_ds = None
    eval_ds = _bound_validation(eval_ds, script_args, sft_args, data)
    print(
        f"data: {data.stats['rows']} rows, {data.stats['removed_by_decontamination']} removed by decontamination "
        f"against {_deco_label(script_args)}, "
        f"{data.stats['train']} train / {data.stats['validation']} validation ({data.preset or 'column_map'} layout, "
        f"{style} prompts, {script_args.completion_format})",
        file=sys.stderr,
    )

    from transformers import AutoConfig

    model_type = AutoConfig.from_pretrained(resolved.path).model_type
    peft_config = build_peft_config(method, model_args, model_type)
    quant = get_quantization_config(model_args)
    hp = hyperparameters(
        method, sft_args, peft_config, quant
    )  # before PEFT expands "all-linear" to module names
    load_dtype = model_args.dtype
    if method == "full" and load_dtype in ("bfloat16", "float16"):
        # fp32 master weights: bf16/fp16 only as autocast, never as the weights the optimizer updates
        print(
            f"note: full fine-tuning loads fp32 weights (not {load_dtype}) and trains them under "
            f"{'bf16' if sft_args.bf16 else 'fp16' if sft_args.fp16 else 'no'} autocast",
            file=sys.stderr,
        )
        load_dtype = "float32"
    dist = distributed_kind(sft_args)
    init_kwargs: dict[str, Any] = {"dtype": load_dtype}
    if model_args.attn_implementation:
        init_kwargs["attn_implementation"] = model_args.attn_implementation
    user_init = dict(sft_args.model_init_kwargs or {})
    device_map = device_map_for(
        dist, hw.cuda and not sft_args.use_cpu, user_init.pop("device_map", None), quantized=quant is not None
    )
    sft_args.model_init_kwargs = {**init_kwargs, **user_init, "device_map": device_map}

    config = training_config(method, sft_args, model_args, resolved, data, train_ds, load_dtype)
    fp = config_fingerprint(config)
    record = {"fingerprint": fp, "config": config}
    plan = plan_resume(
        output_dir, fp, config, resume=script_args.resume, overwrite=script_args.overwrite,
        explicit_checkpoint=sft_args.resume_from_checkpoint,
    )  # fmt: skip
    if plan.action == "done":
        assert plan.manifest is not None
        print(
            f"already trained: {_relative(output_dir)} holds this exact training configuration (fingerprint {fp}, "
            f"step {plan.manifest.get('global_step')}); nothing to train",
            file=sys.stderr,
        )
        return {**plan.manifest, "already_trained": True}
    from accelerate import PartialState

    state = PartialState()
    if plan.action == "fresh" and output_dir.is_dir():
        if state.is_main_process:
            removed = wipe_run(output_dir)
            if removed and plan.note:
                print(f"note: {plan.note}", file=sys.stderr)
        state.wait_for_everyone()
    if state.is_main_process:
        write_json(output_dir / FINGERPRINT_FILE, record)
    resume_from = plan.checkpoint
    if resume_from:
        print(f"resuming from {_relative(resume_from)} (same training configuration, {fp})", file=sys.stderr)

    trainer = SFTTrainer(
        model=resolved.path,
        args=sft_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        quantization_config=quant,
        callbacks=[_fingerprint_callback(record), *(callbacks or [])],
    )
    if quant is not None:
        # TRL casts QLoRA adapters to bf16 (the paper's choice); LetItCode keeps every adapter in fp32 so that
        # small updates are not rounded away (the comparison with LoRA/DoRA stays about the base's precision)
        for param in trainer.model.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()
    precision = precision_record(method, trainer.model, sft_args, dist, quant)
    kept = len(trainer.train_dataset)
    if kept == 0:
        raise UserError(
            f"every training example lost its whole completion to truncation at --max_length {sft_args.max_length} "
            "(the prompts are longer): raise --max_length"
        )
    if sft_args.packing:
        print(
            f"packing: {len(train_ds)} examples into {kept} rows of up to {sft_args.max_length} tokens",
            file=sys.stderr,
        )
        data.stats["packed_train_rows"] = kept
    else:
        if kept < len(train_ds):
            print(
                f"note: {len(train_ds) - kept} of {len(train_ds)} training examples had no completion tokens left "
                f"after truncation to {sft_args.max_length} tokens and were dropped",
                file=sys.stderr,
            )
        data.stats["train_examples_after_truncation"] = kept
    params = count_parameters_sharded(trainer.model)
    started = time.time()
    ckpt_state = _read_json(Path(resume_from) / "trainer_state.json") if resume_from else None
    if ckpt_state and ckpt_state.get("global_step", 0) >= ckpt_state.get("max_steps", math.inf) > 0:
        # killed between the last checkpoint and the final save: Trainer would train one step past max_steps
        from transformers.trainer_callback import TrainerState

        print(
            f"note: {Path(resume_from).name} already reached the last step: nothing left to train",
            file=sys.stderr,
        )
        trainer._load_from_checkpoint(resume_from)
        trainer.state = TrainerState.load_from_json(str(Path(resume_from) / "trainer_state.json"))
        train_metrics: dict[str, Any] = {"trained_steps": 0}
    else:
        train_metrics = dict(trainer.train(resume_from_checkpoint=resume_from).metrics)
    train_seconds = time.time() - started
    trainer.save_model(str(output_dir))
    main_process = trainer.is_world_process_zero()
    evaluated_last = any(
        "eval_loss" in e and e.get("step") == trainer.state.global_step for e in trainer.state.log_history
    )
    if eval_ds is not None and not evaluated_last:
        trainer.evaluate()  # the final validation loss, after the last step
    trainer.save_state()  # trainer_state.json: log_history holds train and eval loss per step
    gpu_peak = gpu_peak_memory_gib()  # every rank takes part in the gather

    if not main_process:
        return {}
    losses = plot_losses(trainer.state.log_history, output_dir / "loss.png")
    for k in ("final_train_loss", "final_eval_loss"):
        v = losses.get(k)
        if v is not None and not math.isfinite(v):
            raise UserError(f"{k} is {v}: training diverged; lower --learning_rate")
    manifest: dict[str, Any] = {
        "kind": "sft",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": [Path(sys.argv[0]).name, *(_relative(a) if os.path.isabs(a) else a for a in sys.argv[1:])],
        "output_dir": _relative(output_dir),
        "recipe": script_args.recipe,
        "fingerprint": fp,
        "method": method,
        "model": _portable_model(resolved.manifest()),
        "data": _portable_data(data.manifest()),
        "hyperparameters": hp,
        "effective_batch": effective_batch(sft_args),
        "precision": precision,
        "master_weights": precision["master_weights"],
        "autocast": precision["autocast"],
        "distributed": {**{k: v for k, v in dist.items() if k != "local_process_index"},
                        "device_map": device_map if not isinstance(device_map, dict) else "one device per process"},
        "parameters": {**params, "trainable_ratio": params["trainable"] / max(1, params["total"])},
        "seed": sft_args.seed,
        "resumed_from": Path(resume_from).name if resume_from else None,
        "global_step": trainer.state.global_step,
        "train_metrics": train_metrics,
        "train_seconds": round(train_seconds, 2),
        "losses": losses,
        "hardware": dataclasses.asdict(hw),
        "gpu_peak_memory_gib": gpu_peak,
        "host_peak_rss_mb": host_peak_rss_mb(),
        "gpu_memory_warning": gpu_warning,
        "cpu_memory_saving": cpu_memory_settings,
        "library_versions": library_versions(),
        "pushed": {},
    }  # fmt: skip
    write_json(output_dir / "manifest.json", manifest)

    base_path = resolved.path
    adapter = method in ADAPTER_METHODS
    del trainer
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

    merged_dir = None
    if script_args.merge:
        if adapter:
            merged_dir = merge_adapter(
                output_dir, base_path, output_dir / "merged", dtype=_merge_dtype(model_args)
            )
            manifest["merged_dir"] = _relative(merged_dir)
        else:
            print(
                "note: --merge does nothing for --method full (the model is already whole)", file=sys.stderr
            )

    overfitting = None
    if script_args.eval_after:
        overfitting = evaluate_after(
            output_dir, output_dir, data, script_args, losses, method, dtype=_merge_dtype(model_args)
        )
        manifest["overfitting"] = overfitting

    repo_id = sft_args.hub_model_id if push else None
    base_card = base_model_card_info(resolved)
    card = build_card(
        "adapter" if adapter else "full",
        manifest,
        repo_id=repo_id,
        overfitting=overfitting,
        base_info=base_card,
    )
    card.save(output_dir / "README.md")
    merged_card = None
    merged_from = repo_id or _relative(output_dir)
    if merged_dir is not None:
        merged_repo = (script_args.merged_hub_model_id or f"{sft_args.hub_model_id}-merged") if push else None
        merged_card = build_card(
            "full",
            {**manifest, "merged_from_adapter": merged_from},
            repo_id=merged_repo,
            overfitting=overfitting,
            has_loss_plot=False,
            base_info=base_card,
        )
        merged_card.save(merged_dir / "README.md")
        write_json(merged_dir / "manifest.json", {**manifest, "merged_from_adapter": merged_from})

    if push:
        base_id = resolved.hub_id
        manifest["pushed"]["model"] = push_run(
            output_dir,
            sft_args.hub_model_id,
            card,
            base_hub_id=base_id,
            private=bool(sft_args.hub_private_repo),
            message=f"LetItCode SFT ({method}) on {data.raw.source if data.raw.from_hub else Path(data.raw.source).name}",
        )
        if merged_dir is not None and merged_card is not None:
            merged_repo = script_args.merged_hub_model_id or f"{sft_args.hub_model_id}-merged"
            manifest["pushed"]["merged"] = push_run(
                merged_dir,
                merged_repo,
                merged_card,
                base_hub_id=None,
                private=bool(sft_args.hub_private_repo),
                message=f"LetItCode SFT ({method}) merged into {base_id}",
            )
    write_json(output_dir / "manifest.json", manifest)
    return manifest


def _deco_label(script_args: Any) -> str:
    if not script_args.decontaminate:
        return "(off)"
    split = resolved_eval_split(script_args)
    return script_args.eval_benchmark + (f" {split} split" if split else "")


def _bound_validation(eval_ds: Any, script_args: Any, sft_args: Any, data: SFTData) -> Any:
    """Keep every validation pass bounded: at most `eval_loss_max_rows` rows, an eval batch no larger than the
    training batch, no eval_on_start for runs too short to have a curve, and nothing to evaluate -> no eval."""
    from transformers.trainer_utils import IntervalStrategy

    if (
        eval_ds is not None
        and script_args.eval_loss_max_rows
        and len(eval_ds) > script_args.eval_loss_max_rows
    ):
        eval_ds = eval_ds.select(
            range(script_args.eval_loss_max_rows)
        )  # the split's first rows: deterministic
    data.stats["validation_loss_rows"] = len(eval_ds) if eval_ds is not None else 0
    if eval_ds is None:
        if sft_args.eval_strategy != "no":
            sft_args.eval_strategy = IntervalStrategy.NO  # val_fraction 0: nothing to evaluate on
        sft_args.do_eval = False
        sft_args.eval_on_start = False  # Trainer would evaluate on a missing dataset and crash
        return None
    sft_args.per_device_eval_batch_size = min(
        sft_args.per_device_eval_batch_size, max(1, sft_args.per_device_train_batch_size)
    )
    if 0 < sft_args.max_steps < 10:
        # a baseline point before a curve of a few steps costs a whole validation pass and shows nothing
        sft_args.eval_on_start = False
        if sft_args.eval_strategy in ("steps", "epoch") and (
            sft_args.eval_strategy == "epoch" or 0 < sft_args.eval_steps < 1
        ):
            # a ratio of a few steps rounds to "every step": one validation pass, after the last step, instead
            sft_args.eval_strategy = IntervalStrategy.NO
    return eval_ds


def resolved_eval_split(script_args: Any) -> str | None:
    """The split of the evaluation benchmark that is evaluated, and so decontaminated against.

    The embedded `leetcode` problems come in a fixed train/test half (by slug): fine-tuned models are evaluated
    on `test`, so only that half is removed from the training data (against all 1,405 problems about half of
    RayBernard/leetcode would go).
    """
    if script_args.eval_split:
        return script_args.eval_split
    return "test" if script_args.eval_benchmark == "leetcode" else None


def _portable_model(m: dict[str, Any]) -> dict[str, Any]:
    """A model manifest without machine paths: local folders by relative path or name."""
    out = dict(m)
    for k in ("path", "spec"):
        if isinstance(out.get(k), str) and os.path.isabs(out[k]):
            out[k] = _relative(out[k])
    if isinstance(out.get("base"), dict):
        out["base"] = _portable_model(out["base"])
    return out


def _portable_data(d: dict[str, Any]) -> dict[str, Any]:
    out = dict(d)
    if not out.get("from_hub") and isinstance(out.get("source"), str):
        out["source"] = _relative(out["source"])
        hub_id = known_dataset_id(out.get("layout"), out.get("source"))
        if hub_id:
            out["hub_id"] = hub_id  # what the local file is a copy of
    deco = out.get("decontamination")
    if isinstance(deco, dict) and isinstance(deco.get("benchmark"), dict):
        b = dict(deco["benchmark"])
        for k in ("source", "dataset", "path"):
            if isinstance(b.get(k), str) and os.path.isabs(b[k]):
                b[k] = _relative(b[k])
        out["decontamination"] = {**deco, "benchmark": b}
    return out


def _merge_dtype(model_args: Any) -> str:
    return model_args.dtype if model_args.dtype in ("float32", "bfloat16", "float16") else "float32"
