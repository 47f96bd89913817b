"""`--eval_after`: pass@1 of the trained model on a train subset and on held-out problems (overfitting.json),
scored by the evaluator (`letitcode.pipeline`), as every other model is."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from letitcode.config import EvalConfig
from letitcode.devices import adapter_quantization
from letitcode.training.config import relative_path, resolved_eval_split
from letitcode.training.data import SFTData, write_rows


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
                "source": f"{data.raw.source if data.raw.from_hub else relative_path(data.raw.source)} "
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
            "dataset_id": relative_path(script_args.eval_dataset)
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
