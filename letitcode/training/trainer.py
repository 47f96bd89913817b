"""Supervised fine-tuning with TRL's SFTTrainer: `train()` runs one job end to end, in the shape of TRL's
`trl/scripts/sft.py` (a short main flow calling small steps).

`sft/train.py` (through `letitcode.commands.sft`) is `config.parse_args` + `train`. The steps: check the options
that must fail before anything loads; resolve the base model, its tokenizer and the prompt style; build the SFT
data (decontaminated, split by problem, bounded validation); set up PEFT, quantization, precision and placement
(`peft`); plan the (re)run from the configuration's fingerprint (`resume`); train; write the manifest, loss plot
and model card, merge, evaluate and push (`artifacts`, `eval_after`).
"""

from __future__ import annotations

import dataclasses
import gc
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from letitcode import cpu_memory, models, prompts
from letitcode.errors import UserError
from letitcode.hub import publish as hub
from letitcode.records import library_versions, write_json
from letitcode.training.artifacts import (
    base_model_card_info,
    build_card,
    check_finite,
    command_line,
    created_now,
    gpu_peak_memory_gib,
    host_peak_rss_mb,
    hyperparameters,
    plot_losses,
    portable_data,
    portable_model,
    push_run,
)
from letitcode.training.config import (
    ADAPTER_METHODS,
    Hardware,
    check_gpu_expectation,
    distributed_kind,
    effective_batch,
    relative_path,
)
from letitcode.training.data import SFTData
from letitcode.training.eval_after import evaluate_after
from letitcode.training.peft import (
    adapters_to_fp32,
    build_peft_config,
    check_qlora_backend,
    count_parameters_sharded,
    load_dtype,
    merge_adapter,
    merge_dtype,
    model_init_kwargs,
    precision_record,
)
from letitcode.training.prepare import sft_datasets
from letitcode.training.resume import (
    FINGERPRINT_FILE,
    ResumePlan,
    config_fingerprint,
    fingerprint_callback,
    plan_resume,
    reached_last_step,
    training_config,
    wipe_run,
)


@dataclass
class ModelSetup:
    """How the base model is loaded and what trains (fixed before the trainer exists)."""

    peft_config: Any
    quant: Any
    hyperparameters: dict[str, Any]
    load_dtype: str
    dist: dict[str, Any]
    device_map: Any


