"""Shared entry-point plumbing for the thin scripts: one-line errors and config parsing, in one place.

Every script parses its options with `parse_config` (TRL's `TrlParser` over dataclasses: defaults < YAML
`--config FILE` < command line) and runs its `main` through `run_main`, so a missing config file, a
mistyped flag or an unknown YAML key is one line naming the culprit, never a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Callable, Sequence
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


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """' (did you mean --x?)' for the closest known option, or ''."""
    close = difflib.get_close_matches(name.lstrip("-").replace("-", "_"), list(known), n=1, cutoff=0.6)
    return f" (did you mean --{close[0]}?)" if close else ""


def split_config_flag(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the `--config FILE` / `--config=FILE` value, argv without it); the last one given wins."""
    path, rest, i = None, [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--config":
            if i + 1 >= len(argv):
                raise UserError("--config needs a file: --config FILE.yaml")
            path, i = argv[i + 1], i + 2
            continue
        if a.startswith("--config="):
            path = a.split("=", 1)[1]
        else:
            rest.append(a)
        i += 1
    return path, rest


def read_yaml_config(path: str) -> dict[str, Any]:
    """A YAML mapping of option: value, or a one-line UserError naming the file."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise UserError(f"--config {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise UserError(f"--config {path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(
            f"--config {path}: must be a YAML mapping of option: value, not {type(data).__name__}"
        )
    return data


def _dests(parser: argparse.ArgumentParser) -> list[str]:
    return [a.dest for a in parser._actions if a.dest not in (argparse.SUPPRESS, "help")]


def make_parser(
    dataclass_types: tuple[type, ...], *, prog: str | None = None, description: str | None = None
) -> Any:
    """TRL's parser over the dataclasses, with `--config` listed in `--help`."""
    from trl import TrlParser

    kwargs: dict[str, Any] = {"description": description}
    if prog:
        kwargs["prog"] = prog
    if description:
        kwargs["formatter_class"] = _HelpFormatter
    parser = TrlParser(dataclass_types, **kwargs)
    for dtype in dataclass_types:
        group_options(parser, getattr(dtype, "ARGUMENT_GROUPS", {}))

    def error(message: str) -> None:  # argparse prints the whole usage block; one line is enough
        raise UserError(f"{message}; see --help")

    parser.error = error  # type: ignore[method-assign]
    # Handled before parsing (split_config_flag); declared here only so --help lists it.
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="a YAML file of option: value defaults; the command line overrides them",
    )
    return parser


def group_options(parser: argparse.ArgumentParser, groups: dict[str, Sequence[str]]) -> None:
    """Show a dataclass's options under titled --help sections (its `ARGUMENT_GROUPS`: title -> field names).
    Only the help changes: argparse parses every option through the parser itself, whatever its group."""
    for title, names in groups.items():
        group = parser.add_argument_group(title)
        for action in [a for a in parser._optionals._group_actions if a.dest in names]:
            parser._optionals._group_actions.remove(action)
            group._group_actions.append(action)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown next to each option, and the script's docstring kept as written."""


def parse_config(
    dataclass_types: tuple[type, ...],
    argv: list[str] | None = None,
    *,
    prog: str | None = None,
    description: str | None = None,
) -> tuple[Any, ...]:
    """defaults < YAML (--config FILE) < command line, with TRL's own parser; bad input is a UserError."""
    parser = make_parser(dataclass_types, prog=prog, description=description)
    path, args = split_config_flag(list(sys.argv[1:] if argv is None else argv))
    known = _dests(parser)
    if path is not None:
        config = read_yaml_config(path)
        env = config.pop("env", {})
        if not isinstance(env, dict):
            raise UserError(f"--config {path}: `env` must be a mapping of VARIABLE: value")
        os.environ.update({str(k): str(v) for k, v in env.items()})  # as TrlParser does
        unknown = [k for k in config if k not in known]
        if unknown:
            raise UserError(
                f"--config {path}: unknown key {unknown[0]!r}{did_you_mean(str(unknown[0]), known)}"
            )
        parser.set_defaults_with_config(**config)
    try:
        *outputs, remaining = parser.parse_args_into_dataclasses(args=args, return_remaining_strings=True)
    except ValueError as e:  # a dataclass __post_init__ refusing a value, a bad Literal/Enum value
        raise UserError(str(e).splitlines()[0]) from None
    flags = [r for r in remaining if r.startswith("-")]
    if flags:
        raise UserError(f"unknown option {flags[0]}{did_you_mean(flags[0], known)}; see --help")
    if remaining:
        raise UserError(f"unexpected argument {remaining[0]!r}; options take the form --name value")
    return tuple(outputs)
