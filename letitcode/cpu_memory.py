"""Host-memory settings for fine-tuning on a CPU, where peak RSS is the memory that counts.

Two things make CPU training keep far more memory than its live tensors (measured with
`torch.profiler`'s memory timeline and `bench/train_memory.py` on the embedded model, 1 x 1024 tokens):

1. TRL 1.16's fused LM head scores `[4096 tokens, 32768 vocab]` tiles. On CUDA a Triton kernel folds
   each tile in place; elsewhere its torch fallback materialises several tile-sized temporaries
   (about 0.7 GB of the LoRA step's 1.3 GB of live tensors). `[1024, 4096]` tiles give the same
   log-probabilities with 16 MB temporaries, and measured slightly faster on a CPU (3 steps: 30 against
   34 s for LoRA, 29 against 37 s for full).
2. glibc's malloc raises its mmap threshold dynamically (up to 32 MB) once a large block is freed, so
   the 2-6 MB activations of every layer then come from the heap, whose freed middle is never given
   back: LoRA's many short-lived adapter activations leave the heap fragmented at several times their
   size. A fixed threshold (128 KiB, glibc's own default) keeps large blocks on mmap, returned on free.
   It costs page faults: steps are slower (see the README's memory table for the measured trade).

`sft/train.py --cpu_memory_saving auto` (the default) applies the tiles to every CPU run, and the threshold
only with gradient checkpointing, which already trades speed for memory (the CPU recipes leave it off for
speed: there the threshold costs about 2x per step); `on` applies both, `off` neither. What applied is
recorded in the run's manifest; nothing is applied when training on a GPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Any

# glibc's mallopt(3) parameter number for M_MMAP_THRESHOLD (malloc.h).
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024
LM_HEAD_TILE = {"tokens": 1024, "vocab": 4096}


def shrink_lm_head_tiles(
    tokens: int = LM_HEAD_TILE["tokens"], vocab: int = LM_HEAD_TILE["vocab"]
) -> dict[str, Any]:
    """Set the tile of TRL's fused LM head (tokens x vocabulary columns per projection).

    TRL exposes no option for it, so this sets the two module constants its kernel reads at call time;
    `trl` is pinned exactly (pyproject) and a test checks that both still exist.
    """
    import trl.kernels.chunked_logprob as kernel
    import trl.trainer.utils as trl_utils

    if not hasattr(kernel, "TOKEN_CHUNK_SIZE") or not hasattr(trl_utils, "_CHUNKED_LOGPROB_CHUNK_SIZE"):
        return {"applied": False, "why": "this TRL version has no fused LM head tile constants"}
    before = {"tokens": kernel.TOKEN_CHUNK_SIZE, "vocab": trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE}
    kernel.TOKEN_CHUNK_SIZE = int(tokens)
    trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = int(vocab)
    return {"applied": True, "tokens": int(tokens), "vocab": int(vocab), "trl_default": before}


def fix_malloc_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> dict[str, Any]:
    """mallopt(M_MMAP_THRESHOLD, threshold) on glibc: freed blocks above it go back to the OS at once."""
    if not sys.platform.startswith("linux"):
        return {"applied": False, "why": f"not glibc ({sys.platform})"}
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return {"applied": False, "why": "no mallopt in this C library (not glibc)"}
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, int(threshold)) != 1:
        return {"applied": False, "why": f"mallopt(M_MMAP_THRESHOLD, {threshold}) was refused"}
    return {"applied": True, "bytes": int(threshold)}


def apply(*, malloc: bool = True) -> dict[str, Any]:
    """The tiles, and the malloc threshold when `malloc`; the result goes into the training manifest."""
    threshold = fix_malloc_mmap_threshold() if malloc else {"applied": False, "why": "not requested"}
    return {"lm_head_tile": shrink_lm_head_tiles(), "malloc_mmap_threshold": threshold}