def train(
    script_args: Any, sft_args: Any, model_args: Any, *, callbacks: list[Any] | None = None
) -> dict[str, Any]:
    """Run one SFT job end to end; returns the manifest (also written to OUTPUT_DIR/manifest.json).

    `callbacks` are extra `transformers.TrainerCallback`s (the memory benchmark times steps with one).
    A rerun of a finished configuration trains zero steps; see `resume.plan_resume`.
    """
    from trl import SFTTrainer

    method = script_args.method
    output_dir = Path(sft_args.output_dir)
    push = _check_options(script_args, sft_args, model_args)
    hw = Hardware.detect()
    if method == "qlora":
        check_qlora_backend(hw.cuda and not sft_args.use_cpu)
    gpu_warning = check_gpu_expectation(script_args.expected_gpu_memory_gb, hw)
    cpu_memory_settings = _cpu_memory_saving(script_args, sft_args, hw)

    resolved, tokenizer, style = _base_model(script_args, model_args)
    # the data first: an unreachable or malformed dataset fails before anything slower is loaded
    data, train_ds, eval_ds = sft_datasets(script_args, sft_args, tokenizer, style)
    setup = _model_setup(method, sft_args, model_args, resolved, hw)

    config = training_config(method, sft_args, model_args, resolved, data, train_ds, setup.load_dtype)
    record = {"fingerprint": config_fingerprint(config), "config": config}
    plan = plan_resume(
        output_dir, record["fingerprint"], config, resume=script_args.resume, overwrite=script_args.overwrite,
        explicit_checkpoint=sft_args.resume_from_checkpoint,
    )  # fmt: skip
    if plan.action == "done":
        return _already_trained(output_dir, record["fingerprint"], plan)
    _prepare_output_dir(output_dir, record, plan)

    trainer = SFTTrainer(
        model=resolved.path,
        args=sft_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=setup.peft_config,
        quantization_config=setup.quant,
        callbacks=[fingerprint_callback(record), *(callbacks or [])],
    )
    if setup.quant is not None:
        adapters_to_fp32(trainer.model)
    precision = precision_record(method, trainer.model, sft_args, setup.dist, setup.quant)
    _count_kept_rows(trainer, train_ds, sft_args, data)
    params = count_parameters_sharded(trainer.model)
    started = time.time()
    train_metrics = _train_or_skip(trainer, plan.checkpoint)
    train_seconds = time.time() - started
    _save(trainer, output_dir, eval_ds)
    gpu_peak = gpu_peak_memory_gib()  # every rank takes part in the gather
    if not trainer.is_world_process_zero():
        return {}

    losses = plot_losses(trainer.state.log_history, output_dir / "loss.png")
    check_finite(losses)
    measured = {
        "parameters": {**params, "trainable_ratio": params["trainable"] / max(1, params["total"])},
        "seed": sft_args.seed,
        "resumed_from": Path(plan.checkpoint).name if plan.checkpoint else None,
        "global_step": trainer.state.global_step,
        "train_metrics": train_metrics,
        "train_seconds": round(train_seconds, 2),
        "losses": losses,
        "hardware": dataclasses.asdict(hw),
        "gpu_peak_memory_gib": gpu_peak,
        "host_peak_rss_mb": host_peak_rss_mb(),
        "gpu_memory_warning": gpu_warning,
        "cpu_memory_saving": cpu_memory_settings,
    }
    manifest = _manifest(
        script_args, sft_args, record["fingerprint"], resolved, data, setup, precision, measured
    )
    write_json(output_dir / "manifest.json", manifest)
    del trainer
    _free_memory()
    return _finish(manifest, script_args, sft_args, model_args, resolved, data, push=push)


# ------------------------------------------------------------------------------------------------ before loading


def _check_options(script_args: Any, sft_args: Any, model_args: Any) -> bool:
    """Options that must fail before anything loads. Returns whether to push (LetItCode pushes itself)."""
    push = bool(sft_args.push_to_hub)
    sft_args.push_to_hub = (
        False  # LetItCode pushes itself, through letitcode.hub.publish, after the card is written
    )
    if push:
        if not sft_args.hub_model_id:
            raise UserError("--push_to_hub needs --hub_model_id ORG/NAME")
        hub.require_token("--push_to_hub")  # fail now, not after training
    if script_args.method == "qlora" and not model_args.load_in_4bit:
        raise UserError(
            "--method qlora loads the base in 4 bit: drop --load_in_4bit false, or use --method lora"
        )
    return push


def _cpu_memory_saving(script_args: Any, sft_args: Any, hw: Hardware) -> dict[str, Any] | None:
    if hw.cuda or script_args.cpu_memory_saving == "off":
        return None

    malloc = script_args.cpu_memory_saving == "on" or bool(sft_args.gradient_checkpointing)
    # before the model loads: its allocations follow the setting
    return {"mode": script_args.cpu_memory_saving, **cpu_memory.apply(malloc=malloc)}


def _base_model(script_args: Any, model_args: Any) -> tuple[Any, Any, str]:
    """The resolved base model, its tokenizer and the prompt style."""
    from transformers import AutoTokenizer

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
    return resolved, tokenizer, style


# ------------------------------------------------------------------------------------------------ model


