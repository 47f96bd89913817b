"""letitcode.cpu_memory: the CPU training memory settings change memory, never results."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from letitcode import cpu_memory


def _fused_logprobs_and_grads(tokens: int | None, vocab: int | None) -> tuple:
    import torch
    import trl.kernels.chunked_logprob as kernel
    import trl.trainer.utils as trl_utils
    from trl.kernels import ChunkedLogProbFunction

    saved = kernel.TOKEN_CHUNK_SIZE, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE
    try:
        if tokens is not None:
            cpu_memory.shrink_lm_head_tiles(tokens, vocab)
        g = torch.Generator().manual_seed(0)
        hidden = torch.randn(300, 16, generator=g, requires_grad=True)
        weight = torch.randn(1000, 16, generator=g, requires_grad=True)
        targets = torch.randint(0, 1000, (300,), generator=g)
        out = ChunkedLogProbFunction.apply(
            hidden, weight, None, targets, 1.0, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0,
            ("entropy", "is_top1"),
        )  # fmt: skip
        out[0].sum().backward()
        return out[0].detach(), out[1].detach(), hidden.grad, weight.grad
    finally:
        kernel.TOKEN_CHUNK_SIZE, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = saved


def test_smaller_lm_head_tiles_give_the_same_log_probs_and_gradients():
    import torch

    reference = _fused_logprobs_and_grads(None, None)  # TRL's own tiles: one tile for this size
    tiled = _fused_logprobs_and_grads(64, 96)  # 5 token tiles x 11 vocabulary tiles, ragged edges
    for a, b in zip(reference, tiled, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)  # fp32 online logsumexp, other order
    # and the log-probabilities are the real ones
    g = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(300, 16, generator=g), torch.randn(1000, 16, generator=g)
    targets = torch.randint(0, 1000, (300,), generator=g)
    exact = torch.log_softmax(hidden @ weight.T, -1).gather(-1, targets[:, None]).squeeze(-1)
    torch.testing.assert_close(tiled[0], exact, rtol=1e-5, atol=1e-5)


def test_pinned_trl_still_has_the_tile_constants():
    import trl.kernels.chunked_logprob as kernel
    import trl.trainer.utils as trl_utils

    # if a TRL upgrade renames them, shrink_lm_head_tiles stops saving memory: fail here, loudly
    assert isinstance(kernel.TOKEN_CHUNK_SIZE, int) and isinstance(trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE, int)


_FRAGMENT = textwrap.dedent(
    """
    import ctypes, json, sys
    sys.path.insert(0, sys.argv[2])
    from letitcode import cpu_memory
    applied = cpu_memory.fix_malloc_mmap_threshold()["applied"] if sys.argv[1] == "on" else False
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    def rss_mb():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
    def block(n):
        p = libc.malloc(n)
        libc.memset(p, 1, n)  # resident
        return p
    libc.free(block(16 << 20))  # a large block freed: glibc's dynamic threshold rises to 16 MB
    before = rss_mb()
    blocks = [block(2 << 20) for _ in range(100)]  # activation-sized blocks: 200 MB
    for p in blocks[:-1]:
        libc.free(p)  # the last one stays, as a live tensor would, pinning the heap top
    print(json.dumps({"applied": applied, "kept_mb": rss_mb() - before}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt(M_MMAP_THRESHOLD) is glibc's")
def test_fixed_mmap_threshold_gives_freed_blocks_back():
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[1])
    got = {}
    for mode in ("off", "on"):
        proc = subprocess.run(
            [sys.executable, "-c", _FRAGMENT, mode, repo], capture_output=True, text=True, check=True
        )
        got[mode] = json.loads(proc.stdout)
    assert got["on"]["applied"] is True
    # glibc's default keeps the freed 2 MB blocks below the live one; the fixed threshold returns them
    assert got["off"]["kept_mb"] > 150 and got["on"]["kept_mb"] < 20, got
