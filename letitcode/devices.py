"""Where a model runs: device, dtype, attention implementation, 4-bit base, and GPU memory accounting.

Every evaluation path (`evaluate/run.py`, `icl/run.py`, `sft/train.py --eval_after`, the study) resolves its
options here, before any model is loaded, so a `--device cuda` without CUDA is one line and never a silent
fall back to the CPU:

- device `auto`: `cuda:0` when CUDA is available, else `cpu`; `cuda` means `cuda:0`; `cuda:N` one GPU. A
  model is always loaded onto exactly one device (`device_map={"": device}`), never spread over every GPU.
- dtype `auto`: bfloat16 on a GPU that computes it natively (compute capability 8.0+: A100, H100, L4, RTX
  30xx+), float16 on older GPUs (T4, V100), float32 on the CPU.
- attention `auto`: `flash_attention_2` on CUDA when the `flash_attn` package is importable, else `sdpa`.
- quantization `auto`: a 4-bit NF4 base for adapters trained with QLoRA (their training manifest says so),
  as they were trained; `none` for everything else.

Memory is reported in GiB (2**30 bytes) everywhere, labelled GiB.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
from pathlib import Path
from typing import Any, Literal

from letitcode.errors import UserError

log = logging.getLogger(__name__)

GIB = 2**30
DEVICE_HELP = (
    "auto (CUDA when available, else CPU), cpu, cuda (= cuda:0) or cuda:N: the one device the model loads on"
)
ATTN_CHOICES = ("auto", "eager", "sdpa", "flash_attention_2")
AttnImplementation = Literal["auto", "eager", "sdpa", "flash_attention_2"]
Quantization = Literal["auto", "none", "4bit"]
DTYPES = ("float32", "bfloat16", "float16")
# Share of the free GPU memory (after the weights are loaded) given to the KV cache; the rest is headroom for
# activations and vocabulary-sized logits. transformers' own paged cache uses 0.8 when logits are processed.
KV_MEMORY_FRACTION = 0.8


def resolve_device(spec: str | None, *, flag: str = "--device") -> str:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> 'cpu' or 'cuda:N'; a CUDA device that is not there is a UserError."""
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return "cpu"
    m = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if not m:
        raise UserError(f"{flag} {spec!r} is not a device: choose auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise UserError(
            f"{flag} {spec}: no CUDA device is available (torch {torch.__version__} is {build}); "
            "pass --device cpu, or --device auto to use a GPU only where there is one"
        )
    index = int(m.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise UserError(f"{flag} {spec}: only {count} CUDA device(s) are visible (cuda:0..cuda:{count - 1})")
    return f"cuda:{index}"


def is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def _index(device: str) -> int:
    return int(device.split(":", 1)[1]) if ":" in device else 0


def physical_gpu(device: str) -> str:
    """The CUDA_VISIBLE_DEVICES entry that `cuda:N` is in this process (N itself when nothing is hidden), to
    pin a child process (a server, a study unit) to that one GPU."""
    import os

    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    i = _index(device)
    return visible[i] if i < len(visible) else str(i)


def native_bf16(device: str) -> bool:
    """bf16 in hardware (compute capability 8.0+). `torch.cuda.is_bf16_supported()` also says yes where bf16 is
    only emulated (T4, V100), which is slow; those get float16."""
    import torch

    return torch.cuda.get_device_capability(_index(device))[0] >= 8


def resolve_dtype(dtype: str | None, device: str, *, flag: str = "--dtype") -> str:
    dtype = (dtype or "auto").strip().lower()
    if dtype == "auto":
        if is_cuda(device):
            return "bfloat16" if native_bf16(device) else "float16"
        return "float32"
    if dtype not in DTYPES:
        raise UserError(f"{flag} {dtype!r}: choose auto, {', '.join(DTYPES)}")
    return dtype


def flash_attn_installed() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def resolve_attn(attn: str | None, device: str, *, flag: str = "--attn_implementation") -> str:
    attn = (attn or "auto").strip()
    if attn not in ATTN_CHOICES:
        raise UserError(f"{flag} {attn!r}: choose {', '.join(ATTN_CHOICES)}")
    if attn == "auto":
        return "flash_attention_2" if is_cuda(device) and flash_attn_installed() else "sdpa"
    if attn == "flash_attention_2":
        if not is_cuda(device):
            raise UserError(
                f"{flag} flash_attention_2 needs a CUDA device (the device is {device}): use sdpa"
            )
        if not flash_attn_installed():
            raise UserError(
                f"{flag} flash_attention_2 needs the flash-attn package: pip install flash-attn, or use sdpa"
            )
    return attn


# ------------------------------------------------------------------------------------------------ QLoRA bases


def adapter_quantization(adapter_dir: str | Path) -> dict[str, Any] | None:
    """The 4-bit setting an adapter was trained on, from the training manifest `sft/train.py` writes next to
    it (`hyperparameters.quantization`), or None for an adapter trained on a full-precision base."""
    path = Path(adapter_dir) / "manifest.json"
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    quant = (manifest.get("hyperparameters") or {}).get("quantization")
    if quant and quant.get("load_in_4bit"):
        return dict(quant)
    if manifest.get("method") == "qlora":  # a manifest without the details: QLoRA's defaults (training.py)
        return {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}
    return None


def bnb_cuda_available() -> bool:
    """Whether bitsandbytes is installed with its CUDA kernels (a CPU machine has none)."""
    import torch

    if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
        return False
    try:
        from bitsandbytes.cextension import lib

        return bool(getattr(lib, "compiled_with_cuda", False))
    except Exception:  # a broken install counts as none
        return False


def resolve_quantization(
    quantization: str | None, resolved: Any, device: str, *, flag: str = "--quantization"
) -> dict[str, Any] | None:
    """The bitsandbytes 4-bit settings to load the base with, or None for a full-precision base.

    `auto` quantizes exactly the bases of QLoRA adapters; `4bit` forces NF4 (also on the CPU, where
    bitsandbytes 0.50 runs 4-bit slowly); `none` evaluates on the full-precision base (the manifest says so)."""
    quantization = (quantization or "auto").strip().lower()
    if quantization not in ("auto", "none", "4bit"):
        raise UserError(f"{flag} {quantization!r}: choose auto, none or 4bit")
    if quantization == "none":
        return None
    trained = adapter_quantization(resolved.path) if getattr(resolved, "is_adapter", False) else None
    if quantization == "4bit":
        if importlib.util.find_spec("bitsandbytes") is None:
            raise UserError(f"{flag} 4bit needs bitsandbytes: pip install bitsandbytes")
        return trained or {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_use_double_quant": True,
        }
    if trained is None:
        return None
    if not (is_cuda(device) and bnb_cuda_available()):
        raise UserError(
            f"adapter {resolved.spec!r} was trained with QLoRA on a 4-bit base, but bitsandbytes has no CUDA "
            f"support here (device {device}): pass {flag} none to evaluate it on the full-precision base "
            f"(recorded in the manifest), or {flag} 4bit to run the 4-bit base on the CPU (slow)"
        )
    return trained


def bnb_config(quant: dict[str, Any], dtype: str) -> Any:
    """A transformers BitsAndBytesConfig from a training manifest's `hyperparameters.quantization`."""
    import torch
    from transformers import BitsAndBytesConfig

    compute = quant.get("bnb_4bit_compute_dtype") or dtype
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant.get("bnb_4bit_quant_type") or "nf4",
        bnb_4bit_use_double_quant=bool(quant.get("bnb_4bit_use_double_quant", True)),
        bnb_4bit_compute_dtype=getattr(torch, compute),
        bnb_4bit_quant_storage=getattr(torch, compute),
    )


