"""The model side of a run: PEFT and quantization configs, IA³ targets, load precision and placement, the
precision record, parameter counts, the QLoRA backend check and merging an adapter into its base.

Heavy libraries (torch, PEFT, TRL, bitsandbytes) are imported inside the functions that need them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from letitcode.errors import UserError

# IA³ targets where PEFT has no default for the architecture (Phi-3 fuses q/k/v and gate/up projections).
_IA3_FALLBACK = {"phi3": (["qkv_proj", "down_proj"], ["down_proj"])}
# The PEFT config keys a manifest and a model card show.
_PEFT_KEYS = (
    "peft_type",
    "r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "use_dora",
    "feedforward_modules",
)


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


def count_parameters_sharded(model: Any) -> dict[str, int]:
    """`count_parameters`, with ZeRO-3 partitioned parameters counted at their full size (`ds_numel`)."""
    params = list(model.parameters())
    if not any(hasattr(p, "ds_numel") for p in params):
        return count_parameters(model)
    n = lambda p: int(getattr(p, "ds_numel", p.numel()))  # noqa: E731
    quantized = sum(type(m).__module__.startswith("bitsandbytes") for m in model.modules())
    return {"trainable": sum(n(p) for p in params if p.requires_grad), "total": sum(n(p) for p in params),
            "quantized_linear_layers": int(quantized)}  # fmt: skip


def peft_record(peft_config: Any) -> dict[str, Any]:
    """The PEFT settings of the manifest's hyperparameters (target modules as given, before PEFT expands them)."""
    return {
        k: (sorted(v) if isinstance(v, (set, list)) else getattr(v, "value", v))
        for k, v in peft_config.to_dict().items()
        if k in _PEFT_KEYS
    }


def quantization_record(quant: Any) -> dict[str, Any]:
    return {
        "load_in_4bit": quant.load_in_4bit,
        "bnb_4bit_quant_type": quant.bnb_4bit_quant_type,
        "bnb_4bit_use_double_quant": quant.bnb_4bit_use_double_quant,
        "bnb_4bit_compute_dtype": str(quant.bnb_4bit_compute_dtype).replace("torch.", ""),
    }


def load_dtype(method: str, model_args: Any, sft_args: Any) -> str:
    """The dtype the base loads in: as asked, except that full fine-tuning keeps fp32 master weights."""
    dtype = model_args.dtype
    if method == "full" and dtype in ("bfloat16", "float16"):
        # fp32 master weights: bf16/fp16 only as autocast, never as the weights the optimizer updates
        print(
            f"note: full fine-tuning loads fp32 weights (not {dtype}) and trains them under "
            f"{'bf16' if sft_args.bf16 else 'fp16' if sft_args.fp16 else 'no'} autocast",
            file=sys.stderr,
        )
        dtype = "float32"
    return dtype


def merge_dtype(model_args: Any) -> str:
    """The dtype an adapter is merged (and evaluated) in."""
    return model_args.dtype if model_args.dtype in ("float32", "bfloat16", "float16") else "float32"


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


def model_init_kwargs(
    model_args: Any, sft_args: Any, dist: dict[str, Any], cuda: bool, dtype: str, *, quantized: bool
) -> dict[str, Any]:
    """`SFTConfig.model_init_kwargs`: the load dtype, attention, the user's own kwargs and the device map."""
    init_kwargs: dict[str, Any] = {"dtype": dtype}
    if model_args.attn_implementation:
        init_kwargs["attn_implementation"] = model_args.attn_implementation
    user_init = dict(sft_args.model_init_kwargs or {})
    device_map = device_map_for(dist, cuda, user_init.pop("device_map", None), quantized=quantized)
    return {**init_kwargs, **user_init, "device_map": device_map}


def adapters_to_fp32(model: Any) -> None:
    """TRL casts QLoRA adapters to bf16 (the paper's choice); LetItCode keeps every adapter in fp32 so that
    small updates are not rounded away (the comparison with LoRA/DoRA stays about the base's precision)."""
    import torch

    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()


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
