"""Publish finished runs: as configs of a Hub result dataset, and/or as scores in a model card.

    HF_TOKEN=... python evaluate/push.py --runs runs/zero_shot runs/lora --push-results ORG/letitcode-results
    HF_TOKEN=... python evaluate/push.py --runs runs/lora --push-to-card ORG/my-lora-adapter

The same as `evaluate/run.py ... --push-results / --push-to-card`, for runs that already finished (or
were scored with evaluate/score.py). `--merge-into DIR` merges the runs into a local leaderboard dataset
folder instead (no Hub, no token).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python evaluate/push.py` without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from letitcode.cli import run_main
from letitcode.commands.push import main

if __name__ == "__main__":
    run_main(main)
