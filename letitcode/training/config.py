"""SFT configuration: the argument classes, the methods, per-method defaults, recipes and `--dry_run`'s summary.

`sft/train.py` is a thin wrapper around `parse_args` + `letitcode.training.trainer.train`. Configuration goes
through TRL's own `TrlParser` over (`SFTScriptArguments`, `trl.SFTConfig`, `SFTModelConfig`), so precedence is

    generic defaults < per-method defaults (`method_defaults`) < YAML recipe (`--config`) < command line.

TRL 1.16's `SFTConfig` defaults (bf16=True, gradient checkpointing on, max_length=1024, lr 2e-5) suit a GPU
and full fine-tuning; `method_defaults` sets every one of them deliberately for the method and the hardware.

This module imports no torch, transformers, TRL or PEFT at module level, so the study and the CLI can read
`METHODS` and the argument classes cheaply. `SFTModelConfig` extends TRL's `ModelConfig` (alignment-handbook's
way: extend, do not re-declare), so it is built on first access (`config.SFTModelConfig`, the module's
`__getattr__`): the one place this module imports TRL.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from letitcode import templates
from letitcode.errors import UserError
from letitcode.training.data import DEFAULT_DATASET

log = logging.getLogger(__name__)

METHODS = ("lora", "qlora", "dora", "full", "ia3")
ADAPTER_METHODS = ("lora", "qlora", "dora", "ia3")
LORA_METHODS = ("lora", "qlora", "dora")
REPO = Path(__file__).resolve().parents[2]
# A checkout names recipes by the path users edit (sft/recipes/, a link); an installed package by its data.
RECIPES = REPO / "sft" / "recipes" if (REPO / "sft" / "recipes").is_dir() else templates.RECIPES


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


_MODEL_NAME_HELP = (
    "'embedded' (SmolLM2-135M-Instruct, offline), a Hub id ORG/NAME[@REVISION], or a local folder."
)


@functools.cache
def _sft_model_config() -> type:
    from trl import ModelConfig

    @dataclass
    class SFTModelConfig(ModelConfig):
        """TRL's ModelConfig with `--model` as an alias and LetItCode's model specs (`embedded`, ORG/NAME@REV,
        folder)."""

        model_name_or_path: str | None = field(
            default="embedded", metadata={"help": _MODEL_NAME_HELP, "aliases": ["--model"]}
        )

    SFTModelConfig.__module__ = __name__
    SFTModelConfig.__qualname__ = "SFTModelConfig"
    return SFTModelConfig


def __getattr__(name: str) -> Any:
    if name == "SFTModelConfig":  # built on first use: it extends TRL's ModelConfig
        return _sft_model_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Hardware:
    """The device this process trains on, as the per-method defaults need it."""

    cuda: bool = field(metadata={"help": "A CUDA GPU is available."})
    bf16: bool = field(metadata={"help": "That GPU supports bf16."})
    gpu_memory_gb: float | None = field(default=None, metadata={"help": "Its total memory in GiB."})

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

    return TrlParser((SFTScriptArguments, SFTConfig, _sft_model_config()))


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


def relative_path(path: str | Path) -> str:
    """A path for manifests and cards: relative to the checkout or the working directory, else its name."""
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    # not resolve(): sft/recipes/ links into letitcode/templates/, and is the name users know
    p = Path(os.path.abspath(p))
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
        print(f"recipe: {relative_path(found)} (--recipe none for generic defaults)", file=sys.stderr)
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
    script_args.recipe = relative_path(config_path) if config_path else "none"
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
        "target_modules": model_args.lora_target_modules if method in LORA_METHODS else None,
        "lora_r": model_args.lora_r if method in LORA_METHODS else None,
        "expected_gpu_memory_gb": script_args.expected_gpu_memory_gb,
        "eval": {"split": resolved_eval_split(script_args), "benchmark": script_args.eval_benchmark},
    }


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


def check_gpu_expectation(expected: float | None, hw: Hardware) -> str | None:
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


def resolved_eval_split(script_args: Any) -> str | None:
    """The split of the evaluation benchmark that is evaluated, and so decontaminated against.

    The embedded `leetcode` problems come in a fixed train/test half (by slug): fine-tuned models are evaluated
    on `test`, so only that half is removed from the training data (against all 1,405 problems about half of
    RayBernard/leetcode would go).
    """
    if script_args.eval_split:
        return script_args.eval_split
    return "test" if script_args.eval_benchmark == "leetcode" else None
