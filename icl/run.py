"""In-context learning: a prompting strategy against a local model or an inference endpoint.

The entry point is `letitcode.commands.icl` (also `letitcode icl`); its docstring and `--help` say how.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python icl/run.py` without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from letitcode.cli import run_main
from letitcode.commands.icl import main

if __name__ == "__main__":
    run_main(main)
