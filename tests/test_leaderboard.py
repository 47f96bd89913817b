"""Leaderboard app (leaderboard/app.py): reading result datasets, tables, filters, and a browser test.

The fixture result datasets are built at test time with the project's own writers
(`letitcode.results.dataset`), a few KB: one run folder, and one result-dataset folder holding three runs.
Every score in them is computed from crafted per-sample records, never typed in.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "leaderboard" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
DIFFICULTY = {f"p{i}": d for i, d in enumerate(["Easy"] * 3 + ["Medium"] * 3 + ["Hard"] * 2)}
FAILS = ["wrong_answer", "runtime_error", "syntax_error", "timeout"]  # cycled over the failing samples
SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
LORA = "letitcode-test/smollm2-135m-lora"

# (model spec, Hub id or None, benchmark, approach, problems passed out of 8, where it is written)
RUNS = [
    (SMOL, SMOL, "leetcode", "zero-shot", 1, "run"),
    (SMOL, SMOL, "leetcode", "few-shot", 4, "board"),
    (LORA, LORA, "leetcode", "lora", 6, "board"),
    ("/models/smollm2-local", None, "humaneval", "zero-shot", 2, "board"),
]


def _load_app():
    spec = importlib.util.spec_from_file_location("leaderboard_app", APP)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


app = _load_app()


def _records(n_passed: int) -> list[dict]:
    """One greedy sample per problem; the first `n_passed` problems of an interleaved order pass."""
    order = ["p0", "p3", "p6", "p1", "p4", "p7", "p2", "p5"]
    out = []
    for i, task in enumerate(order):
        passed = i < n_passed
        status = "passed" if passed else FAILS[i % len(FAILS)]
        out.append(
            {
                "task_id": task,
                "sample_index": 0,
                "completion": f"def f(x):\n    return x + {i}\n",
                "code": f"def f(x):\n    return x + {i}\n",
                "passed": passed,
                "status": status,
                "error": None if passed else f"{status} on test 1",
                "exception_type": "TypeError" if status == "runtime_error" else None,
                "tests_passed": 3 if passed else 1,
                "tests_total": 3,
                "difficulty": DIFFICULTY[task],
                "latency_s": 0.5 + i / 10,
                "n_tokens": 40 + i,
            }
        )
    return out


def _write_run(
    run_dir: Path, spec: str, hub_id: str | None, bench: str, approach: str, n_passed: int
) -> None:
    """A run folder as evaluate/run.py leaves it: samples.jsonl, results.json, manifest.json, dataset/."""
    from letitcode.results import dataset as results_dataset
    from letitcode.scoring import refmetrics, stats, taxonomy
    from letitcode.scoring import summary as metrics

    recs = _records(n_passed)
    results = metrics.summarize(recs)
    results["ci"] = stats.pass_at_k_cis(recs, [1])
    results["error_taxonomy"] = taxonomy.taxonomy(recs)
    results.update(metrics.latency_summary(recs))
    results["tokens_per_solved"] = metrics.tokens_per_solved(recs)
    if bench == "humaneval":  # a benchmark with references: BLEU/CodeBLEU against a fixed solution
        corpus = refmetrics.corpus_metrics([(r["code"], "def f(x):\n    return x + 1\n") for r in recs])
        results["bleu"], results["codebleu"] = corpus["bleu"], corpus["codebleu"]
    manifest = {
        "model": {"spec": spec, "hub_id": hub_id, "is_adapter": approach == "lora"},
        "backend": {"backend": "local", "dtype": "bfloat16", "n_params": 134_515_008},
        "prompt": {"strategy": approach, "style": "chat"},
        "benchmark": {"name": bench, "split": "test"},
        "approach": approach,
        "created": "2025-01-01T00:00:00Z",
    }
    run_dir.mkdir(parents=True)
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (run_dir / "results.json").write_text(json.dumps(results))
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    results_dataset.write_run_dataset(run_dir / "dataset", recs, results, manifest)


def make_results(root: Path) -> dict[str, Path]:
    """root/run: one run's output folder; root/board: a result-dataset folder with three runs merged in."""
    from letitcode.results import dataset as results_dataset

    paths = {"run": root / "run", "board": root / "board"}
    for i, (spec, hub_id, bench, approach, n_passed, where) in enumerate(RUNS):
        run_dir = paths["run"] if where == "run" else root / "runs" / str(i)
        _write_run(run_dir, spec, hub_id, bench, approach, n_passed)
        if where == "board":
            results_dataset.merge_into(paths["board"], run_dir, title="LetItCode test leaderboard")
    return paths


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def board(results: dict[str, Path]) -> pd.DataFrame:
    return app.load_leaderboard([str(results["run"]), str(results["board"])])


