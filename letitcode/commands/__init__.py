"""The `letitcode` console command: `letitcode <command> [options]`, as `trl sft` or `lm_eval`.

Each command is the `main` of the script that stays in the repository for `python <script>` and
`accelerate launch <script>`: both are thin callers of the same entry point, so the options, help and
outputs are the same either way.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Sequence

from letitcode.cli import run_main

# command -> (module with `main(argv)`, the script that calls the same main, one line of help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "eval": ("letitcode.commands.eval", "evaluate/run.py", "evaluate a model or adapter on a benchmark"),
    "score": (
        "letitcode.commands.score",
        "evaluate/score.py",
        "score completions you already have (no model)",
    ),
    "icl": (
        "letitcode.commands.icl",
        "icl/run.py",
        "in-context learning against a local model or an endpoint",
    ),
    "sft": (
        "letitcode.commands.sft",
        "sft/train.py",
        "fine-tune with TRL's SFTTrainer (LoRA, QLoRA, DoRA, full)",
    ),
    "report": (
        "letitcode.commands.report",
        "evaluate/report.py",
        "render finished runs as a Markdown report",
    ),
    "push": (
        "letitcode.commands.push",
        "evaluate/push.py",
        "publish finished runs to the Hub or a local board",
    ),
    "study": (
        "letitcode.study.runner",
        "experiments/study.py",
        "run the whole study from a plan, with its report",
    ),
    "leaderboard": (
        "letitcode.leaderboard_app",
        "leaderboard/app.py",
        "the Gradio leaderboard over result datasets",
    ),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}  ({script})" for name, (_, script, help_) in COMMANDS.items()]
    return (
        "usage: letitcode <command> [options]   (letitcode <command> --help for its options)\n\ncommands:\n"
        + ("\n".join(lines))
    )


def main(argv: Sequence[str] | None = None) -> int:
    from letitcode.errors import UserError

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"unknown command {name!r}{hint}; see letitcode --help")
    module = importlib.import_module(COMMANDS[name][0])
    sys.argv = [f"letitcode {name}", *rest]  # the command's --help and errors name it as typed
    return module.main(rest)


def console() -> None:
    """The `[project.scripts]` entry point."""
    run_main(main)
