"""Rehearsal of the GPU path on CPU (issue 12, item 7): every seed recipe (gemma-7b, llama-3.1-8b-instruct,
phi-3-mini-4k-instruct x lora, dora, full, qlora) trains 2 steps on a tiny model of its architecture with its
real tokenizer, and `evaluate/run.py` runs 2 embedded LeetCode problems on it. Checked against the contract:

- prompt style: gemma-7b (a base model) gets a completion prompt with no chat markup; Llama and Phi-3 get their
  chat template;
- BOS exactly as the real tokenizer and training put it: once, first, for Gemma and Llama; none for Phi-3, whose
  tokenizer adds none (add_bos_token false) and whose template has none;
- the starter code and the entry point's name in the prompt (a completion prompt ends inside the open code
  block, with the starter code);
- samples.jsonl records carry the exact `prompt` and its `n_prompt_tokens`;
- the LoRA target modules in the adapter config are the recipe's and exist in the architecture;
- a pad token is set, and differs from EOS where the recipe or the real tokenizer says so.

The recipes' GPU settings (bf16, gradient checkpointing, batch 2 x 8, 1024 tokens, Hub data) are overridden on
the command line for a 2-core CPU; everything else (method, LoRA settings, optimizer, target modules, precision
of the quantized base) is the recipe's.
"""

from __future__ import annotations

import functools
import gc
import json
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest
import seed_models

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SEEDS = ("gemma-7b", "llama-3.1-8b-instruct", "phi-3-mini-4k-instruct")
METHODS = ("lora", "dora", "full", "qlora")
# The linear layers PEFT's "all-linear" must reach in each architecture (lm_head excluded).
LINEAR = {
    "gemma-7b": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
    "llama-3.1-8b-instruct": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
    "phi-3-mini-4k-instruct": {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"},
}
# BOS tokens at the start of a prompt as the real models' tokenizers put them (see test_seed_models.py).
BOS_COUNT = {"gemma-7b": 1, "llama-3.1-8b-instruct": 1, "phi-3-mini-4k-instruct": 0}
CHAT_MARKUP = ("<start_of_turn>", "<end_of_turn>", "<|", "[INST]")
# CPU overrides of the GPU recipes: tiny batches, short rows, no checkpoints, no validation pass.
CPU_OVERRIDES = [
    "--max_steps", "2", "--val_fraction", "0", "--dtype", "float32", "--bf16", "false", "--use_cpu", "true",
    "--gradient_checkpointing", "false", "--per_device_train_batch_size", "1",
    "--gradient_accumulation_steps", "1", "--max_length", "512", "--eval_strategy", "no",
    "--eval_on_start", "false", "--save_strategy", "no", "--logging_steps", "1", "--report_to", "none",
    "--cpu_memory_saving", "off",
]  # fmt: skip


def _recipe(seed: str, method: str) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((REPO / "sft" / "recipes" / seed / f"{method}.yaml").read_text())


@functools.cache  # Gemma's 262k-token tokenizer.json takes seconds to parse
def _tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


@functools.cache
def _linear_modules(folder: Path) -> dict[str, bool]:
    """Module path -> whether it is a linear layer, in the architecture of the model in `folder`."""
    import torch
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(folder)
    return {n: isinstance(m, torch.nn.Linear) for n, m in base.named_modules()}


def _untemplated(text: str) -> str:
    """Decoded text as the template wrote it: SentencePiece decodes the '▁' before a newline that follows a
    special token (Phi-3's '<|user|>\n' is <|user|> ▁ <0x0A>) as a space."""
    return text.replace("|> \n", "|>\n")


@pytest.fixture(scope="module", autouse=True)
def _cheap_tokenizer_fingerprints():
    """`datasets` fingerprints every `map` by pickling its function, closure included, and the tokenizer in it:
    Gemma's 262k-token tokenizer costs ~10 s a map on these cores (3 maps a run: letitcode/training/prepare.py
    drop_overlong_prompts twice, TRL's tokenization once), more than the 2 training steps. Fingerprints only
    name cache files, which these runs never reuse, so here a tokenizer hashes by name and size."""
    from datasets.utils import _dill

    def save(pickler: Any, obj: Any) -> None:
        pickler.save(f"{type(obj).__name__}:{obj.name_or_path}:{len(obj)}")

    # datasets registers the reducer per tokenizer class on first sight, in a class-level dispatch table: drop
    # the registrations made before this module (so ours is used) and restore the table exactly afterwards (so
    # no other test module ever fingerprints a tokenizer the cheap way).
    dispatch = _dill.Pickler.dispatch
    saved = dict(dispatch)
    for cls, fn in saved.items():
        if fn is _dill._save_transformersPreTrainedTokenizerBase:
            del dispatch[cls]
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_dill, "_save_transformersPreTrainedTokenizerBase", save)
            yield
    finally:
        dispatch.clear()
        dispatch.update(saved)


