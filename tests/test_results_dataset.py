"""Result datasets: a run as Parquet configs with a dataset card, merging runs, reading summaries back."""

import json

import pytest

from letitcode.errors import HubUnavailable, UserError
from letitcode.hub import spec
from letitcode.results import dataset as rd
from letitcode.results import load


def test_slugs_and_config_names():
    assert spec.model_slug("HuggingFaceTB/SmolLM2-135M-Instruct") == "huggingfacetb__smollm2-135m-instruct"
    assert spec.model_slug("My Model:v2") == "my-model-v2"
    assert spec.config_name("google/gemma-7b", "leetcode", "lora") == "google__gemma-7b--leetcode--lora"
    assert spec.model_identity(
        {"model": {"spec": "embedded", "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct"}}
    ) == ("embedded", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert spec.model_identity({"model": {"spec": "org/name@rev", "hub_id": None}}) == (
        "org/name",
        "org/name",
    )
    assert spec.model_identity({"model": {"spec": "/tmp/some/adapter", "hub_id": None}}) == ("adapter", None)
    assert spec.model_identity({"samples": {"path": "out/gpt.jsonl"}}) == ("samples:gpt", None)


def test_run_writes_results_and_dataset_folder(tmp_path, make_run):
    results = make_run(tmp_path / "run")
    # results.json: CIs, reference metrics, taxonomy, quality, latency
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["pass@1"] == 0.5
    lo, hi = saved["ci"]["pass@1"]
    assert lo <= 0.5 <= hi
    assert saved["by_difficulty"]["Easy"]["ci"]["pass@1"][1] <= 1.0
    assert 0 < saved["bleu"] < 100 and 0 < saved["codebleu"] < 1
    assert saved["error_taxonomy"]["counts"] == {"wrong_answer": 2, "runtime_error:TypeError": 1}
    assert saved["quality"]["passing"]["n"] == 3 and saved["latency_p50_s"] == 3.0
    assert saved["tokens_per_solved"] == pytest.approx(sum(40 + i for i in range(6)) / 3)
    assert results["test_pass_rate"] == pytest.approx(0.75)

    folder = tmp_path / "run" / "dataset"
    cfg = "embedded--leetcodedataset--zero_shot"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        f"data/{cfg}/manifest.json",
        f"data/{cfg}/samples.parquet",
        f"data/{cfg}/summary.parquet",
    ]

    from huggingface_hub import DatasetCard

    card = DatasetCard.load(folder / "README.md")
    configs = {c["config_name"]: c for c in card.data.configs}
    assert configs["summary"]["data_files"] == [{"split": "train", "path": "data/*/summary.parquet"}]
    assert configs[cfg]["data_files"] == [{"split": "samples", "path": f"data/{cfg}/samples.parquet"}]
    assert card.data.letitcode_manifests[cfg]["benchmark"]["revision"] == "0123abc"
    assert "| embedded | zero_shot | leetcodedataset (test) | 6 | 0.500 [" in card.text

    from datasets import load_dataset

    summary = load_dataset(str(folder), "summary", split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert summary.column_names == list(rd.SUMMARY_COLUMNS)
    row = summary[0]
    assert (
        row["config"] == cfg
        and row["model"] == "embedded"
        and row["model_repo"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    assert (
        row["pass@1"] == 0.5
        and row["pass@1_ci_low"] == lo
        and row["Easy"] == saved["by_difficulty"]["Easy"]["pass@1"]
    )
    assert json.loads(row["pass@k"]) == {"pass@1": 0.5}
    assert json.loads(row["status_counts"]) == {"passed": 3, "wrong_answer": 2, "runtime_error": 1}
    assert "examples" not in json.loads(row["error_taxonomy"])
    assert json.loads(row["manifest"])["approach"] == "zero_shot"
    samples = load_dataset(str(folder), cfg, split="samples", cache_dir=str(tmp_path / "hf-cache"))
    assert samples.num_rows == 6 and samples[0]["task_id"] == "add-0"
    assert isinstance(samples[1]["ruff_violations"], str)  # nested values are JSON strings
    assert samples[0]["bleu"] == 100.0


def test_no_reference_means_absent_metrics(tmp_path, make_run):
    make_run(tmp_path / "run", with_reference=False, benchmark="leetcode")
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["bleu"] is None and saved["codebleu"] is None and "reference_metrics" not in saved
    df = load.load_summaries([str(tmp_path / "run")])
    assert df.loc[0, "bleu"] is None or df["bleu"].isna().all()
    recs = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert all(r["bleu"] is None and r["codebleu"] is None for r in recs)


def test_merge_runs_into_one_leaderboard_folder(tmp_path, make_run):
    make_run(tmp_path / "a", approach="zero_shot")
    make_run(
        tmp_path / "b",
        model="org/lora-adapter",
        hub_id="org/lora-adapter",
        approach="lora",
        passed=[True] * 5 + [False],
    )
    board = tmp_path / "board"
    assert rd.merge_into(board, tmp_path / "a") == ["embedded--leetcodedataset--zero_shot"]
    assert rd.merge_into(board, tmp_path / "b") == ["org__lora-adapter--leetcodedataset--lora"]
    rd.merge_into(board, tmp_path / "a")  # merging again replaces, never duplicates

    from huggingface_hub import DatasetCard

    names = [c["config_name"] for c in DatasetCard.load(board / "README.md").data.configs]
    assert names == [
        "summary",
        "embedded--leetcodedataset--zero_shot",
        "org__lora-adapter--leetcodedataset--lora",
    ]
    df = load.load_summaries([str(board)])
    assert sorted(df["approach"]) == ["lora", "zero_shot"]
    assert df.set_index("approach").loc["lora", "pass@1"] == pytest.approx(5 / 6)
    # a run dir, a dataset folder and the merged folder together: one row per (config, created)
    assert len(load.load_summaries([str(tmp_path / "a"), str(board), str(tmp_path / "b" / "dataset")])) == 2

    from datasets import load_dataset

    assert load_dataset(str(board), "summary", split="train", cache_dir=str(tmp_path / "hf-c")).num_rows == 2


def test_older_run_without_dataset_folder_is_still_readable(tmp_path, make_run):
    import shutil

    make_run(tmp_path / "run")
    shutil.rmtree(tmp_path / "run" / "dataset")
    df = load.load_summaries([str(tmp_path / "run")])
    assert df.loc[0, "config"] == "embedded--leetcodedataset--zero_shot"
    assert rd.ensure_run_dataset(tmp_path / "run").joinpath("README.md").exists()


def test_load_summaries_bad_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailable, match="local run directory or dataset folder"):
        load.load_summaries(["someone/letitcode-results"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither a run directory"):
        load.load_summaries([str(tmp_path / "empty")])
    with pytest.raises(UserError, match="no such directory"):
        load.load_summaries([str(tmp_path / "missing" / "x")])


def test_load_summaries_from_hub_id_at_the_network_boundary(tmp_path, monkeypatch, make_run):
    """A Hub id is fetched with huggingface_hub.snapshot_download(repo_type="dataset"), its @revision split off."""
    import huggingface_hub

    make_run(tmp_path / "run")
    calls = []

    def fake_snapshot_download(repo_id, *, repo_type, revision, allow_patterns):
        calls.append((repo_id, repo_type, revision, allow_patterns))
        return str(tmp_path / "run" / "dataset")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    df = load.load_summaries(["org/board", "org/board@v2"])
    patterns = ["README.md", "data/*/summary.parquet"]
    assert calls == [("org/board", "dataset", None, patterns), ("org/board", "dataset", "v2", patterns)]
    assert df.loc[0, "model"] == "embedded"


def test_mixed_column_types_become_one_arrow_type(tmp_path):
    records = [
        {"task_id": "a", "x": 1, "first_failure": "assert f()", "meta": {"k": [1, 2]}, "flag": True},
        {"task_id": "b", "x": 2.5, "first_failure": {"test": 3}, "meta": None, "flag": None},
    ]
    rows = rd._encode_records(records)
    assert [r["x"] for r in rows] == [1.0, 2.5]
    assert [r["first_failure"] for r in rows] == ['"assert f()"', '{"test": 3}']  # str + dict: all JSON
    assert rows[0]["meta"] == '{"k": [1, 2]}' and rows[1]["meta"] is None
    assert [r["flag"] for r in rows] == [True, None]
    results = {"pass@1": 0.0, "n_problems": 2, "n_samples": 2}
    manifest = {"approach": "x", "benchmark": {"name": "mbpp"}, "created": "2025-01-01T00:00:00Z"}
    cfg = rd.write_run_dataset(tmp_path / "ds", records, results, manifest)
    assert cfg == "unknown--mbpp--x"
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "ds" / "data" / cfg / "samples.parquet")
    assert (
        str(table.schema.field("x").type) == "double"
        and str(table.schema.field("first_failure").type) == "string"
    )
    assert pq.read_table(tmp_path / "ds" / "data" / cfg / "summary.parquet").to_pylist()[0]["bleu"] is None
