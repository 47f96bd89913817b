"""The seed models at their real shapes on one GPU: generation throughput and one training step per method.

    .venv/bin/python bench/gpu_rehearsal.py --json runs/bench/gpu_rehearsal.json    # one GPU, < 8 min on an H200
    .venv/bin/python bench/gpu_rehearsal.py --tiny                                  # the same code on a CPU

google/gemma-7b, meta-llama/Llama-3.1-8B-Instruct and microsoft/Phi-3-mini-4k-instruct are built from their
real configs (bench/seed_models.py) with random weights: nothing is downloaded. For each model it measures

- generation tokens/s through LetItCode's local backend (`letitcode/backends/local.py`): static batching
  (`model.generate` on padded batches) against paged continuous batching (transformers'
  `init_continuous_batching`, the backend's CUDA path), at batch 1 and 32, on embedded LeetCode prompts in the
  model's own prompt style. Random weights never emit EOS, so every sequence runs to --max_new_tokens: the
  figures compare the engines at equal work, not the padding that early stops waste;
- one LoRA, one QLoRA (NF4, double quantization, bf16 compute) and one full fine-tuning step on a batch of
  2 x 1024 random tokens (the recipes' per-device batch), with s/step (the mean after one warm-up step) and the
  peak GPU memory of the step (GiB = 2**30 bytes, weights included).

Full fine-tuning follows a memory-aware plan, stated in the output: fp32 weights with bf16 autocast and AdamW
(16 bytes a parameter: the fp32 master weights the full recipes need) where that fits the GPU; otherwise bf16
weights with 8-bit AdamW and gradient checkpointing (4 + 2 bytes a parameter), which an 8B model needs on one
80-141 GB GPU; otherwise the step is skipped with the reason. QLoRA is skipped, saying why, where bitsandbytes
cannot quantize on this device. Each section has a time budget (--budget_s over all); a section that would
start past it is skipped and listed.

`--tiny` scales every shape down (bench/seed_models.TINY) and runs on the CPU, so tests run the same code.
Prints a table of the measured numbers and the ratios (paged / static, QLoRA and full / LoRA) and writes JSON
with a manifest (device, library versions, seed).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import seed_models  # noqa: E402

LIBRARIES = ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes")
GiB = 2**30


@dataclass
class Plan:
    """Sizes of one run: the real ones on a GPU, scaled down with --tiny."""

    tiny: bool
    device: str
    dtype: str
    batches: tuple[int, ...] = (1, 32)
    max_new_tokens: int = 128
    train_batch: int = 2
    train_length: int = 1024
    steps: int = 2  # the first is a warm-up; s/step is the mean of the rest
    budget_s: float = 480.0
    seeds: tuple[str, ...] = seed_models.SEEDS
    sections: tuple[str, ...] = ("generate", "lora", "full", "qlora")
    notes: list[str] = field(default_factory=list)


def make_plan(args: argparse.Namespace) -> Plan:
    import torch

    cuda = torch.cuda.is_available() and not args.cpu
    if not args.tiny and not cuda:
        raise SystemExit(
            "error: the real shapes need a CUDA GPU (gemma-7b alone is 17 GB in bf16); pass --tiny to run the "
            "same code at small shapes on this CPU"
        )
    plan = Plan(tiny=args.tiny, device="cuda" if cuda else "cpu", dtype="bfloat16" if cuda else "float32")
    if args.tiny:
        plan.batches = (1, 4)
        plan.max_new_tokens = 8
        plan.train_length = 64
    if args.batches:
        plan.batches = tuple(int(b) for b in args.batches.split(","))
    if args.max_new_tokens:
        plan.max_new_tokens = args.max_new_tokens
    if args.seeds:
        plan.seeds = tuple(s.strip() for s in args.seeds.split(","))
        unknown = [s for s in plan.seeds if s not in seed_models.SEEDS]
        if unknown:
            raise SystemExit(f"error: --seeds {unknown[0]!r} is not one of {', '.join(seed_models.SEEDS)}")
    if args.sections:
        plan.sections = tuple(s.strip() for s in args.sections.split(","))
    plan.budget_s = args.budget_s
    return plan


# ------------------------------------------------------------------------------------------------ helpers


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: str) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / GiB, 2) if device == "cuda" else None


def _free(device: str) -> None:
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def _gpu_total_gib() -> float | None:
    import torch

    return torch.cuda.get_device_properties(0).total_memory / GiB if torch.cuda.is_available() else None


def _model(seed: str, plan: Plan, vocab_size: int | None) -> Any:
    import torch

    dtype = getattr(torch, plan.dtype)
    model = seed_models.build_model(
        seed, tiny=plan.tiny, dtype=dtype, device=plan.device, vocab_size=vocab_size
    )
    model.config.use_cache = True
    return model


def _prompts(seed: str, n: int) -> list[Any]:
    """`n` zero-shot prompts of embedded LeetCode problems in the seed model's own prompt style (the seed
    table: completion for gemma-7b, chat for the instruct models)."""
    from letitcode import prompts
    from letitcode.config import EvalConfig
    from letitcode.data.benchmarks import load_benchmark
    from letitcode.pipeline import select_problems

    problems = select_problems(load_benchmark("leetcode").problems, EvalConfig(limit=max(n, 3)))[:n]
    style = prompts.seed_style(seed_models.SEED_MODELS[seed]["hub_id"])
    return [prompts.render(p, "zero_shot", style, ()).prompt for p in problems]


# ------------------------------------------------------------------------------------------------ sections


def bench_generation(seed: str, model: Any, tokenizer: Any, plan: Plan) -> list[dict[str, Any]]:
    """tokens/s of static against paged batching at each batch size, through the project's local backend."""
    from letitcode.backends.base import DecodingParams, GenRequest
    from letitcode.backends.local import LocalBackend
    from letitcode.models import ResolvedModel

    resolved = ResolvedModel(seed, "", seed_models.SEED_MODELS[seed]["hub_id"], None, f"random-{seed}")
    params = DecodingParams(max_new_tokens=plan.max_new_tokens, temperature=0.0)
    rows = []
    texts = _prompts(seed, max(plan.batches))
    for batch in plan.batches:
        reqs = [GenRequest(texts[i % len(texts)], f"{seed}-{batch}-{i}", 0) for i in range(batch)]
        for mode in ("static", "paged"):
            row: dict[str, Any] = {"model": seed, "section": "generate", "mode": mode, "batch": batch}
            try:
                backend = LocalBackend(resolved, batch_size=batch, loaded=(model, tokenizer), mode=mode)
                row["device"] = backend.device
                # one short warm-up (kernels, allocator, CUDA graphs) that is not timed
                list(backend.generate(reqs[:1], DecodingParams(max_new_tokens=2, temperature=0.0)))
                _reset_peak(plan.device)
                _sync(plan.device)
                t0 = time.perf_counter()
                gens = [g for _, g in backend.generate(reqs, params)]
                _sync(plan.device)
                wall = time.perf_counter() - t0
                tokens = sum(g.n_tokens for g in gens)
                row.update(
                    tokens=tokens,
                    wall_s=round(wall, 3),
                    tokens_per_s=round(tokens / wall, 1),
                    peak_gib=_peak_gib(plan.device),
                    prompt_tokens=sum(len(backend.encode(r.prompt)) for r in reqs),
                )
            except Exception as e:  # a mode this model or device cannot run: say so in the table
                row["skipped"] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
            rows.append(row)
    return rows