@pytest.fixture(scope="module")
def short_sft_data(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 6 shortest LeetCodeDataset training rows (its own columns), so 512 tokens hold prompt and answer."""
    import gzip

    src = shared_data / "leetcodedataset" / "LeetCodeDataset-v0.2.0-train.jsonl.gz"
    with gzip.open(src, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    rows.sort(key=lambda r: len(r["query"]) + len(r["response"]))
    out = tmp_path_factory.mktemp("sft-data") / "short.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows[:6]))
    return out


class _FirstBatch:
    """TrainerCallback that keeps the first training batch's input ids (what the model really trains on)."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        outer = self
        self.rows: list[list[int]] = []

        class _CB(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                batch = next(iter(kw["train_dataloader"]))
                ids, mask = batch["input_ids"].tolist(), batch["attention_mask"].tolist()
                outer.rows = [
                    [i for i, m in zip(r, mk, strict=True) if m] for r, mk in zip(ids, mask, strict=True)
                ]

        self.callback = _CB()


_TRAINED: dict[tuple[str, str], dict[str, Any]] = {}


def _train(seed: str, method: str, model: Path, data: Path, out: Path) -> dict[str, Any]:
    """`sft/train.py --config <recipe> --model <tiny> ...` in this process (imports once for all 12 runs)."""
    key = (seed, method)
    if key in _TRAINED:
        return _TRAINED[key]
    from letitcode.training.config import parse_args
    from letitcode.training.trainer import train

    argv = [
        "--config", str(REPO / "sft" / "recipes" / seed / f"{method}.yaml"), "--model", str(model),
        "--dataset", str(data), "--output_dir", str(out), *CPU_OVERRIDES,
    ]  # fmt: skip
    peek = _FirstBatch()
    script_args, sft_args, model_args = parse_args(argv)
    manifest = train(script_args, sft_args, model_args, callbacks=[peek.callback])
    gc.collect()
    _TRAINED[key] = {"manifest": manifest, "out": out, "rows": peek.rows}
    return _TRAINED[key]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", SEEDS)
def test_recipe_trains_two_steps(
    seed: str,
    method: str,
    seed_model_folders: dict[str, Path],
    short_sft_data: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from transformers import AutoModelForCausalLM

    model = seed_model_folders[seed]
    recipe = _recipe(seed, method)
    out = tmp_path_factory.mktemp(f"sft-{seed}-{method}")
    if method == "qlora":
        from letitcode.errors import UserError

        try:
            run = _train(seed, method, model, short_sft_data, out)
        except UserError as e:  # where 4-bit cannot run here: the contract's one-line error naming the cause
            assert "bitsandbytes" in str(e) and "\n" not in str(e), str(e)
            pytest.skip(f"QLoRA cannot run here, as the one-line error says: {e}")
    else:
        run = _train(seed, method, model, short_sft_data, out)
    manifest = run["manifest"]
    assert manifest["method"] == method and manifest["global_step"] == 2
    assert manifest["hyperparameters"]  # recorded for the card

    # BOS in the trained rows exactly as the real tokenizer puts it (and as evaluation must)
    tok = _tokenizer(out)
    assert run["rows"], "no training batch seen"
    for row in run["rows"]:
        assert row.count(tok.bos_token_id) == BOS_COUNT[seed], tok.convert_ids_to_tokens(row[:3])
        if BOS_COUNT[seed]:
            assert row[0] == tok.bos_token_id
    # prompt style in training: chat markup for the instruct models, none for gemma-7b
    text = _untemplated(tok.decode(run["rows"][0]))
    if seed == "gemma-7b":
        assert not any(m in text for m in CHAT_MARKUP), text[:200]
    elif seed == "llama-3.1-8b-instruct":
        assert text.startswith("<|begin_of_text|><|start_header_id|>"), text[:200]
    else:
        assert "<|user|>" in text and "<|assistant|>" in text, text[:200]

    # pad token: set, and distinct from EOS where the recipe or the real tokenizer has a distinct one
    assert tok.pad_token is not None
    if recipe.get("pad_token"):
        assert tok.pad_token == recipe["pad_token"] and tok.pad_token != tok.eos_token
    base_tok = _tokenizer(model)
    if base_tok.pad_token is not None and base_tok.pad_token != base_tok.eos_token:
        assert tok.pad_token == base_tok.pad_token and tok.pad_token_id != tok.eos_token_id

    if method == "full":
        full = AutoModelForCausalLM.from_pretrained(out)
        assert type(full).__name__ == seed_models.SEED_MODELS[seed]["architecture"]
        assert not (out / "adapter_config.json").exists()
        return
    adapter = json.loads((out / "adapter_config.json").read_text())
    saved = set(adapter["target_modules"])  # "all-linear" is saved expanded, as names or full module paths
    targets = {t.rsplit(".", 1)[-1] for t in saved}
    modules = _linear_modules(model)
    linear = {n.rsplit(".", 1)[-1] for n, is_linear in modules.items() if is_linear}
    for t in saved:  # every saved target exists in the architecture, as a linear layer
        assert t in linear or modules.get(t), t
    wanted = set(recipe.get("lora_target_modules") or ["all-linear"])
    if wanted == {"all-linear"}:
        assert targets == LINEAR[seed] == linear - {"lm_head"}
    else:
        assert targets == wanted
    assert adapter["r"] == recipe["lora_r"] and adapter["lora_alpha"] == recipe["lora_alpha"]
    assert bool(adapter.get("use_dora")) == (method == "dora")
    assert Path(adapter["base_model_name_or_path"]).resolve() == model.resolve()


def _evaluate(model: str, out: Path, capture: list[list[int]]) -> list[dict[str, Any]]:
    """`evaluate/run.py --model M --benchmark leetcode --limit 2` in this process, keeping the token ids of
    every prompt the model is given (the embedding's input at each prefill)."""
    import torch

    def hook(module: Any, args: tuple) -> None:
        if isinstance(module, torch.nn.Embedding) and args and args[0].dim() == 2 and args[0].shape[-1] > 1:
            capture.extend(args[0].tolist())

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    argv = [
        "evaluate/run.py", "--model", model, "--benchmark", "leetcode", "--limit", "2", "--max_new_tokens", "8",
        "--batch_size", "1", "--output_dir", str(out), "--workers", "1", "--progress", "false",
    ]  # fmt: skip
    old = sys.argv
    sys.argv = argv
    try:
        script = runpy.run_path(str(REPO / "evaluate" / "run.py"), run_name="letitcode_eval")
        assert script["main"]() == 0
    finally:
        sys.argv = old
        handle.remove()
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def _problems() -> dict[str, Any]:
    from letitcode.data.benchmarks import load_benchmark

    return {p.task_id: p for p in load_benchmark("leetcode").problems}


def _check_eval(seed: str, tok: Any, records: list[dict[str, Any]], prompts_ids: list[list[int]]) -> None:
    assert len(records) == 2 and len(prompts_ids) == 2, (len(records), len(prompts_ids))
    problems = _problems()
    for ids in prompts_ids:  # BOS exactly as training put it (test_recipe_trains_two_steps)
        assert ids.count(tok.bos_token_id) == BOS_COUNT[seed], tok.convert_ids_to_tokens(ids[:3])
        if BOS_COUNT[seed]:
            assert ids[0] == tok.bos_token_id
    by_text = {_untemplated(tok.decode(ids)): ids for ids in prompts_ids}
    for text in by_text:
        if seed == "gemma-7b":  # a base model: completion style, no chat markup
            assert not any(m in text for m in CHAT_MARKUP), text[:200]
        elif seed == "llama-3.1-8b-instruct":
            assert text.startswith("<|begin_of_text|><|start_header_id|>")
            assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
        else:
            assert text.startswith(("<|system|>", "<|user|>")) and text.endswith("<|assistant|>\n")
    for rec in records:
        p = problems[rec["task_id"]]
        # the contract of issue 12 item 2: the exact prompt text sent and its token count
        assert "prompt" in rec and "n_prompt_tokens" in rec, sorted(rec)
        prompt = rec["prompt"]
        assert p.function_name in prompt, (p.function_name, prompt[-300:])
        first_line = p.starter_code.strip().splitlines()[0]
        assert first_line in prompt
        if seed == "gemma-7b":  # ends inside the open code block, with the starter code
            tail = prompt[prompt.rindex("```") :]
            assert tail.startswith("```python") and first_line in tail, tail[:200]
        expected = tok(prompt, add_special_tokens=False).input_ids
        if BOS_COUNT[seed] and expected[:1] != [tok.bos_token_id]:
            expected = [tok.bos_token_id, *expected]
        assert rec["n_prompt_tokens"] == len(expected)
        assert expected in prompts_ids  # the text recorded is the text the model was given


@pytest.mark.parametrize("seed", SEEDS)
def test_evaluate_base_model(seed: str, seed_model_folders: dict[str, Path], tmp_path: Path) -> None:
    model = seed_model_folders[seed]
    ids: list[list[int]] = []
    records = _evaluate(str(model), tmp_path / "eval", ids)
    manifest = json.loads((tmp_path / "eval" / "manifest.json").read_text())
    assert manifest["prompt"]["style"] == ("completion" if seed == "gemma-7b" else "chat")
    _check_eval(seed, _tokenizer(model), records, ids)


@pytest.mark.parametrize(
    ("seed", "method"), [("llama-3.1-8b-instruct", "lora"), ("phi-3-mini-4k-instruct", "dora")]
)
def test_evaluate_trained_adapter(
    seed: str,
    method: str,
    seed_model_folders: dict[str, Path],
    short_sft_data: Path,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> None:
    """An adapter from the recipe is evaluated on its base with the style and BOS it was trained with."""
    run = _train(
        seed,
        method,
        seed_model_folders[seed],
        short_sft_data,
        tmp_path_factory.mktemp(f"sft-{seed}-{method}"),
    )
    ids: list[list[int]] = []
    records = _evaluate(str(run["out"]), tmp_path / "eval", ids)
    manifest = json.loads((tmp_path / "eval" / "manifest.json").read_text())
    assert manifest["model"]["is_adapter"] is True
    assert manifest["prompt"]["style"] == ("completion" if seed == "gemma-7b" else "chat")
    _check_eval(seed, _tokenizer(run["out"]), records, ids)
    # the prompts evaluated open like the rows trained on (same template, same BOS)
    trained = run["rows"][0]
    n = 3
    assert any(p[:n] == trained[:n] for p in ids), (trained[:n], [p[:n] for p in ids])


@pytest.mark.parametrize("seed", SEEDS)
def test_recipe_picked_from_model_and_method(seed: str, seed_model_folders: dict[str, Path], capsys) -> None:
    """Without --config, sft/train.py uses sft/recipes/<model>/<method>.yaml and says so (--dry_run stops
    before loading anything)."""
    script = runpy.run_path(str(REPO / "sft" / "train.py"), run_name="letitcode_sft")
    try:
        rc = script["main"](["--model", str(seed_model_folders[seed]), "--method", "lora", "--dry_run"])
    except SystemExit as e:  # --dry_run may exit on its own
        rc = e.code
    assert rc in (0, None)
    out = capsys.readouterr()
    assert f"sft/recipes/{seed}/lora.yaml" in out.out + out.err
