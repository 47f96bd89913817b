import json
import subprocess
import sys

import pytest

from letitcode import models
from letitcode.errors import HubUnavailable, UserError


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, embedded_path):
    """A from-config 2-layer Llama with the embedded tokenizer: loads in milliseconds."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(embedded_path)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    path = tmp_path_factory.mktemp("tiny")
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_embedded_path_cli_prints_converted_folder(embedded_path):
    out = subprocess.run(
        [sys.executable, "-m", "letitcode.models", "path", "embedded"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == str(embedded_path)
    assert (embedded_path / "model.safetensors").exists()
    assert (embedded_path / "letitcode_source.json").exists()


def test_resolve_embedded_has_hub_origin_and_fingerprint():
    r = models.resolve("embedded")
    assert r.hub_id == models.EMBEDDED_HUB_ID and len(r.fingerprint) == 16 and not r.is_adapter


def test_local_folder(tiny_model):
    r = models.resolve(str(tiny_model))
    assert r.path == str(tiny_model) and r.hub_id is None and r.fingerprint


def test_unreachable_hub_id_offline_says_what_to_pass(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailable) as e:
        models.resolve("no-such-org/no-such-model@main")
    msg = str(e.value)
    assert "no-such-org/no-such-model@main" in msg and "--model embedded" in msg and "HF_HUB_OFFLINE" in msg


@pytest.mark.parametrize("spec", ["", "./does/not/exist", "a/b/c"])
def test_bad_specs(spec):
    with pytest.raises(UserError):
        models.resolve(spec)


def test_adapter_resolves_its_base(tiny_model, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"]))
    peft_model.save_pretrained(tmp_path / "adapter")
    r = models.resolve(str(tmp_path / "adapter"))
    assert r.is_adapter and r.base.path == str(tiny_model)
    assert r.cache_key.endswith(r.base.fingerprint)
    model, tok, _ = models.load(r)
    from peft import PeftModel

    assert isinstance(model, PeftModel)


def test_adapter_on_embedded_hub_id_falls_back_offline(tmp_path):
    (tmp_path / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": models.EMBEDDED_HUB_ID})
    )
    r = models.resolve(str(tmp_path))
    assert r.base.spec == "embedded"