# ------------------------------------------------------------------------------------------------ memory


def kv_bytes_per_token(config: Any, dtype: Any) -> int:
    """Bytes of KV cache one token takes over all layers: 2 (K and V) x layers x KV heads x head dim x element
    size (an upper bound for sliding-window layers)."""
    import torch

    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    size = torch.empty((), dtype=dtype).element_size() if isinstance(dtype, torch.dtype) else int(dtype)
    return 2 * cfg.num_hidden_layers * kv_heads * head_dim * size


def cuda_token_budget(config: Any, dtype: Any, device: str) -> int:
    """KV-cache tokens that fit in KV_MEMORY_FRACTION of the GPU's free memory (measured after loading)."""
    import torch

    free, _total = torch.cuda.mem_get_info(_index(device))
    return int(free * KV_MEMORY_FRACTION) // kv_bytes_per_token(config, dtype)


def device_info(device: str) -> dict[str, Any]:
    """What the manifest records about the device: its name and, for a GPU, its total memory in GiB."""
    import torch

    if not is_cuda(device):
        return {"device": device, "name": "cpu"}
    i = _index(device)
    props = torch.cuda.get_device_properties(i)
    return {
        "device": device,
        "name": torch.cuda.get_device_name(i),
        "total_memory_gib": round(props.total_memory / GIB, 2),
        "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
    }


def gpu_total_gib(index: int = 0) -> float | None:
    """The GPU's total memory in GiB (what `torch.cuda.get_device_properties` says), or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(index).total_memory / GIB


def peak_gpu_gib(device: str) -> float | None:
    """Peak memory allocated by torch on the device since the last reset, GiB; None on the CPU."""
    import torch

    if not is_cuda(device) or not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated(_index(device)) / GIB, 3)
