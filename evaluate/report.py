"""Render finished runs as a Markdown report with PNG plots.

    python evaluate/report.py --runs runs/zero_shot runs/few_shot runs/lora --output-dir reports/study

Writes report.md (scores with BLEU/CodeBLEU/tests passed/pass@1 and 95% CIs, pass@1 by difficulty per
run, paired comparisons, error taxonomy with one example per category, code quality, latency and cost),
pass_by_difficulty.png and error_taxonomy.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python evaluate/report.py` without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from letitcode.cli import run_main
from letitcode.commands.report import main

if __name__ == "__main__":
    run_main(main)
