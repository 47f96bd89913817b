"""Evaluate a model or adapter (by repo id, local folder or `embedded`) on a benchmark.

    python evaluate/run.py --model embedded --benchmark leetcode --limit 30 --output-dir runs/demo

Generation is cached in D/generations.jsonl, so a killed run resumes where it stopped. Writes
D/samples.jsonl, D/results.json and D/manifest.json. Options come from the EvalConfig dataclass in
letitcode/pipeline.py; a YAML file given with --config sets defaults that the command line overrides.
"""

from __future__ import annotations

from letitcode.cli import parse_config, run_main


def main() -> int:
    from letitcode.pipeline import EvalConfig, format_table, run_eval

    (cfg,) = parse_config((EvalConfig,))
    results = run_eval(cfg)
    print(format_table(results))
    print(f"wrote {cfg.output_dir}/samples.jsonl, results.json and manifest.json")
    return 0


if __name__ == "__main__":
    run_main(main)
