"""Render finished runs as a Markdown report with PNG plots.

    python evaluate/report.py --runs runs/zero_shot runs/few_shot runs/lora --output-dir reports/study

Writes report.md (scores with BLEU/CodeBLEU/tests passed/pass@1 and 95% CIs, pass@1 by difficulty per
run, paired comparisons, error taxonomy with one example per category, code quality, latency and cost),
pass_by_difficulty.png and error_taxonomy.png.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from letitcode.cli import parse_config
from letitcode.errors import UserError


@dataclass
class ReportArguments:
    runs: list[str] = field(default_factory=list, metadata={"help": "run output directories"})
    output_dir: str = field(default="runs/report", metadata={"help": "where report.md and the PNGs go"})
    labels: list[str] | None = field(
        default=None, metadata={"help": "one column label per run (default: the approach)"}
    )
    title: str = field(default="LetItCode results", metadata={"help": "the report's heading"})


def main(argv: list[str] | None = None) -> int:
    from letitcode.results.report import write_report

    (args,) = parse_config((ReportArguments,), argv, description=__doc__)
    if not args.runs:
        raise UserError(
            "pass --runs DIR [DIR ...]: the output directories of evaluate/run.py or evaluate/score.py"
        )
    path = write_report(args.runs, args.output_dir, labels=args.labels, title=args.title)
    print(f"wrote {path.parent}/: report.md, pass_by_difficulty.png, error_taxonomy.png")
    return 0
