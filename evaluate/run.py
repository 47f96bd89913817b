"""Evaluate a model or adapter (by repo id, local folder or `embedded`) on a benchmark.

The entry point is `letitcode.commands.eval` (also `letitcode eval`); its docstring and `--help` say how.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python evaluate/run.py` without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from letitcode.cli import run_main
from letitcode.commands.eval import main

if __name__ == "__main__":
    run_main(main)
