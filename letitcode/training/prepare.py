"""The SFT data as SFTTrainer gets it: decontaminated against the evaluated benchmark, split by problem
(`letitcode.training.data`), folded for templates without a system turn, without prompts that fill
`max_length`, and with a validation set bounded in rows and batch size."""

from __future__ import annotations

import logging
import sys
from typing import Any

from letitcode import prompts
from letitcode.errors import UserError
from letitcode.training.config import resolved_eval_split
from letitcode.training.data import SFTData, build_sft_data, load_rows

log = logging.getLogger(__name__)


def sft_datasets(script_args: Any, sft_args: Any, tokenizer: Any, style: str) -> tuple[SFTData, Any, Any]:
    """The SFT data and its (train, validation) datasets, ready for SFTTrainer."""
    raw = load_rows(
        script_args.dataset_name, split=script_args.dataset_train_split, revision=script_args.dataset_revision
    )
    problems, deco_info = load_decontamination(script_args)
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
    train_ds, eval_ds = _drop_overlong(train_ds, eval_ds, tokenizer, sft_args, data)
    eval_ds = _bound_validation(eval_ds, script_args, sft_args, data)
    print(
        f"data: {data.stats['rows']} rows, {data.stats['removed_by_decontamination']} removed by decontamination "
        f"against {_deco_label(script_args)}, "
        f"{data.stats['train']} train / {data.stats['validation']} validation ({data.preset or 'column_map'} layout, "
        f"{style} prompts, {script_args.completion_format})",
        file=sys.stderr,
    )
    return data, train_ds, eval_ds


def _drop_overlong(
    train_ds: Any, eval_ds: Any, tokenizer: Any, sft_args: Any, data: SFTData
) -> tuple[Any, Any]:
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
    return train_ds, eval_ds


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


def load_decontamination(script_args: Any) -> tuple[list[Any] | None, dict[str, Any]]:
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
