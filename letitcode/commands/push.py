"""Publish finished runs: as configs of a Hub result dataset, and/or as scores in a model card.

    HF_TOKEN=... python evaluate/push.py --runs runs/zero_shot runs/lora --push-results ORG/letitcode-results
    HF_TOKEN=... python evaluate/push.py --runs runs/lora --push-to-card ORG/my-lora-adapter

The same as `evaluate/run.py ... --push-results / --push-to-card`, for runs that already finished (or
were scored with evaluate/score.py). `--merge-into DIR` merges the runs into a local leaderboard dataset
folder instead (no Hub, no token).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from letitcode.cli import parse_config
from letitcode.errors import UserError


@dataclass
class PushRunsArguments:
    runs: list[str] = field(
        default_factory=list, metadata={"help": "run output directories (D of evaluate/run.py)"}
    )
    merge_into: str | None = field(
        default=None, metadata={"help": "a local dataset folder to merge the runs into"}
    )


def main(argv: list[str] | None = None) -> int:
    from letitcode.hub import publish as hub
    from letitcode.results import dataset as results_dataset

    args, push = parse_config((PushRunsArguments, hub.PushArguments), argv, description=__doc__)
    if not args.runs:
        raise UserError(
            "pass --runs DIR [DIR ...]: the output directories of evaluate/run.py or evaluate/score.py"
        )
    if not (push.any or args.merge_into):
        raise UserError(
            "nothing to do: pass --push-results ORG/NAME, --push-to-card REPO or --merge-into DIR"
        )
    if push.any:
        hub.require_token("--push-results" if push.push_results else "--push-to-card")
    for run in args.runs:
        results_dataset.ensure_run_dataset(run)  # validates each run before anything is uploaded
    if args.merge_into:
        for run in args.runs:
            print(
                f"merged {', '.join(results_dataset.merge_into(args.merge_into, run))} into {args.merge_into}"
            )
    if push.push_results:
        print(f"pushed: {hub.push_results(push.push_results, list(args.runs), private=push.private)}")
    if push.push_to_card:
        for run in args.runs:
            print(f"card: {hub.push_to_card(push.push_to_card, run, results_repo=push.push_results)}")
    return 0
