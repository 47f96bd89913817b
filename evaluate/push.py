"""Publish finished runs: as configs of a Hub result dataset, and/or as scores in a model card.

The entry point is `letitcode.commands.push` (also `letitcode push`); its docstring and `--help` say how.
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