def _train_batch(vocab: int, plan: Plan) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, vocab, (plan.train_batch, plan.train_length), generator=g).to(plan.device)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def _steps(model: Any, optimizer: Any, batch: dict[str, Any], plan: Plan, autocast: bool) -> list[float]:
    import torch

    times = []
    model.train()
    for _ in range(plan.steps):
        _sync(plan.device)
        t0 = time.perf_counter()
        with torch.autocast(plan.device, dtype=torch.bfloat16, enabled=autocast):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(plan.device)
        times.append(time.perf_counter() - t0)
        if not torch.isfinite(loss):
            raise RuntimeError(f"loss is {loss.item()}")
    model.eval()
    return times


def _step_row(seed: str, section: str, times: list[float], plan: Plan, **extra: Any) -> dict[str, Any]:
    timed = times[1:] or times
    return {
        "model": seed,
        "section": section,
        "s_per_step": round(sum(timed) / len(timed), 3),
        "first_step_s": round(times[0], 3),
        "peak_gib": _peak_gib(plan.device),
        "tokens_per_step": plan.train_batch * plan.train_length,
        **extra,
    }


def _lora_config() -> Any:
    from peft import LoraConfig

    # the seed recipes' LoRA: r 16, alpha 32, dropout 0.05, every linear layer
    return LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
    )


