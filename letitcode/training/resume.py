"""Rerun = resume: the training configuration's fingerprint, the record written beside every checkpoint, and
the plan of a (re)run in an output folder (train from scratch, resume a checkpoint, or nothing: already done).

A checkpoint is resumed only when it was written by the same training configuration; another configuration's
outputs are an error unless `--overwrite`, which deletes exactly the files a run writes.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from letitcode.errors import UserError
from letitcode.records import write_json
from letitcode.training.config import effective_batch, relative_path
from letitcode.training.data import SFTData

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
        "data": {"source": relative_path(data.raw.source) if not data.raw.from_hub else data.raw.source,
                 "revision": data.raw.revision, "version": data.raw.version, "split": data.raw.split,
                 "train_examples": len(train_ds), "train_examples_sha256": examples.hexdigest()[:16]},
        "model_args": model,
        "training_args": sft,
    })  # fmt: skip


def config_fingerprint(config: dict[str, Any]) -> str:
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


def read_json(path: Path) -> dict[str, Any] | None:
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
    manifest = read_json(output_dir / "manifest.json")
    if manifest and manifest.get("fingerprint") == fingerprint and _final_weights_saved(output_dir):
        return ResumePlan("done", manifest=manifest)
    if explicit_checkpoint:
        return ResumePlan("resume", checkpoint=explicit_checkpoint)
    ckpt = last_checkpoint(output_dir)
    previous = None
    if ckpt:
        previous = read_json(Path(ckpt) / FINGERPRINT_FILE)
    elif manifest is not None or (output_dir / FINGERPRINT_FILE).exists():
        previous = manifest if manifest is not None else read_json(output_dir / FINGERPRINT_FILE)
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
            f"{relative_path(output_dir)} holds {what} ({changes}): pass --overwrite to retrain from scratch, "
            "or another --output_dir"
        )
    return ResumePlan("fresh", note=f"--overwrite: retraining from scratch ({changes})")


def _has_optimizer_state(ckpt: Path) -> bool:
    return (ckpt / "optimizer.pt").exists() or any(ckpt.glob("global_step*")) or any(ckpt.glob("optimizer*"))


def fingerprint_callback(record: dict[str, Any]) -> Any:
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


def last_checkpoint(output_dir: str | Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None


def reached_last_step(checkpoint: str | None) -> bool:
    """The checkpoint is of the last step (killed between it and the final save): nothing is left to train."""
    state = read_json(Path(checkpoint) / "trainer_state.json") if checkpoint else None
    return bool(state and state.get("global_step", 0) >= state.get("max_steps", math.inf) > 0)
