"""Evaluate a model or adapter (by repo id, local folder or `embedded`) on a benchmark.

    python evaluate/run.py --model embedded --benchmark leetcode --limit 30 --output-dir runs/demo

On a GPU (letitcode/devices.py): `--device auto|cpu|cuda|cuda:N` (auto: CUDA when available; `cuda` without
one is a one-line error), `--dtype auto` (bf16 where the GPU has it natively, fp16 on T4/V100, fp32 on CPU),
`--attn_implementation auto` (flash_attention_2 when installed, else sdpa), `--quantization auto` (QLoRA
adapters on their 4-bit base). `--serve vllm|transformers|"CMD {model} {port}"` starts an OpenAI-compatible
server for the model, evaluates through it and stops it (letitcode/server.py):

    python evaluate/run.py --model meta-llama/Llama-3.1-8B-Instruct --serve vllm --benchmark humaneval --output-dir runs/v

Generation is cached in D/generations.jsonl, so a killed run resumes where it stopped. Writes
D/samples.jsonl, D/results.json, D/manifest.json and the result dataset folder D/dataset/.
`--push-results ORG/NAME` uploads that as (a config of) a Hub dataset repo; `--push-to-card REPO` writes the
scores into that model repo's card (model-index). Both need a Hub token, checked before anything runs.
Options come from the EvalConfig dataclass in letitcode/config.py (push flags from
letitcode.hub.publish.PushArguments); a YAML file given with --config sets defaults that the command line overrides.
"""

from __future__ import annotations

from letitcode.cli import parse_config


def main(argv: list[str] | None = None) -> int:
    from letitcode.config import EvalConfig
    from letitcode.hub import publish as hub
    from letitcode.pipeline import run_eval
    from letitcode.pipeline.outputs import format_table, wrote_line

    cfg, push = parse_config((EvalConfig, hub.PushArguments), argv, description=__doc__)
    if push.any:  # fail on a missing token now, not after an hour of generation
        hub.require_token("--push-results" if push.push_results else "--push-to-card")
    results = run_eval(cfg)
    print(format_table(results))
    print(wrote_line(cfg.output_dir))
    for url in hub.publish_run(cfg.output_dir, push):
        print(f"pushed: {url}")
    return 0