# ---------------------------------------------------------------- loading


def test_loads_a_run_folder(results: dict[str, Path]) -> None:
    df = app.load_leaderboard([str(results["run"])])
    assert len(df) == 1
    row = df.iloc[0]
    assert (row["model"], row["model_repo"], row["approach"], row["benchmark"]) == (
        SMOL,
        SMOL,
        "zero-shot",
        "leetcode",
    )
    assert row["pass@1"] == pytest.approx(1 / 8)
    assert row["pass@1_ci_low"] <= row["pass@1"] <= row["pass@1_ci_high"]
    # the manifest link points at a file that is there and is this run's manifest
    manifest = Path(row["manifest_file"])
    assert row["manifest_url"] == f"gradio_api/file={manifest}"
    assert json.loads(manifest.read_text())["approach"] == "zero-shot"
    # per-difficulty intervals come with the summary row and bracket the per-difficulty pass@1
    for level, n in (("Easy", 3), ("Medium", 3), ("Hard", 2)):
        assert row[f"{level}_ci_low"] <= row[level] <= row[f"{level}_ci_high"]
        assert row[f"{level}_n"] == n
    assert (row["model_type"], row["parameters"], row["precision"]) == ("instruct", 134_515_008, "bfloat16")


def test_loads_a_dataset_folder_and_several_sources(results: dict[str, Path], board: pd.DataFrame) -> None:
    only_board = app.load_leaderboard([str(results["board"])])
    assert sorted(only_board["approach"]) == ["few-shot", "lora", "zero-shot"]
    assert len(board) == 4 and board["key"].is_unique
    assert set(board["source"]) == {str(results["run"]), str(results["board"])}
    by_approach = board.set_index(["approach", "benchmark"])["pass@1"]
    assert by_approach[("lora", "leetcode")] == pytest.approx(6 / 8)
    assert by_approach[("zero-shot", "humaneval")] == pytest.approx(2 / 8)


def test_per_difficulty_ci_is_the_projects_interval(board: pd.DataFrame) -> None:
    """The leaderboard shows the interval the run was scored with (Wilson here: one sample a problem),
    never a recomputed percentile bootstrap, which claims [0, 0] or [1, 1] for a small all-or-nothing level."""
    from letitcode.scoring.stats import pass_at_k_cis, wilson_ci

    row = board[board["approach"] == "few-shot"].iloc[0]
    expected = pass_at_k_cis(_records(4), [1])["by_difficulty"]["Medium"]["pass@1"]
    assert [row["Medium_ci_low"], row["Medium_ci_high"]] == pytest.approx(expected)
    zero = board[(board["approach"] == "zero-shot") & (board["benchmark"] == "leetcode")].iloc[0]
    assert zero["Hard"] == 0 and zero["Hard_ci_high"] == pytest.approx(wilson_ci(0, 2)[1])
    assert zero["Hard_ci_high"] > 0.5
    assert "Wilson" in zero["ci_method"]


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Space folder as it is pushed: leaderboard/ plus the letitcode package's source beside app.py."""
    from letitcode.hub import publish

    return publish.stage_leaderboard_space(tmp_path_factory.mktemp("space"))


def _space_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only what the folder holds
    return {**env, "HF_HUB_OFFLINE": "1"}


