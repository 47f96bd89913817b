"""Fine-tune a code model on LeetCode problems with TRL's SFTTrainer (LoRA, QLoRA, DoRA, IA³ or full).

    accelerate launch sft/train.py --model google/gemma-7b --method qlora   # sft/recipes/gemma-7b/qlora.yaml
    python sft/train.py --model embedded --method lora                      # CPU, minutes
    python sft/train.py --config sft/recipes/embedded/lora.yaml --max_steps 50 --eval_after
    python sft/train.py --model ORG/OTHER --recipe none                     # generic per-method defaults

Options: every `trl.SFTConfig` and `trl.ModelConfig` field, plus LetItCode's own (`--help`).
Precedence: defaults < per-method defaults < YAML recipe (`--config`, else sft/recipes/<model>/<method>.yaml)
< command line. Rerunning the same command with the same --output_dir resumes a checkpoint of the same training
configuration; a finished one trains zero steps; another configuration there needs --overwrite.
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
