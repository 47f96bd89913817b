"""Known-benign library messages are filtered by their exact text, and nothing else is."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest


def test_is_gradient_checkpointing_warning_is_silenced_and_others_are_not() -> None:
    import transformers

    import letitcode  # noqa: F401  (installs the filters)

    cfg = transformers.LlamaConfig(
        num_hidden_layers=1,
        hidden_size=16,
        intermediate_size=32,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=64,
    )
    model = transformers.LlamaForCausalLM(cfg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        from letitcode import benign

        benign.install()  # catch_warnings reset the filters: install them again inside
        assert model.is_gradient_checkpointing is False
        warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else is deprecated"]


def test_bitsandbytes_kernels_message_is_silenced() -> None:
    probe = "import bitsandbytes"
    bare = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    if "kernels-community" not in bare.stderr:
        pytest.skip("bitsandbytes does not try the `kernels` package on this CPU (no AVX512-BF16)")
    quiet = subprocess.run(
        [sys.executable, "-c", f"import letitcode; {probe}"], capture_output=True, text=True, timeout=300
    )
    assert quiet.returncode == 0 and "kernels-community" not in quiet.stderr, quiet.stderr