def bench_lora(seed: str, model: Any, plan: Plan) -> tuple[dict[str, Any], Any]:
    """One LoRA step (bf16 base on a GPU, gradient checkpointing as in the recipes); returns the base back."""
    import torch
    from peft import get_peft_model

    if plan.device == "cuda":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    peft_model = get_peft_model(model, _lora_config())
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=2e-4)
    _reset_peak(plan.device)
    times = _steps(peft_model, opt, _train_batch(model.config.vocab_size, plan), plan, autocast=False)
    trainable, total = peft_model.get_nb_trainable_parameters()
    row = _step_row(seed, "lora", times, plan, trainable=trainable, parameters=total)
    del opt
    base = peft_model.unload()
    if plan.device == "cuda":
        base.gradient_checkpointing_disable()
    _free(plan.device)
    return row, base


def full_plan(n_params: int, gpu_gib: float | None) -> tuple[str, str | None]:
    """How full fine-tuning fits: ('fp32' on a CPU | 'fp32+autocast' | 'bf16+adamw8bit+checkpointing' | 'skip',
    why) for a model of `n_params` on a GPU of `gpu_gib` GiB (None: the CPU)."""
    if gpu_gib is None:  # CPU (--tiny): fp32 master weights, as the full recipes keep them; no autocast
        return "fp32", None
    usable = 0.85 * gpu_gib  # activations at 2 x 1024 tokens, the CUDA context and allocator slack
    fp32_gib, bf16_gib = n_params * 16 / GiB, n_params * 6 / GiB
    if fp32_gib < usable - 8:
        return "fp32+autocast", None
    if bf16_gib < usable - 4:
        return "bf16+adamw8bit+checkpointing", (
            f"fp32 weights + grads + AdamW need {fp32_gib:.0f} GiB > {usable:.0f} GiB usable of {gpu_gib:.0f}: "
            "bf16 weights, 8-bit AdamW and gradient checkpointing instead (updates below bf16 resolution are "
            "lost; the full recipes keep fp32 master weights under ZeRO-3 across GPUs)"
        )
    return (
        "skip",
        f"even bf16 weights + 8-bit AdamW need {bf16_gib:.0f} GiB > {usable:.0f} GiB usable of {gpu_gib:.0f}",
    )


def bench_full(seed: str, model: Any, plan: Plan) -> dict[str, Any]:
    import torch

    n = sum(p.numel() for p in model.parameters())
    how, why = full_plan(n, _gpu_total_gib() if plan.device == "cuda" else None)
    if how == "skip":
        return {"model": seed, "section": "full", "skipped": why}
    if how.startswith("fp32"):
        model.float()
        opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
        if plan.device == "cuda":
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        autocast = plan.device == "cuda"
    else:
        import bitsandbytes as bnb

        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        opt = bnb.optim.AdamW8bit(model.parameters(), lr=2e-5)
        autocast = False
    for p in model.parameters():
        p.requires_grad_(True)
    _reset_peak(plan.device)
    times = _steps(model, opt, _train_batch(model.config.vocab_size, plan), plan, autocast=autocast)
    row = _step_row(seed, "full", times, plan, memory_plan=how, plan_note=why, parameters=n)
    del opt
    for p in model.parameters():
        p.grad = None
    if plan.device == "cuda":
        model.gradient_checkpointing_disable()
    _free(plan.device)
    return row