def _model_setup(method: str, sft_args: Any, model_args: Any, resolved: Any, hw: Hardware) -> ModelSetup:
    """PEFT and quantization configs, load dtype and placement; sets `sft_args.model_init_kwargs`."""
    from transformers import AutoConfig
    from trl import get_quantization_config

    model_type = AutoConfig.from_pretrained(resolved.path).model_type
    peft_config = build_peft_config(method, model_args, model_type)
    quant = get_quantization_config(model_args)
    # before PEFT expands "all-linear" to module names
    hp = hyperparameters(method, sft_args, peft_config, quant)
    dtype = load_dtype(method, model_args, sft_args)
    dist = distributed_kind(sft_args)
    sft_args.model_init_kwargs = model_init_kwargs(
        model_args, sft_args, dist, hw.cuda and not sft_args.use_cpu, dtype, quantized=quant is not None
    )
    return ModelSetup(peft_config, quant, hp, dtype, dist, sft_args.model_init_kwargs["device_map"])


# ------------------------------------------------------------------------------------------------ the run


def _already_trained(output_dir: Path, fingerprint: str, plan: ResumePlan) -> dict[str, Any]:
    assert plan.manifest is not None
    print(
        f"already trained: {relative_path(output_dir)} holds this exact training configuration (fingerprint "
        f"{fingerprint}, step {plan.manifest.get('global_step')}); nothing to train",
        file=sys.stderr,
    )
    return {**plan.manifest, "already_trained": True}


def _prepare_output_dir(output_dir: Path, record: dict[str, Any], plan: ResumePlan) -> None:
    """Clear a previous run when training starts fresh, and record this configuration's fingerprint."""
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
    if plan.checkpoint:
        print(
            f"resuming from {relative_path(plan.checkpoint)} (same training configuration, "
            f"{record['fingerprint']})",
            file=sys.stderr,
        )


def _count_kept_rows(trainer: Any, train_ds: Any, sft_args: Any, data: SFTData) -> None:
    """The training rows SFTTrainer kept after truncation (or packing), into the data stats."""
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
        return
    if kept < len(train_ds):
        print(
            f"note: {len(train_ds) - kept} of {len(train_ds)} training examples had no completion tokens left "
            f"after truncation to {sft_args.max_length} tokens and were dropped",
            file=sys.stderr,
        )
    data.stats["train_examples_after_truncation"] = kept


def _train_or_skip(trainer: Any, resume_from: str | None) -> dict[str, Any]:
    if not reached_last_step(resume_from):
        return dict(trainer.train(resume_from_checkpoint=resume_from).metrics)
    # killed between the last checkpoint and the final save: Trainer would train one step past max_steps
    from transformers.trainer_callback import TrainerState

    assert resume_from is not None
    print(
        f"note: {Path(resume_from).name} already reached the last step: nothing left to train",
        file=sys.stderr,
    )
    trainer._load_from_checkpoint(resume_from)
    trainer.state = TrainerState.load_from_json(str(Path(resume_from) / "trainer_state.json"))
    return {"trained_steps": 0}


def _save(trainer: Any, output_dir: Path, eval_ds: Any) -> None:
    """The final weights, the final validation loss (unless the last step has one) and trainer_state.json."""
    trainer.save_model(str(output_dir))
    evaluated_last = any(
        "eval_loss" in e and e.get("step") == trainer.state.global_step for e in trainer.state.log_history
    )
    if eval_ds is not None and not evaluated_last:
        trainer.evaluate()  # the final validation loss, after the last step
    trainer.save_state()  # trainer_state.json: log_history holds train and eval loss per step


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------ after training


