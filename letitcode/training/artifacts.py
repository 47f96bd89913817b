"""What a finished run leaves behind: the manifest, the loss curves and their plot, the model card, and the push
to the Hub (through `letitcode.hub.publish`).

`loss_curves` is the one parser of a Trainer's `log_history`. Heavy libraries (matplotlib, huggingface_hub's
card classes, torch, accelerate) are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from letitcode import templates
from letitcode.errors import UserError
from letitcode.hub import publish as hub
from letitcode.training.config import relative_path
from letitcode.training.peft import peft_record, quantization_record

MODEL_CARDS = templates.CARDS
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
# The training arguments that the manifest's (and the card's) hyperparameters show.
_HP_KEYS = (
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


# ------------------------------------------------------------------------------------------------ manifest


def hyperparameters(method: str, sft_args: Any, peft_config: Any, quant: Any) -> dict[str, Any]:
    hp: dict[str, Any] = {"method": method, **{k: getattr(sft_args, k) for k in _HP_KEYS}}
    hp["optim"] = str(hp["optim"].value if hasattr(hp["optim"], "value") else hp["optim"])
    hp["lr_scheduler_type"] = str(getattr(hp["lr_scheduler_type"], "value", hp["lr_scheduler_type"]))
    hp["effective_batch_size"] = (
        sft_args.per_device_train_batch_size
        * sft_args.gradient_accumulation_steps
        * max(1, sft_args.world_size)
    )
    if peft_config is not None:
        hp["peft"] = peft_record(peft_config)
    if quant is not None:
        hp["quantization"] = quantization_record(quant)
    return hp


def command_line() -> list[str]:
    """This process's command, without machine paths."""
    return [Path(sys.argv[0]).name, *(relative_path(a) if os.path.isabs(a) else a for a in sys.argv[1:])]


def created_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def portable_model(m: dict[str, Any]) -> dict[str, Any]:
    """A model manifest without machine paths: local folders by relative path or name."""
    out = dict(m)
    for k in ("path", "spec"):
        if isinstance(out.get(k), str) and os.path.isabs(out[k]):
            out[k] = relative_path(out[k])
    if isinstance(out.get("base"), dict):
        out["base"] = portable_model(out["base"])
    return out


def portable_data(d: dict[str, Any]) -> dict[str, Any]:
    out = dict(d)
    if not out.get("from_hub") and isinstance(out.get("source"), str):
        out["source"] = relative_path(out["source"])
        hub_id = known_dataset_id(out.get("layout"), out.get("source"))
        if hub_id:
            out["hub_id"] = hub_id  # what the local file is a copy of
    deco = out.get("decontamination")
    if isinstance(deco, dict) and isinstance(deco.get("benchmark"), dict):
        b = dict(deco["benchmark"])
        for k in ("source", "dataset", "path"):
            if isinstance(b.get(k), str) and os.path.isabs(b[k]):
                b[k] = relative_path(b[k])
        out["decontamination"] = {**deco, "benchmark": b}
    return out


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


# ------------------------------------------------------------------------------------------------ losses


def loss_curves(log_history: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[Any, float]]]:
    """{"train": [(step, loss)], "eval": [(step, eval_loss)]} from a Trainer's `log_history`."""
    return {
        "train": [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e],
        "eval": [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e and "step" in e],
    }


def plot_losses(log_history: list[dict[str, Any]], path: str | Path) -> dict[str, Any]:
    """Plot train and eval loss against the step to `path` (PNG). Returns the last values of each curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    curves = loss_curves(log_history)
    train, evals = curves["train"], curves["eval"]
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


def check_finite(losses: dict[str, Any]) -> None:
    for k in ("final_train_loss", "final_eval_loss"):
        v = losses.get(k)
        if v is not None and not math.isfinite(v):
            raise UserError(f"{k} is {v}: training diverged; lower --learning_rate")


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