def quantize_nf4(model: Any, device: str) -> Any:
    """Every linear layer but the LM head to bitsandbytes NF4 (double quantization, bf16 compute), in place:
    what `from_pretrained(..., quantization_config=BitsAndBytesConfig(...))` builds, without weights on disk."""
    import bitsandbytes as bnb
    import torch

    compute = torch.bfloat16 if device == "cuda" else torch.float32
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if not isinstance(child, torch.nn.Linear) or full.endswith("lm_head"):
                continue
            q = bnb.nn.Linear4bit(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                compute_dtype=compute,
                compress_statistics=True,
                quant_type="nf4",
                device="meta",
            )
            w = child.weight.data.to(compute)  # stays on its device: Params4bit quantizes on .to(device)
            q.weight = bnb.nn.Params4bit(w, requires_grad=False, quant_type="nf4", compress_statistics=True)
            if child.bias is not None:
                q.bias = torch.nn.Parameter(child.bias.data.to(compute), requires_grad=False)
            q = q.to(device)  # quantizes here
            if not getattr(q.weight, "bnb_quantized", False):
                raise RuntimeError(f"bitsandbytes left {full} unquantized on {device}")
            setattr(module, child_name, q)
            del child
    _free(device)
    model.is_loaded_in_4bit = True
    return model


def bench_qlora(seed: str, model: Any, plan: Plan) -> dict[str, Any]:
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training

    try:
        import bitsandbytes  # noqa: F401

        model = quantize_nf4(model, plan.device)
    except Exception as e:  # no bitsandbytes, or no 4-bit backend for this device
        return {"model": seed, "section": "qlora", "skipped": f"bitsandbytes cannot quantize on {plan.device}: "
                f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}  # fmt: skip
    model = prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=plan.device == "cuda",
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )
    peft_model = get_peft_model(model, _lora_config())
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=2e-4)
    _reset_peak(plan.device)
    times = _steps(peft_model, opt, _train_batch(model.config.vocab_size, plan), plan, autocast=False)
    trainable, total = peft_model.get_nb_trainable_parameters()
    return _step_row(seed, "qlora", times, plan, trainable=trainable, parameters=total)


# ------------------------------------------------------------------------------------------------ the run


def run(plan: Plan) -> dict[str, Any]:
    import torch

    torch.manual_seed(0)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    # Budget per section, in shares of the whole: generation is the longest at the real shapes.
    share = {"generate": 0.16, "lora": 0.05, "full": 0.06, "qlora": 0.06}

    def over(section: str, seed: str) -> bool:
        spent = time.perf_counter() - started
        # what this and the remaining sections of the remaining models need, at their shares
        left = plan.budget_s - spent
        if left < share[section] * plan.budget_s * 0.5:
            rows.append({"model": seed, "section": section, "skipped": f"time budget: {spent:.0f} of "
                         f"{plan.budget_s:.0f} s spent"})  # fmt: skip
            return True
        return False

    for seed in plan.seeds:
        try:
            tok = seed_models.build_tokenizer(seed)
        except FileNotFoundError as e:
            raise SystemExit(f"error: {e}") from None
        vocab = seed_models.tiny_vocab_size(seed, tok) if plan.tiny else None
        t0 = time.perf_counter()
        model = _model(seed, plan, vocab)
        build_s = time.perf_counter() - t0
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{seed}: {type(model).__name__}, {n_params / 1e9:.2f}B parameters, built in {build_s:.1f} s",
              file=sys.stderr)  # fmt: skip
        if "generate" in plan.sections and not over("generate", seed):
            rows.extend(bench_generation(seed, model, tok, plan))
        if "lora" in plan.sections and not over("lora", seed):
            row, model = bench_lora(seed, model, plan)
            rows.append(row)
        if "full" in plan.sections and not over("full", seed):
            rows.append(bench_full(seed, model, plan))
            if plan.device == "cuda":
                model.to(torch.bfloat16)  # back to the dtype QLoRA quantizes from
        if "qlora" in plan.sections and not over("qlora", seed):
            rows.append(bench_qlora(seed, model, plan))
        del model
        _free(plan.device)
    return {"rows": rows, "wall_s": round(time.perf_counter() - started, 1)}


