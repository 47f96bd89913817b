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
from importlib import metadata
from pathlib import Path
from typing import Any

from trl import ModelConfig

from letitcode import hub, models, prompts
from letitcode.errors import UserError
from letitcode.sft_data import DEFAULT_DATASET, SFTData, build_sft_data, load_rows, write_rows

log = logging.getLogger(__name__)

METHODS = ("lora", "qlora", "dora", "full", "ia3")
ADAPTER_METHODS = ("lora", "qlora", "dora", "ia3")
MODEL_CARDS = Path(__file__).resolve().parents[1] / "model_cards"
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
_LIBRARIES = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "bitsandbytes",
    "huggingface_hub",
)


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
    eval_split: str | None = field(default=None, metadata={"help": "Split of the evaluation benchmark."})
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
            "help": "Resume from the last checkpoint in output_dir when there is one (rerun = resume)."
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
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 4,
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
        d.update(learning_rate=2e-5)
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


def parse_args(argv: list[str] | None = None, *, hardware: Hardware | None = None) -> tuple[Any, Any, Any]:
    """(script_args, sft_config, model_config) with defaults < method defaults < YAML < command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    config = _read_yaml(_peek(argv, "--config")) if _peek(argv, "--config") else {}
    method = _peek(argv, "--method") or config.get("method") or "lora"
    model = (
        _peek(argv, "--model", "--model_name_or_path", "--model-name-or-path")
        or config.get("model_name_or_path")
        or "embedded"
    )
    # TRL 1.16's own SFTConfig default (gradient_checkpointing=True) trips transformers 5's rename warning on
    # every run; the flag still works (it mirrors activation_checkpointing), so the warning is only noise.
    warnings.filterwarnings(
        "ignore", message=r"`gradient_checkpointing` is deprecated", category=FutureWarning
    )
    parser = make_parser()
    defaults = method_defaults(str(method), hardware or Hardware.detect())
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
    return script_args, sft_args, model_args


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


def library_versions() -> dict[str, str | None]:
    import platform

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


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


# ------------------------------------------------------------------------------------------------ cards


def _template(name: str) -> Path:
    path = MODEL_CARDS / name
    if not path.exists():
        raise UserError(f"model card template {path} is missing (run from a LetItCode checkout)")
    return path


def build_card(
    kind: str,
    manifest: dict[str, Any],
    *,
    repo_id: str | None,
    overfitting: dict[str, Any] | None = None,
    has_loss_plot: bool = True,
) -> Any:
    """A `huggingface_hub.ModelCard` from `model_cards/{adapter,full_model}.md` for this run."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    base_id = manifest["model"].get("hub_id")
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
    card_data = ModelCardData(
        base_model=base_id,
        library_name="peft" if kind == "adapter" else "transformers",
        datasets=[data["source"]] if data.get("from_hub") else None,
        tags=sorted(set(tags)),
        pipeline_tag="text-generation",
        model_name=repo_id or Path(manifest["output_dir"]).name,
        eval_results=eval_results or None,
        base_model_relation="adapter" if kind == "adapter" else "finetune",
    )
    template = _template("adapter.md" if kind == "adapter" else "full_model.md")
    hp = manifest["hyperparameters"]
    return ModelCard.from_template(
        card_data,
        template_path=str(template),
        repo_id=repo_id or Path(manifest["output_dir"]).name,
        base_model_id=base_id,
        base_model_local=manifest["model"].get("path") if not base_id else None,
        method=method,
        method_name={
            "lora": "LoRA",
            "qlora": "QLoRA (4-bit NF4 base, double quantization)",
            "dora": "DoRA",
            "ia3": "IA³",
            "full": "full fine-tuning",
        }[method],
        dataset=data,
        hyperparameters=hp,
        peft=hp.get("peft"),
        quantization=hp.get("quantization"),
        parameters=manifest.get("parameters", {}),
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
    from letitcode.pipeline import EvalConfig, run_eval

    eval_dir = output_dir / "eval"
    common = dict(
        model=str(model_dir),
        limit=script_args.eval_limit,
        max_new_tokens=script_args.eval_max_new_tokens,
        prompt_style=data.style,
        skip_overlong=True,  # a prompt past the model's context is skipped and listed, not the end of the run
        approach=f"sft-{approach}",
        dtype=dtype,
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
                "source": f"{data.raw.source} ({side} split of the SFT data)",
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
                split=script_args.eval_split,
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
            "dataset_id": script_args.eval_dataset,
            "revision": script_args.eval_revision,
            "split": script_args.eval_split,
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
    from letitcode.sources import load_benchmark

    bench = load_benchmark(
        script_args.eval_benchmark,
        dataset=script_args.eval_dataset,
        split=script_args.eval_split,
        revision=script_args.eval_revision,
    )
    return list(bench.problems), {"benchmark": bench.manifest()}


def _check_gpu_expectation(expected: float | None, hw: Hardware) -> str | None:
    if expected is None or not hw.cuda or hw.gpu_memory_gb is None or hw.gpu_memory_gb >= expected:
        return None
    msg = f"this recipe expects about {expected:g} GB of GPU memory per device; this GPU has {hw.gpu_memory_gb:g} GB"
    log.warning(msg)
    print(f"warning: {msg}", file=sys.stderr)
    return msg


def train(
    script_args: Any, sft_args: Any, model_args: Any, *, callbacks: list[Any] | None = None
) -> dict[str, Any]:
    """Run one SFT job end to end; returns the manifest (also written to OUTPUT_DIR/manifest.json).

    `callbacks` are extra `transformers.TrainerCallback`s (the memory benchmark times steps with one).
    """
    import torch
    from transformers import AutoTokenizer
    from trl import SFTTrainer, get_quantization_config

    method = script_args.method
    output_dir = Path(sft_args.output_dir)
    push = bool(sft_args.push_to_hub)
    sft_args.push_to_hub = False  # LetItCode pushes itself, through letitcode.hub, after the card is written
    if push:
        if not sft_args.hub_model_id:
            raise UserError("--push_to_hub needs --hub_model_id ORG/NAME")
        hub.require_token("--push_to_hub")  # fail now, not after training
    if method == "qlora" and not model_args.load_in_4bit:
        raise UserError(
            "--method qlora loads the base in 4 bit: drop --load_in_4bit false, or use --method lora"
        )
    if method == "qlora" and not torch.cuda.is_available():
        import bitsandbytes  # noqa: F401  (fails here, with its own message, where 4-bit cannot run)

    hw = Hardware.detect()
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
    if eval_ds is None and sft_args.eval_strategy != "no":
        sft_args.eval_strategy = "no"  # val_fraction 0: nothing to evaluate on
        sft_args.do_eval = False
    print(
        f"data: {data.stats['rows']} rows, {data.stats['removed_by_decontamination']} removed by decontamination "
        f"against {script_args.eval_benchmark if script_args.decontaminate else '(off)'}, "
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
    init_kwargs: dict[str, Any] = {"dtype": model_args.dtype}
    if model_args.attn_implementation:
        init_kwargs["attn_implementation"] = model_args.attn_implementation
    sft_args.model_init_kwargs = {**init_kwargs, **(sft_args.model_init_kwargs or {})}

    resume_from = sft_args.resume_from_checkpoint
    if resume_from is None and script_args.resume:
        resume_from = last_checkpoint(output_dir)
    if resume_from:
        print(f"resuming from {resume_from}", file=sys.stderr)

    trainer = SFTTrainer(
        model=resolved.path,
        args=sft_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        quantization_config=quant,
        callbacks=callbacks,
    )
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
    params = count_parameters(trainer.model)
    started = time.time()
    result = trainer.train(resume_from_checkpoint=resume_from)
    train_seconds = time.time() - started
    trainer.save_model(str(output_dir))
    main_process = trainer.is_world_process_zero()
    evaluated_last = any(
        "eval_loss" in e and e.get("step") == trainer.state.global_step for e in trainer.state.log_history
    )
    if eval_ds is not None and not evaluated_last:
        trainer.evaluate()  # the final validation loss, after the last step
    trainer.save_state()  # trainer_state.json: log_history holds train and eval loss per step

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
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "output_dir": str(output_dir),
        "method": method,
        "model": resolved.manifest(),
        "data": data.manifest(),
        "hyperparameters": hp,
        "parameters": {**params, "trainable_ratio": params["trainable"] / max(1, params["total"])},
        "seed": sft_args.seed,
        "resumed_from": Path(resume_from).name if resume_from else None,
        "global_step": trainer.state.global_step,
        "train_metrics": dict(result.metrics),
        "train_seconds": round(train_seconds, 2),
        "losses": losses,
        "hardware": dataclasses.asdict(hw),
        "gpu_memory_warning": gpu_warning,
        "cpu_memory_saving": cpu_memory_settings,
        "library_versions": library_versions(),
        "pushed": {},
    }
    _write_json(output_dir / "manifest.json", manifest)

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
            manifest["merged_dir"] = str(merged_dir)
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
    card = build_card("adapter" if adapter else "full", manifest, repo_id=repo_id, overfitting=overfitting)
    card.save(output_dir / "README.md")
    merged_card = None
    if merged_dir is not None:
        merged_repo = (script_args.merged_hub_model_id or f"{sft_args.hub_model_id}-merged") if push else None
        merged_card = build_card(
            "full",
            {**manifest, "merged_from_adapter": repo_id or str(output_dir)},
            repo_id=merged_repo,
            overfitting=overfitting,
            has_loss_plot=False,
        )
        merged_card.save(merged_dir / "README.md")
        _write_json(
            merged_dir / "manifest.json", {**manifest, "merged_from_adapter": repo_id or str(output_dir)}
        )

    if push:
        base_id = resolved.hub_id
        manifest["pushed"]["model"] = push_run(
            output_dir,
            sft_args.hub_model_id,
            card,
            base_hub_id=base_id,
            private=bool(sft_args.hub_private_repo),
            message=f"LetItCode SFT ({method}) on {data.raw.source}",
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
    _write_json(output_dir / "manifest.json", manifest)
    return manifest


def _merge_dtype(model_args: Any) -> str:
    return model_args.dtype if model_args.dtype in ("float32", "bfloat16", "float16") else "float32"


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)