def test_staged_space_reads_with_its_own_letitcode(
    results: dict[str, Path], board: pd.DataFrame, space
) -> None:
    """On a Space, app.py imports the letitcode copy beside it, and reading a board needs none of the
    training stack (torch, transformers, datasets): leaderboard/requirements.txt covers what it imports."""
    assert {"app.py", "README.md", "requirements.txt"} <= {p.name for p in space.iterdir()}
    assert (space / "letitcode" / "results" / "load.py").is_file()
    assert not list(space.rglob("__pycache__")) and not (space / "letitcode" / "leaderboard_app.py").exists()
    code = (
        "import json, runpy, sys; sys.path.insert(0, '.'); m = runpy.run_path('app.py'); import letitcode; "
        "df = m['load_leaderboard'](sys.argv[1:]); heavy = ('torch', 'transformers', 'datasets', 'scipy'); "
        "print(json.dumps({'file': letitcode.__file__, 'pass': sorted(df['pass@1']), "
        "'heavy': [n for n in heavy if n in sys.modules]}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(results["run"]), str(results["board"])],
        capture_output=True,
        text=True,
        cwd=space,
        env=_space_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(out["file"]).resolve() == (space / "letitcode" / "__init__.py").resolve()
    assert out["pass"] == pytest.approx(sorted(board["pass@1"])) and out["heavy"] == []


def test_loads_a_hub_dataset_id_with_revision(results: dict[str, Path], monkeypatch) -> None:
    """Only the network boundary is faked: snapshot_download hands back a local copy of the dataset."""
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(results["board"])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    df = app.load_leaderboard(["letitcode-test/board@v1"])
    assert calls == [
        (
            "letitcode-test/board",
            {
                "repo_type": "dataset",
                "revision": "v1",
                "allow_patterns": calls[0][1]["allow_patterns"],
            },
        )
    ]
    assert "data/*/summary.parquet" in calls[0][1]["allow_patterns"]
    row = df[df["approach"] == "lora"].iloc[0]
    assert row["manifest_url"] == (
        f"https://huggingface.co/datasets/letitcode-test/board/blob/v1/data/{row['config']}/manifest.json"
    )
    assert row["manifest_file"] == ""  # nothing local to serve: the link goes to the Hub


def test_loads_an_older_run_folder_without_dataset(results: dict[str, Path], tmp_path: Path) -> None:
    """A run written before result datasets existed: the library summarises its results.json."""
    old = tmp_path / "old-run"
    old.mkdir()
    for name in ("samples.jsonl", "results.json", "manifest.json"):
        (old / name).write_text((results["run"] / name).read_text())
    row = app.load_leaderboard([str(old)]).iloc[0]
    new = app.load_leaderboard([str(results["run"])]).iloc[0]
    for col in ("config", "pass@1", "pass@1_ci_low", "Easy", "Easy_ci_low", "Hard_ci_high"):
        assert row[col] == pytest.approx(new[col]) if isinstance(new[col], float) else row[col] == new[col]
    assert row["manifest_file"] == str(old / "manifest.json")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("does/not/exist/here", "does not exist"),
        ("nope", "does not exist"),
        ("someorg/missing-results", "cannot reach result dataset 'someorg/missing-results'"),
        ("someorg/missing-results@v1", "Pass a local result-dataset folder"),
    ],
)
def test_unknown_source_is_a_clear_error(spec: str, expected: str) -> None:
    with pytest.raises(app.UserError, match=expected) as err:
        app.load_leaderboard([spec])
    assert spec in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("spec", ["./runs/x", "runs/demo/dataset", "tests/not-there", "org/name/"])
def test_a_local_looking_path_is_never_tried_as_a_hub_id(spec: str, monkeypatch) -> None:
    import huggingface_hub

    def no_download(*args, **kwargs):
        raise AssertionError(f"{spec!r} was tried as a Hub id")

    monkeypatch.chdir(REPO)  # `tests/` is a folder here
    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_download)
    with pytest.raises(app.UserError, match="not tried as a Hub id"):
        app.load_leaderboard([spec])


