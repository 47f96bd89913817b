"""Evaluate a model or adapter (by repo id, local folder or `embedded`) on a benchmark.

    python evaluate/run.py --model embedded --benchmark leetcode --limit 30 --output-dir runs/demo

Generation is cached in D/generations.jsonl, so a killed run resumes where it stopped. Writes
D/samples.jsonl, D/results.json, D/manifest.json and the result dataset folder D/dataset/.
`--push-results ORG/NAME` uploads that as (a config of) a Hub dataset repo; `--push-to-card REPO` writes the
scores into that model repo's card (model-index). Both need a Hub token, checked before anything runs.
Options come from the EvalConfig dataclass in letitcode/pipeline.py (push flags from
letitcode.hub.PushArguments); a YAML file given with --config sets defaults that the command line overrides.
"""

from __future__ import annotations

from letitcode.cli import parse_config, run_main


def main() -> int:
    from letitcode import hub
    from letitcode.pipeline import EvalConfig, format_table, run_eval, wrote_line

    cfg, push = parse_config((EvalConfig, hub.PushArguments))
    if push.any:  # fail on a missing token now, not after an hour of generation
        hub.require_token("--push-results" if push.push_results else "--push-to-card")
    results = run_eval(cfg)
    print(format_table(results))
    print(wrote_line(cfg.output_dir))
    for url in hub.publish_run(cfg.output_dir, push):
        print(f"pushed: {url}")
    return 0


if __name__ == "__main__":
    run_main(main)
