"""The `letitcode` console command: every subcommand is the same entry point as its script, and the
package installs into a fresh virtual environment with its declared dependencies and provides the command."""

from __future__ import annotations

import importlib
import json
import os
import runpy
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import REPO

from letitcode import commands
from letitcode.errors import UserError


@pytest.mark.parametrize("name", list(commands.COMMANDS))
def test_each_command_is_its_scripts_entry_point_and_has_help(name: str, capsys) -> None:
    module, script, _ = commands.COMMANDS[name]
    entry = importlib.import_module(module)
    if Path(entry.__file__).resolve() != (REPO / script).resolve():  # the leaderboard is the app file itself
        script_main = runpy.run_path(str(REPO / script), run_name="not_main")["main"]
        assert script_main is entry.main  # one entry point, two callers
    with pytest.raises(SystemExit) as done:
        commands.main([name, "--help"])
    assert done.value.code == 0
    assert f"letitcode {name}" in capsys.readouterr().out


def test_top_level_help_and_a_mistyped_command(capsys) -> None:
    assert commands.main([]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in commands.COMMANDS)
    with pytest.raises(UserError, match=r"unknown command 'evl' \(did you mean eval\?\)"):
        commands.main(["evl"])


@pytest.mark.slow
def test_pip_install_into_a_fresh_venv_provides_the_command(tmp_path: Path) -> None:
    """A fresh venv sees this environment's packages through a .pth file (no download), so `pip install .`
    resolves every declared dependency against the pinned versions; `pip check` then finds nothing broken."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "pinned-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    # Python 3.11's venv brings an old setuptools of its own, which would shadow the pinned build backend
    subprocess.run([py, "-m", "pip", "uninstall", "-q", "-y", "setuptools"], env=env, timeout=300)
    report = tmp_path / "report.json"
    pip = [py, "-m", "pip", "install", "--no-build-isolation", "--report", str(report), str(REPO)]
    proc = subprocess.run(pip, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    installed = [i["metadata"]["name"] for i in json.loads(report.read_text())["install"]]
    assert installed == ["letitcode"], installed  # every declared dependency was already satisfied
    check = subprocess.run([py, "-m", "pip", "check"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert "letitcode" not in check.stdout, check.stdout  # no requirement of ours is missing or conflicting
    exe = venv / "bin" / "letitcode"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0 and "leaderboard" in out.stdout, out.stderr
    where = subprocess.run(
        [py, "-c", "import letitcode.leaderboard_app as m, letitcode; print(letitcode.__file__, m.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert where.stdout.startswith(str(venv)) and str(REPO) not in where.stdout, where.stdout + where.stderr
    ev = subprocess.run(
        [exe, "eval", "--help"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert ev.returncode == 0 and "--prompt_style" in ev.stdout, ev.stderr[-2000:]
    # recipes and study plans are package data: an install without the checkout finds them
    sft = subprocess.run(
        [exe, "sft", "--model", "embedded", "--method", "lora", "--dry_run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert sft.returncode == 0 and "templates/recipes/embedded/lora.yaml" in sft.stdout, (
        sft.stdout + sft.stderr
    )
    plan = subprocess.run(
        [exe, "study", "--preset", "micro", "--output-dir", str(tmp_path / "study"), "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert plan.returncode == 0 and "micro" in plan.stdout, plan.stdout[-2000:] + plan.stderr[-2000:]
