"""Shared entry-point plumbing for the thin scripts: one-line errors, config parsing."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from letitcode.errors import UserError


def run_main(main: Callable[[], Any]) -> None:
    """Run a script's main; a UserError becomes one line on stderr and exit status 2, no traceback."""
    try:
        code = main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the cache", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def parse_config(dataclass_types: tuple[type, ...], argv: list[str] | None = None) -> tuple[Any, ...]:
    """defaults < YAML (--config FILE) < command line, with TRL's own parser."""
    from trl import TrlParser

    parser = TrlParser(dataclass_types)
    return tuple(parser.parse_args_and_config(args=argv))
