"""Execute and score given completions in the sandbox (no model).

The entry point is `letitcode.commands.score` (also `letitcode score`); its docstring and `--help` say how.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python evaluate/score.py` without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from letitcode.cli import run_main
from letitcode.commands.score import main

if __name__ == "__main__":
    run_main(main)