def manifest(plan: Plan, seed: int = 0) -> dict[str, Any]:
    import torch

    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    device = {
        "type": plan.device,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if plan.device == "cuda":
        p = torch.cuda.get_device_properties(0)
        device.update(name=p.name, memory_gib=round(p.total_memory / GiB, 1), cuda=torch.version.cuda)
    return {
        "kind": "bench/gpu_rehearsal",
        "tiny": plan.tiny,
        "device": device,
        "dtype": plan.dtype,
        "python": platform.python_version(),
        "libraries": versions,
        "seed": seed,
        "plan": {
            "batches": list(plan.batches),
            "max_new_tokens": plan.max_new_tokens,
            "train_batch": plan.train_batch,
            "train_length": plan.train_length,
            "steps": plan.steps,
            "budget_s": plan.budget_s,
        },
        "models": {s: seed_models.SEED_MODELS[s]["hub_id"] for s in plan.seeds},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    def f(v: Any, nd: int = 2) -> str:
        return "-" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))

    lines = ["generation (tokens/s; paged / static)",
             f"{'model':<24} {'batch':>5} {'static':>9} {'paged':>9} {'ratio':>7}  peak GiB (static/paged)"]  # fmt: skip
    gen = [r for r in rows if r["section"] == "generate"]
    skipped = [r for r in rows if r.get("skipped")]
    for model in dict.fromkeys(r["model"] for r in gen):
        for batch in dict.fromkeys(r["batch"] for r in gen if r["model"] == model):
            by = {r["mode"]: r for r in gen if r["model"] == model and r["batch"] == batch}
            s, p = by.get("static", {}), by.get("paged", {})
            ratio = (
                (p["tokens_per_s"] / s["tokens_per_s"])
                if s.get("tokens_per_s") and p.get("tokens_per_s")
                else None
            )
            lines.append(f"{model:<24} {batch:>5} {f(s.get('tokens_per_s'), 1):>9} {f(p.get('tokens_per_s'), 1):>9} "
                         f"{f(ratio):>7}  {f(s.get('peak_gib'))}/{f(p.get('peak_gib'))}")  # fmt: skip
    lines += ["", "training step (s/step after one warm-up; peak GiB; ratio of s/step to LoRA's)",
              f"{'model':<24} {'method':<6} {'s/step':>8} {'ratio':>7} {'peak GiB':>9}  plan"]  # fmt: skip
    for r in rows:
        if r["section"] in ("lora", "qlora", "full") and not r.get("skipped"):
            lora = next((x for x in rows if x["model"] == r["model"] and x["section"] == "lora" and "s_per_step" in x),
                        None)  # fmt: skip
            ratio = r["s_per_step"] / lora["s_per_step"] if lora and lora["s_per_step"] else None
            lines.append(f"{r['model']:<24} {r['section']:<6} {f(r['s_per_step'], 3):>8} {f(ratio):>7} "
                         f"{f(r['peak_gib']):>9}  {r.get('memory_plan') or ''}")  # fmt: skip
            if r.get("plan_note"):
                lines.append(f"{'':<24} note: {r['plan_note']}")
    if skipped:
        lines += ["", "skipped:"]
        lines += [f"  {r['model']} {r['section']} {r.get('mode', '')} {r.get('batch', '')}: {r['skipped']}".replace("  :", ":")
                  for r in skipped]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="small shapes on the CPU (what the tests run)")
    ap.add_argument("--cpu", action="store_true", help="stay on the CPU even where CUDA is available")
    ap.add_argument("--seeds", help=f"comma-separated subset of {', '.join(seed_models.SEEDS)}")
    ap.add_argument("--sections", help="comma-separated subset of generate, lora, full, qlora")
    ap.add_argument("--batches", help="generation batch sizes (default 1,32; --tiny 1,4)")
    ap.add_argument(
        "--max_new_tokens", type=int, help="tokens generated per sequence (default 128; --tiny 8)"
    )
    ap.add_argument(
        "--budget_s", type=float, default=480.0, help="time budget of the whole run (default 480)"
    )
    ap.add_argument("--json", help="write the rows and the manifest here")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    plan = make_plan(args)
    unknown = [s for s in plan.sections if s not in ("generate", "lora", "full", "qlora")]
    if unknown:
        raise SystemExit(f"error: --sections {unknown[0]!r} is not one of generate, lora, full, qlora")
    result = run(plan)
    out = {"manifest": manifest(plan), **result}
    print(format_table(result["rows"]))
    print(f"\n{'tiny shapes, ' if plan.tiny else ''}{plan.device}, {plan.dtype}; {result['wall_s']} s in all")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
