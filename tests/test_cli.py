"""Bad input on the command line is one line naming the culprit, never a traceback (letitcode.cli)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

SCRIPTS = ["evaluate/run.py", "icl/run.py"]


def _run(script: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("script", SCRIPTS)
def test_missing_config_file_is_one_line(script: str, tmp_path: Path) -> None:
    _one_line_error(_run(script, "--config", str(tmp_path / "nope.yaml")), "nope.yaml", "No such file")


@pytest.mark.parametrize("script", SCRIPTS)
def test_mistyped_flag_names_it_and_suggests_the_right_one(script: str) -> None:
    _one_line_error(_run(script, "--limt", "2"), "--limt", "did you mean --limit?")


@pytest.mark.parametrize("script", SCRIPTS)
def test_unknown_yaml_key_is_one_line(script: str, tmp_path: Path) -> None:
    cfg = tmp_path / "plan.yaml"
    cfg.write_text("modle: embedded\n")
    _one_line_error(_run(script, f"--config={cfg}"), str(cfg), "'modle'", "did you mean --model?")


def test_bad_yaml_and_bad_values_are_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("limit: [\n")
    _one_line_error(_run("evaluate/run.py", "--config", str(cfg)), "not valid YAML")
    cfg.write_text("- a list\n")
    _one_line_error(_run("evaluate/run.py", "--config", str(cfg)), "must be a YAML mapping")
    _one_line_error(_run("evaluate/run.py", "--n", "abc"), "--n", "invalid int value")
    _one_line_error(_run("evaluate/run.py", "stray"), "'stray'")


def test_config_sets_defaults_that_the_command_line_overrides(tmp_path: Path) -> None:
    from letitcode.cli import parse_config
    from letitcode.config import EvalConfig

    cfg = tmp_path / "c.yaml"
    cfg.write_text("limit: 7\nseed: 3\nenv: {LETITCODE_TEST_VAR: 'yes'}\n")
    (parsed,) = parse_config((EvalConfig,), ["--config", str(cfg), "--seed", "5"])
    assert (parsed.limit, parsed.seed) == (7, 5)
    assert os.environ.pop("LETITCODE_TEST_VAR") == "yes"


def test_help_lists_config() -> None:
    proc = _run("evaluate/run.py", "--help")
    assert proc.returncode == 0 and "--config FILE" in proc.stdout


def test_every_option_has_help_and_one_help_section() -> None:
    import dataclasses

    from letitcode.config import EvalConfig, ScoreConfig

    for cls in (EvalConfig, ScoreConfig):
        names = [f.name for f in dataclasses.fields(cls)]
        assert all(f.metadata.get("help") for f in dataclasses.fields(cls)), cls
        grouped = [n for group in cls.ARGUMENT_GROUPS.values() for n in group]
        assert sorted(grouped) == sorted(names), cls  # each field in exactly one section


def test_help_shows_the_option_sections() -> None:
    from letitcode.cli import make_parser
    from letitcode.config import EvalConfig

    text = make_parser((EvalConfig,)).format_help()
    for title in EvalConfig.ARGUMENT_GROUPS:
        assert f"\n{title}:\n" in text
    assert text.index("\nsandbox:\n") < text.index("\n  --memory_mb") < text.index("\noutput:\n")
