"""The tiny seed-model fixtures are faithful to the real models where the GPU path depends on it:
architecture class, BOS, EOS and pad tokens, chat template, generation config."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import seed_models

SEED_FIXTURES = {
    "gemma-7b": "tiny_gemma",
    "llama-3.1-8b-instruct": "tiny_llama",
    "phi-3-mini-4k-instruct": "tiny_phi3",
}
CODE = "class Solution:\n    def twoSum(self, nums):\n        return []"


@pytest.fixture(params=list(SEED_FIXTURES))
def seed(request: pytest.FixtureRequest) -> tuple[str, Path]:
    return request.param, request.getfixturevalue(SEED_FIXTURES[request.param])


@functools.cache  # the Gemma tokenizer.json takes seconds to parse
def _load(folder: Path):
    from transformers import AutoConfig, AutoTokenizer

    return AutoConfig.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def test_architecture_and_shapes(seed: tuple[str, Path]) -> None:
    name, folder = seed
    cfg, tok = _load(folder)
    real = seed_models.SEED_MODELS[name]
    assert cfg.architectures == [real["architecture"]]
    assert cfg.model_type == real["config"]["model_type"]
    assert cfg.num_hidden_layers <= 4 and cfg.hidden_size <= 128  # tiny: the suite stays fast
    assert cfg.vocab_size >= len(tok)  # every token id has an embedding row
    # the architecture details the GPU path meets: GQA on Llama, Gemma's wide heads, Llama 3 rope scaling
    if name == "llama-3.1-8b-instruct":
        assert cfg.num_key_value_heads < cfg.num_attention_heads
        assert cfg.rope_scaling["rope_type"] == "llama3"
    if name == "gemma-7b":
        assert cfg.head_dim * cfg.num_attention_heads != cfg.hidden_size


def test_model_loads_as_the_real_class(seed: tuple[str, Path]) -> None:
    from transformers import AutoModelForCausalLM

    name, folder = seed
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert type(model).__name__ == seed_models.SEED_MODELS[name]["architecture"]
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    # the LoRA targets of "all-linear" differ by architecture: Phi-3 fuses q/k/v and gate/up
    if name == "phi-3-mini-4k-instruct":
        assert {"qkv_proj", "gate_up_proj", "o_proj", "down_proj"} <= names and "q_proj" not in names
    else:
        assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= names


def test_bos_as_the_real_tokenizer(seed: tuple[str, Path]) -> None:
    name, folder = seed
    _, tok = _load(folder)
    ids = tok(CODE).input_ids
    if name == "phi-3-mini-4k-instruct":  # add_bos_token false in Phi-3-mini's tokenizer_config
        assert tok.bos_token == "<s>" and tok.bos_token_id not in ids
    else:  # Gemma's and Llama 3's tokenizers prepend BOS to every string
        assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert tok(CODE, add_special_tokens=False).input_ids == [i for i in ids if i != tok.bos_token_id]
    assert {"gemma-7b": "<bos>", "llama-3.1-8b-instruct": "<|begin_of_text|>"}.get(
        name, "<s>"
    ) == tok.bos_token


def test_special_tokens_and_generation_config(seed: tuple[str, Path]) -> None:
    name, folder = seed
    _, tok = _load(folder)
    real = seed_models.SEED_MODELS[name]
    gen = json.loads((folder / "generation_config.json").read_text())
    for k, v in real["generation_config"].items():
        assert gen[k] == v, k
    eos = gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]]
    assert tok.eos_token_id in eos
    if name == "gemma-7b":
        assert (tok.pad_token, tok.eos_token, tok.pad_token_id, tok.eos_token_id) == ("<pad>", "<eos>", 0, 1)
    elif name == "llama-3.1-8b-instruct":
        assert tok.pad_token is None  # Llama 3.1 ships no pad token
        assert tok.eos_token == "<|eot_id|>" and eos == [128001, 128008, 128009]
    else:
        assert tok.pad_token == tok.eos_token == "<|endoftext|>" and tok.pad_token_id == 32000
        for t, i in {
            "<|user|>": 32010,
            "<|assistant|>": 32001,
            "<|end|>": 32007,
            "<|system|>": 32006,
        }.items():
            assert tok.convert_tokens_to_ids(t) == i
            assert tok(t, add_special_tokens=False).input_ids == [i]  # one special token, never split


def test_chat_template(seed: tuple[str, Path]) -> None:
    name, folder = seed
    _, tok = _load(folder)
    if name == "gemma-7b":  # a base model: no chat template, so completion-style prompts
        assert not tok.chat_template
        return
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Solve it."}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False).input_ids
    if name == "llama-3.1-8b-instruct":
        assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>")
        assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
        assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id  # the template's own BOS
        # tokenizing the template's text with special tokens on would add a second BOS: the bug to avoid
        assert tok(text).input_ids.count(tok.bos_token_id) == 2
    else:
        assert text == "<|system|>\nBe brief.<|end|>\n<|user|>\nSolve it.<|end|>\n<|assistant|>\n"
        assert tok.bos_token_id not in ids
        assert ids[0] == tok.convert_tokens_to_ids("<|system|>")
