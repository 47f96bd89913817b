"""Run the LetItCode study from a plan and write its report (report.md + PNGs) to --output-dir.

    python experiments/study.py --preset micro --output-dir runs/study-micro          # minutes, every section
    python experiments/study.py --preset embedded-cpu --output-dir runs/study         # about 40 minutes on 2 cores
    python experiments/study.py --preset llama-3.1-8b-instruct --output-dir runs/llama  # GPU + Hub

Presets are YAML plans in experiments/plans/ (package data: letitcode/templates/plans/), or pass --plan FILE.
Rerunning the same command resumes: every finished training or evaluation is skipped. See letitcode/study/plan.py
for the plan format and letitcode/study/layout.py for the output layout.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python experiments/study.py` without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from letitcode.cli import run_main
from letitcode.study.runner import main

if __name__ == "__main__":
    run_main(main)
