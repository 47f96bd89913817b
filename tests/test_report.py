"""Markdown tables and PNG plots from finished runs."""

import subprocess
import sys
from pathlib import Path

import pytest

from letitcode.errors import UserError
from letitcode.results import report, tables

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, make_run):
    root = tmp_path_factory.mktemp("runs")
    make_run(root / "zs", approach="zero_shot", passed=[False, False, True, False, False, False] * 5)
    make_run(root / "lora", approach="lora", passed=[True, True, True, False, True, True] * 5)
    make_run(root / "emb", approach="few_shot", with_reference=False, benchmark="leetcode")
    return root


def test_tables_have_the_seed_shapes(runs):
    loaded = tables.load_runs([runs / "zs", runs / "lora", runs / "emb"])
    assert [r.label for r in loaded] == ["zero_shot", "lora", "few_shot"]
    table = tables.model_table(loaded)
    header = table.splitlines()[0]
    assert (
        header
        == "| run | model | benchmark | problems | BLEU | CodeBLEU | tests passed | pass@1 [95% CI] (n) |"
    )
    lora = next(line for line in table.splitlines() if line.startswith("| lora |"))
    assert "| 0.833 [" in lora and "(n=30)" in lora  # n beside every interval, no flag from 30 on
    emb = next(line for line in table.splitlines() if line.startswith("| few_shot |"))
    assert (
        emb.split("|")[5].strip() == "-" and emb.split("|")[6].strip() == "-"
    )  # no reference: no BLEU/CodeBLEU
    diff = tables.difficulty_table(loaded).splitlines()
    assert diff[0] == "| difficulty | zero_shot | lora | few_shot |"
    assert [line.split("|")[1].strip() for line in diff[2:]] == ["Easy", "Medium", "Hard", "All"]
    assert "(n=10, small n)" in diff[2]  # under 30 problems: flagged


def test_labels_are_made_unique():
    a = tables.Run(Path("a"), "", {}, {}, [], model="m1", approach="zs", benchmark="b")
    b = tables.Run(Path("b"), "", {}, {}, [], model="m2", approach="zs", benchmark="b")
    tables._auto_labels([a, b])
    assert (a.label, b.label) == ("m1 / zs", "m2 / zs")
    with pytest.raises(UserError, match="2 labels for 1 runs"):
        tables.load_runs(["x"], ["a", "b"])
    with pytest.raises(UserError, match="not a run directory"):
        tables.load_runs([str(REPO)])


def test_write_report_with_plots(runs, tmp_path):
    path = report.write_report([runs / "zs", runs / "lora"], tmp_path / "rep", title="Study")
    text = path.read_text()
    assert text.startswith("# Study")
    for section in (
        "## Scores",
        "## pass@1 by difficulty",
        "## Paired comparisons",
        "## Error taxonomy",
        "## Code quality",
        "## Latency and cost",
        "## Qualitative examples",
    ):
        assert section in text, section
    comparison = next(line for line in text.splitlines() if line.startswith("| zero_shot | lora |"))
    assert "mcnemar_exact" in comparison and "lora better" in comparison
    assert "`runtime_error:TypeError`" in text and "First failing test: `assert candidate(1, 2) == 3`" in text
    assert "![pass@1 by difficulty](pass_by_difficulty.png)" in text
    import matplotlib.image as mpimg

    for png in ("pass_by_difficulty.png", "error_taxonomy.png"):
        data = (tmp_path / "rep" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert mpimg.imread(tmp_path / "rep" / png).shape[0] > 100


def test_report_cli(runs, tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "evaluate" / "report.py"),
            "--runs",
            str(runs / "zs"),
            str(runs / "emb"),
            "--output-dir",
            str(out),
            "--labels",
            "A",
            "B",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    text = (out / "report.md").read_text()
    assert "| difficulty | A | B |" in text
    assert "Paired comparisons" not in text  # different benchmarks are not compared
    proc = subprocess.run(
        [sys.executable, str(REPO / "evaluate" / "report.py")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: pass --runs")
