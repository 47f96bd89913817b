"""Fine-tune a code model on LeetCode problems with TRL's SFTTrainer (LoRA, QLoRA, DoRA, IA³ or full).

The entry point is `letitcode.commands.sft` (also `letitcode sft`); its docstring and `--help` say how.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python sft/train.py` without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from letitcode.cli import run_main
from letitcode.commands.sft import main

if __name__ == "__main__":
    run_main(main)
