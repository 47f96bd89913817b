"""In-context learning: a prompting strategy against a local model or an inference endpoint.

    python icl/run.py --strategy few_shot --backend local --model embedded --benchmark leetcode \
        --limit 30 --output-dir runs/icl-few-shot
    python icl/run.py --strategy rag --retriever dense --backend openai \
        --endpoint http://127.0.0.1:8000/v1 --model auto --benchmark humaneval --output-dir runs/icl-rag

Strategies: zero_shot, few_shot, cot, cot_few_shot, rag (`--k-shots`, `--retriever bm25|dense`,
`--exemplar-dataset`). Backends: local (transformers, continuous batching), tgi (huggingface_hub
InferenceClient), openai (the openai client: vLLM, `transformers serve`, OpenAI; key from OPENAI_API_KEY);
`--concurrency` requests in flight, `--request-timeout-s` each. The local backend loads on `--device auto`
(CUDA when available) with `--dtype`/`--attn_implementation auto`; `--serve vllm|transformers|CMD` starts a
server for `--model` and runs the strategy through it (see evaluate/run.py). Writes the same samples.jsonl,
results.json and manifest.json as evaluate/run.py, scored by the same sandbox, plus per-request latency
and generated tokens in every sample record. Generations are cached in D/generations.jsonl: rerunning the
same command after a crash re-asks nothing already answered.
"""

from __future__ import annotations

from letitcode.cli import parse_config


def main(argv: list[str] | None = None) -> int:
    from letitcode.config import EvalConfig
    from letitcode.pipeline import run_eval
    from letitcode.pipeline.outputs import format_table, wrote_line

    (cfg,) = parse_config((EvalConfig,), argv, description=__doc__)
    results = run_eval(cfg)
    print(format_table(results))
    print(wrote_line(cfg.output_dir))
    return 0