def test_folder_without_results_and_file_are_clear_errors(results: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(app.UserError, match="holds no result dataset"):
        app.load_leaderboard([str(tmp_path)])
    with pytest.raises(app.UserError, match="is a file"):
        app.load_leaderboard([str(results["run"] / "results.json")])
    with pytest.raises(app.UserError, match=app.ENV_VAR):
        app.load_leaderboard([])


def test_sources_default_to_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(app.ENV_VAR, "org/a, ./runs/b  org/c@v2")
    assert app.parse_args([]).results == ["org/a", "./runs/b", "org/c@v2"]
    assert app.parse_args(["--results", "x", "--port", "7000"]).results == ["x"]


@pytest.mark.parametrize("where", ["script", "space"])
def test_cli_error_is_one_line(tmp_path: Path, where: str, request: pytest.FixtureRequest) -> None:
    """Run as a script in the repo, and as the staged Space runs it (its own letitcode beside app.py)."""
    app_file = request.getfixturevalue("space") / "app.py" if where == "space" else APP
    env = _space_env() if where == "space" else {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, str(app_file), "--results", str(tmp_path / "absent")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=app_file.parent)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().startswith("error: --results") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- tables and plots


def test_overall_table_is_ranked_with_cis_and_links(board: pd.DataFrame) -> None:
    t = app.overall_table(board)
    assert list(t["pass@1"]) == sorted(t["pass@1"], reverse=True)
    top = t.iloc[0]
    assert top["approach"] == "lora" and top["model"] == f"[{LORA}](https://huggingface.co/{LORA})"
    lo, hi = (float(x) for x in top["pass@1 95% CI"].split("]")[0].strip("[").split(", "))
    assert lo <= top["pass@1"] <= hi and top["pass@1 95% CI"].endswith("(n=8, small n)")
    # Easy/Medium/Hard in the main table, each with its interval and n
    assert top["Easy"].startswith(f"{board.set_index('approach').at['lora', 'Easy']:.3f} [")
    assert top["Hard"].endswith("(n=2, small n)")
    assert (top["type"], top["parameters"], top["precision"]) == ("adapter", 134_515_008, "bfloat16")
    assert top["manifest"].startswith("[manifest](gradio_api/file=") and top["run"] in set(board["key"])
    local = t[t["benchmark"] == "humaneval"].iloc[0]
    assert local["model"] == "smollm2-local"  # no Hub repo: plain text, no link
    assert local["BLEU"] is not None and local["CodeBLEU"] is not None
    assert pd.isna(top["BLEU"])  # no reference solutions: absent, never 0


def test_filters(board: pd.DataFrame) -> None:
    assert sorted(app.filter_rows(board, ["zero-shot"])["benchmark"]) == ["humaneval", "leetcode"]
    assert list(app.filter_rows(board, models=[LORA])["approach"]) == ["lora"]
    assert list(app.filter_rows(board, benchmarks=["humaneval"])["approach"]) == ["zero-shot"]
    assert len(app.filter_rows(board, [], None, None)) == 0  # nothing ticked, nothing shown
    assert len(app.filter_rows(board, None, [], None)) == 4  # the model dropdown starts empty: all models
    both = app.filter_rows(board, ["few-shot", "zero-shot"], [SMOL], ["leetcode"])
    assert sorted(both["approach"]) == ["few-shot", "zero-shot"]


def test_search_type_filter_and_column_choice(board: pd.DataFrame) -> None:
    assert list(app.filter_rows(board, search="LORA")["approach"]) == ["lora"]
    assert sorted(app.filter_rows(board, search="smollm2 humaneval")["model"]) == ["smollm2-local"]
    assert len(app.filter_rows(board, search="no-such-model")) == 0
    assert list(app.filter_rows(board, types=["adapter"])["approach"]) == ["lora"]
    assert len(app.filter_rows(board, types=["instruct"])) == 3
    t = app.overall_table(board)
    picked = app.choose_columns(t, ["pass@1", "Hard"])
    assert list(picked.columns) == ["model", "pass@1", "Hard", "run"]  # model and run always stay
    assert list(app.choose_columns(t, None).columns) == list(t.columns)


def test_numbers_are_formatted_uniformly(board: pd.DataFrame) -> None:
    html = app.styled(app.overall_table(board)).to_html()
    assert ">0.125<" in html and ">0.750<" in html  # rates: three decimals, never 0.75 beside 0.125
    assert ">135M<" in html  # parameters, readable
    assert "nan" not in html.lower()  # an absent metric is "-"


def test_difficulty_and_benchmark_tables(board: pd.DataFrame) -> None:
    d = app.difficulty_table(board)
    assert {"Easy", "Easy 95% CI", "Medium", "Hard 95% CI"} <= set(d.columns)
    assert all(ci.startswith("[") and "(n=3, small n)" in ci for ci in d["Easy 95% CI"])
    b = app.benchmark_table(board)
    smol_zero = b[(b["approach"] == "zero-shot") & b["model"].str.contains("SmolLM2")]
    assert len(smol_zero) == 1 and smol_zero.iloc[0]["leetcode pass@1"] == pytest.approx(0.125)


def test_taxonomy_table_counts_failures(board: pd.DataFrame) -> None:
    t = app.taxonomy_table(board)
    assert set(t.columns) >= {"wrong_answer", "runtime_error:TypeError", "syntax_error", "timeout"}
    passed = dict(zip(board["approach"] + "/" + board["benchmark"], board["pass@1"] * 8, strict=True))
    for _, r in t.iterrows():
        assert r["failed"] == 8 - round(passed[f"{r['approach']}/{r['benchmark']}"])
        assert r["failed"] == r[list(t.columns[5:])].sum()


def test_plots_draw_every_run(board: pd.DataFrame) -> None:
    fig = app.plot_difficulty(board)
    ax = fig.axes[0]
    assert len(ax.patches) == 3 * len(board)  # a bar per (difficulty, run)
    from matplotlib.container import BarContainer

    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == len(board) and all(c.errorbar is not None for c in bars)
    # the error bar of a run's Easy bar spans its per-difficulty CI
    first = board.iloc[0]
    segment = bars[0].errorbar.lines[2][0].get_segments()[0]
    assert [segment[0][1], segment[1][1]] == pytest.approx(
        [first["Easy_ci_low"], first["Easy_ci_high"]], abs=1e-6
    )
    # every bar, a zero one too, is labelled with its value and n
    labels = [t.get_text() for t in ax.texts]
    zero = board.reset_index(drop=True).index[(board["Hard"] == 0).to_numpy()][0]
    assert labels[3 * zero + 2] == "0.00\nn=2"
    tax = app.plot_taxonomy(board)
    assert len(tax.axes[0].get_yticklabels()) == len(board)


def test_app_builds(board: pd.DataFrame) -> None:
    import gradio as gr

    assert isinstance(app.build_app(board, ["x"]), gr.Blocks)


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"{path.name}: {line!r} is not pinned"
            pins[name.split("[")[0].lower().replace("_", "-")] = version
    return pins


def test_space_card_and_requirements_agree_with_the_repo() -> None:
    """The folder deploys unchanged: a valid Space header, its SDK = the pinned gradio, pins = the repo's."""
    from huggingface_hub import SpaceCard

    card = SpaceCard.load(APP.parent / "README.md")
    assert card.data.sdk == "gradio" and (APP.parent / card.data.app_file).is_file()
    assert card.data.title and card.data.emoji and card.data.license
    assert card.data.colorFrom and card.data.colorTo and card.data.pinned is not None
    space, repo = _pins(APP.parent / "requirements.txt"), _pins(REPO / "requirements.txt")
    assert card.data.sdk_version == space["gradio"] == repo["gradio"]
    for name in set(space) & set(repo):
        assert space[name] == repo[name], f"{name}: leaderboard pins {space[name]}, the repo {repo[name]}"


# ---------------------------------------------------------------- browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"leaderboard exited early ({proc.returncode}): {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"leaderboard did not answer at {url} within {timeout}s")


def _column(page, table: str, header: str) -> list[str]:
    """The cells of a column, in displayed order (Gradio renders rows as a virtual grid)."""
    idx = page.locator(f"#{table} th[title='{header}']").get_attribute("data-heading")
    rows = page.locator(f"#{table} [role=row].virtual-row")
    return [
        rows.nth(i).locator(f"[role=gridcell][data-col='{idx}']").inner_text().strip()
        for i in range(rows.count())
    ]


def _sort(page, table: str, header: str, direction: str) -> None:
    th = page.locator(f"#{table} th[title='{header}']")
    th.hover()
    th.locator("button.cell-menu-button").click()
    page.get_by_role("menuitem", name=f"Sort {direction}").click()


@pytest.mark.slow
def test_browser_shows_runs_and_sorts_by_pass_at_1(results: dict[str, Path]) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    port = _free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    cmd = [sys.executable, str(APP), "--results", str(results["run"]), "--results", str(results["board"])]
    proc = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/", proc)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#overall [role=gridcell]", timeout=30_000)

            # every fixture run is on the board, best first
            assert sorted(_column(page, "overall", "approach")) == [
                "few-shot",
                "lora",
                "zero-shot",
                "zero-shot",
            ]
            models = _column(page, "overall", "model")
            assert models.count(SMOL) == 2 and LORA in models and "smollm2-local" in models
            assert page.locator(f"#overall a[href='https://huggingface.co/{LORA}']").count() == 1
            ranked = [float(x) for x in _column(page, "overall", "pass@1")]
            assert ranked == [0.75, 0.5, 0.25, 0.125]

            _sort(page, "overall", "pass@1", "ascending")
            expect(page.locator("#overall [role=row].virtual-row").first).to_contain_text("0.125")
            assert [float(x) for x in _column(page, "overall", "pass@1")] == [0.125, 0.25, 0.5, 0.75]
            assert _column(page, "overall", "approach") == ["zero-shot", "zero-shot", "few-shot", "lora"]
            _sort(page, "overall", "pass@1", "descending")
            expect(page.locator("#overall [role=row].virtual-row").first).to_contain_text("0.75")
            assert _column(page, "overall", "approach") == ["lora", "few-shot", "zero-shot", "zero-shot"]

            # the manifest link serves this run's manifest (local sources: through Gradio's file route)
            first_row = page.locator("#overall [role=row].virtual-row").first
            href = first_row.locator("a", has_text="manifest").get_attribute("href")
            assert page.request.get(f"http://127.0.0.1:{port}/{href}").json()["approach"] == "lora"

            # a row opens its manifest in the viewer
            page.locator("#overall [role=gridcell][data-row='0'][data-col='1']").click()
            expect(page.locator("#manifest")).to_contain_text('"approach": "lora"', timeout=15_000)

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "leaderboard.png"), full_page=True)

            # filtering by approach goes through the server and drops the row
            page.locator("#filter-approach label", has_text="lora").click()
            expect(page.locator("#overall [role=row].virtual-row")).to_have_count(3, timeout=15_000)
            assert "lora" not in _column(page, "overall", "approach")
            rows = page.locator("#overall [role=row].virtual-row")
            assert rows.locator(f"a[href='https://huggingface.co/{SMOL}']").count() == 2  # still links

            # the search box narrows the board to matching runs, also through the server
            page.locator("#search textarea, #search input").first.fill("humaneval")
            page.locator("#search textarea, #search input").first.press("Enter")
            expect(page.locator("#overall [role=row].virtual-row")).to_have_count(1, timeout=15_000)
            assert _column(page, "overall", "model") == ["smollm2-local"]
            page.locator("#search textarea, #search input").first.fill("")
            page.locator("#search textarea, #search input").first.press("Enter")
            expect(page.locator("#overall [role=row].virtual-row")).to_have_count(3, timeout=15_000)

            page.get_by_role("tab", name="By difficulty").click()
            expect(page.locator("#by-difficulty [role=row].virtual-row")).to_have_count(3, timeout=15_000)
            page.screenshot(path=str(ARTIFACTS / "leaderboard-difficulty.png"), full_page=True)
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