def _manifest(
    script_args: Any,
    sft_args: Any,
    fingerprint: str,
    resolved: Any,
    data: SFTData,
    setup: ModelSetup,
    precision: dict[str, Any],
    measured: dict[str, Any],
) -> dict[str, Any]:
    device_map = setup.device_map
    return {
        "kind": "sft",
        "created": created_now(),
        "command": command_line(),
        "output_dir": relative_path(sft_args.output_dir),
        "recipe": script_args.recipe,
        "fingerprint": fingerprint,
        "method": script_args.method,
        "model": portable_model(resolved.manifest()),
        "data": portable_data(data.manifest()),
        "hyperparameters": setup.hyperparameters,
        "effective_batch": effective_batch(sft_args),
        "precision": precision,
        "master_weights": precision["master_weights"],
        "autocast": precision["autocast"],
        "distributed": {**{k: v for k, v in setup.dist.items() if k != "local_process_index"},
                        "device_map": device_map if not isinstance(device_map, dict) else "one device per process"},
        **measured,
        "library_versions": library_versions(),
        "pushed": {},
    }  # fmt: skip


def _finish(
    manifest: dict[str, Any],
    script_args: Any,
    sft_args: Any,
    model_args: Any,
    resolved: Any,
    data: SFTData,
    *,
    push: bool,
) -> dict[str, Any]:
    """Merge, evaluate, write the model cards and push; the manifest is written again with what happened."""
    output_dir = Path(sft_args.output_dir)
    method = script_args.method
    adapter = method in ADAPTER_METHODS
    merged_dir = _merge(manifest, output_dir, script_args, model_args, resolved, adapter)
    overfitting = None
    if script_args.eval_after:
        overfitting = evaluate_after(
            output_dir,
            output_dir,
            data,
            script_args,
            manifest["losses"],
            method,
            dtype=merge_dtype(model_args),
        )
        manifest["overfitting"] = overfitting

    repo_id = sft_args.hub_model_id if push else None
    merged_repo = (script_args.merged_hub_model_id or f"{sft_args.hub_model_id}-merged") if push else None
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
    if merged_dir is not None:
        merged_from = repo_id or relative_path(output_dir)
        merged_manifest = {**manifest, "merged_from_adapter": merged_from}
        merged_card = build_card(
            "full", merged_manifest, repo_id=merged_repo, overfitting=overfitting, has_loss_plot=False,
            base_info=base_card,
        )  # fmt: skip
        merged_card.save(merged_dir / "README.md")
        write_json(merged_dir / "manifest.json", merged_manifest)
    if push:
        _push(manifest, sft_args, resolved, data, card, merged_dir, merged_card, merged_repo)
    write_json(output_dir / "manifest.json", manifest)
    return manifest


def _merge(
    manifest: dict[str, Any],
    output_dir: Path,
    script_args: Any,
    model_args: Any,
    resolved: Any,
    adapter: bool,
) -> Path | None:
    """--merge: the adapter merged into a fresh, unquantized copy of its base, in OUTPUT_DIR/merged."""
    if not script_args.merge:
        return None
    if not adapter:
        print("note: --merge does nothing for --method full (the model is already whole)", file=sys.stderr)
        return None
    merged_dir = merge_adapter(
        output_dir, resolved.path, output_dir / "merged", dtype=merge_dtype(model_args)
    )
    manifest["merged_dir"] = relative_path(merged_dir)
    return merged_dir


def _push(
    manifest: dict[str, Any],
    sft_args: Any,
    resolved: Any,
    data: SFTData,
    card: Any,
    merged_dir: Path | None,
    merged_card: Any,
    merged_repo: str | None,
) -> None:
    method = manifest["method"]
    source = data.raw.source if data.raw.from_hub else Path(data.raw.source).name
    manifest["pushed"]["model"] = push_run(
        Path(sft_args.output_dir),
        sft_args.hub_model_id,
        card,
        base_hub_id=resolved.hub_id,
        private=bool(sft_args.hub_private_repo),
        message=f"LetItCode SFT ({method}) on {source}",
    )
    if merged_dir is not None and merged_card is not None:
        manifest["pushed"]["merged"] = push_run(
            merged_dir,
            merged_repo,
            merged_card,
            base_hub_id=None,
            private=bool(sft_args.hub_private_repo),
            message=f"LetItCode SFT ({method}) merged into {resolved.hub_id}",
        )
