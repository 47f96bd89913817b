"""Publish the custom `evaluate` metrics in evaluate/metrics/ as Hub Spaces (Gradio, tagged evaluate/metric).

    HF_TOKEN=... python evaluate/push_metrics.py --org ORG [--metrics pass_at_k codebleu] [--private]

Each Space gets the metric script, its README card, a Gradio app and pinned requirements; afterwards
`evaluate.load("ORG/pass_at_k")` loads the metric from the Hub. `--stage-dir DIR` writes the Space folders
locally instead of pushing (to inspect them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from letitcode.cli import parse_config, run_main
from letitcode.errors import UserError

METRICS_DIR = Path(__file__).resolve().parent / "metrics"


@dataclass
class PushMetricsArguments:
    org: str | None = field(default=None, metadata={"help": "Hub user or organisation that owns the Spaces"})
    metrics: list[str] = field(
        default_factory=lambda: sorted(
            p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").exists()
        ),
        metadata={"help": "metric folder names under evaluate/metrics"},
    )
    private: bool = field(default=False, metadata={"help": "create the Spaces as private"})
    stage_dir: str | None = field(
        default=None, metadata={"help": "write the Space folders here instead of pushing"}
    )


def main() -> int:
    from letitcode.hub import publish as hub

    (args,) = parse_config((PushMetricsArguments,))
    dirs = []
    for name in args.metrics:
        d = METRICS_DIR / name
        if not (d / f"{name}.py").exists():
            raise UserError(f"unknown metric {name!r}: no {d / (name + '.py')}")
        dirs.append(d)
    if args.stage_dir:
        for d in dirs:
            print(f"staged {hub.stage_metric_space(d, Path(args.stage_dir) / d.name)}")
        return 0
    if not args.org:
        raise UserError(
            "pass --org ORG (the Hub owner of the metric Spaces), or --stage-dir DIR to stage locally"
        )
    for name, url in hub.push_metric_spaces(args.org, dirs, private=args.private).items():
        print(f"{name}: {url}")
    return 0


if __name__ == "__main__":
    run_main(main)
