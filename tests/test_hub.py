"""Hub publishing with only the network boundary faked: result datasets, model-index scores in model
cards, metric Spaces, and the token check that must fail before any work."""

import fnmatch
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import REPO
from huggingface_hub import DatasetCard, EvalResult, ModelCard, ModelCardData
from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError

from letitcode.errors import UserError
from letitcode.hub import publish as hub


def _http_error(cls, status=404):
    return cls(
        f"{status} Client Error",
        response=httpx.Response(status, request=httpx.Request("GET", "http://hub.test/x")),
    )


class Recorder:
    """A stand-in for `HfApi` at the network boundary: records each call, snapshots uploaded folders at
    call time (honouring allow_patterns), and serves `remote` files for downloads."""

    def __init__(
        self, remote: dict | None = None, missing_repos: set | None = None, cache: Path | None = None
    ):
        self.calls: list[tuple[str, dict]] = []
        self.remote = remote or {}  # (repo_id, path) -> bytes
        self.missing_repos = missing_repos or set()
        self.cache = cache

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kw}))
        self.missing_repos.discard(repo_id)
        return f"repo://{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, allow_patterns=None, **kw):
        files = {}
        for p in sorted(Path(folder_path).rglob("*")):
            rel = p.relative_to(folder_path).as_posix()
            if p.is_file() and (
                allow_patterns is None or any(fnmatch.fnmatch(rel, pat) for pat in allow_patterns)
            ):
                files[rel] = p.read_bytes()
        self.calls.append(("upload_folder", {"repo_id": repo_id, "files": files, **kw}))
        return type("Info", (), {"commit_url": f"commit://{repo_id}/{len(self.calls)}"})()

    def upload_file(self, *, path_or_fileobj, path_in_repo, repo_id, **kw):
        data = Path(path_or_fileobj).read_bytes()
        self.calls.append(
            ("upload_file", {"repo_id": repo_id, "path_in_repo": path_in_repo, "data": data, **kw})
        )
        return type("Info", (), {"commit_url": f"commit://{repo_id}/{len(self.calls)}"})()

    def hf_hub_download(self, *, repo_id, filename, repo_type=None, **kw):
        self.calls.append(
            ("hf_hub_download", {"repo_id": repo_id, "filename": filename, "repo_type": repo_type})
        )
        if repo_id in self.missing_repos:
            raise _http_error(RepositoryNotFoundError)
        if (repo_id, filename) not in self.remote:
            raise _http_error(RemoteEntryNotFoundError)
        path = self.cache / repo_id / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.remote[(repo_id, filename)])
        return str(path)

    def snapshot_download(self, *, repo_id, repo_type=None, allow_patterns=None, **kw):
        self.calls.append(("snapshot_download", {"repo_id": repo_id, "repo_type": repo_type}))
        if repo_id in self.missing_repos:
            raise _http_error(RepositoryNotFoundError)
        root = self.cache / "snap" / repo_id
        for (rid, name), data in self.remote.items():
            if rid == repo_id and (
                allow_patterns is None or any(fnmatch.fnmatch(name, p) for p in allow_patterns)
            ):
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_bytes(data)
        root.mkdir(parents=True, exist_ok=True)
        return str(root)

    def named(self, name):
        return [kw for n, kw in self.calls if n == name]


@pytest.fixture
def recorder(tmp_path):
    rec = Recorder(cache=tmp_path / "hub-cache")
    hub.set_api_factory(lambda: rec)
    yield rec
    hub.set_api_factory(None)


EXISTING_CARD = """---
license: apache-2.0
base_model: HuggingFaceTB/SmolLM2-135M-Instruct
library_name: peft
tags:
- lora
- code
model-index:
- name: my-adapter
  results:
  - task:
      type: text-generation
    dataset:
      name: HumanEval
      type: openai/openai_humaneval
    metrics:
    - type: pass@1
      value: 0.12
      name: pass@1 (humaneval, measured elsewhere)
---

# my-adapter

A LoRA adapter. This prose must survive the update.
"""


def test_push_to_card_updates_model_index_and_keeps_the_rest(tmp_path, recorder, make_run):
    make_run(tmp_path / "run", approach="lora")
    recorder.remote[("org/my-adapter", "README.md")] = EXISTING_CARD.encode()
    url = hub.push_to_card("org/my-adapter", tmp_path / "run", results_repo="org/board")
    assert url.startswith("commit://org/my-adapter")
    (upload,) = recorder.named("upload_file")
    assert upload["path_in_repo"] == "README.md" and upload["repo_type"] == "model"
    path = tmp_path / "README.md"
    path.write_bytes(upload["data"])
    card = ModelCard.load(path)  # huggingface_hub's own parser
    assert card.data.license == "apache-2.0" and card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.library_name == "peft" and card.data.tags == ["lora", "code"]
    assert "This prose must survive the update." in card.text
    assert card.data.model_name == "my-adapter"
    results = card.data.eval_results
    old = [r for r in results if r.dataset_type == "openai/openai_humaneval"]
    assert len(old) == 1 and old[0].metric_value == 0.12  # another benchmark's score is kept
    ours = {r.metric_name: r for r in results if r.metric_config == "lora"}
    p1 = ours["pass@1 (lora)"]
    assert p1.metric_type == "pass@1" and p1.metric_value == 0.5
    assert (
        p1.dataset_type == "newfacade/LeetCodeDataset"
        and p1.dataset_split == "test"
        and p1.dataset_revision == "0123abc"
    )
    lo, hi = p1.metric_args["ci95"]
    assert lo <= 0.5 <= hi and p1.metric_args["n_problems"] == 6
    assert p1.source_url.endswith("/datasets/org/board") and p1.source_name == "LetItCode"
    assert {
        "pass@1 Easy (lora)",
        "pass@1 Medium (lora)",
        "pass@1 Hard (lora)",
        "BLEU (lora)",
        "CodeBLEU (lora)",
        "test cases passed (lora)",
    } <= set(ours)
    assert 0 < ours["CodeBLEU (lora)"].metric_value < 1

    # a second run of the same approach replaces its values instead of adding duplicates
    make_run(tmp_path / "run2", approach="lora", passed=[True] * 6)
    recorder.remote[("org/my-adapter", "README.md")] = upload["data"]
    hub.push_to_card("org/my-adapter", tmp_path / "run2", results_repo="org/board")
    path.write_bytes(recorder.named("upload_file")[-1]["data"])
    again = ModelCard.load(path).data.eval_results
    assert len(again) == len(results)
    assert {r.metric_name: r.metric_value for r in again}["pass@1 (lora)"] == 1.0
    # a different approach on the same benchmark sits next to it
    make_run(tmp_path / "run3", approach="zero_shot")
    recorder.remote[("org/my-adapter", "README.md")] = recorder.named("upload_file")[-1]["data"]
    hub.push_to_card("org/my-adapter", tmp_path / "run3")
    path.write_bytes(recorder.named("upload_file")[-1]["data"])
    configs = {r.metric_config for r in ModelCard.load(path).data.eval_results}
    assert configs == {None, "lora", "zero_shot"}


def test_push_to_card_without_readme_creates_one_and_missing_repo_is_an_error(tmp_path, recorder, make_run):
    make_run(tmp_path / "run")
    hub.push_to_card("org/new-model", tmp_path / "run")
    path = tmp_path / "README.md"
    path.write_bytes(recorder.named("upload_file")[0]["data"])
    card = ModelCard.load(path)
    assert card.data.model_name == "new-model" and "letitcode" in card.data.tags
    assert any(r.metric_type == "pass@1" for r in card.data.eval_results)
    recorder.missing_repos.add("org/ghost")
    with pytest.raises(UserError, match="does not exist"):
        hub.push_to_card("org/ghost", tmp_path / "run")


def test_model_index_round_trip_through_a_local_card(tmp_path, make_run):
    """EvalResults -> card file -> ModelCard.load -> the same results (huggingface_hub's parsing)."""
    make_run(tmp_path / "run", approach="few_shot")
    import json

    results = json.loads((tmp_path / "run" / "results.json").read_text())
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    evals = hub.eval_results_for(results, manifest)
    card = ModelCard.from_template(ModelCardData(model_name="m", eval_results=evals, license="mit"))
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    assert loaded.data.model_name == "m" and loaded.data.license == "mit"
    assert [(r.metric_name, r.metric_value, r.metric_args) for r in loaded.data.eval_results] == [
        (r.metric_name, r.metric_value, r.metric_args) for r in evals
    ]
    merged = hub.merge_eval_results(
        loaded,
        [
            EvalResult(
                task_type="text-generation",
                dataset_type="x/y",
                dataset_name="Y",
                metric_type="acc",
                metric_value=1,
            )
        ],
        model_name="ignored",
    )
    assert merged.data.model_name == "m" and len(merged.data.eval_results) == len(evals) + 1


def test_push_results_uploads_dataset_and_keeps_other_configs_in_card(tmp_path, recorder, make_run):
    make_run(tmp_path / "old", model="org/other", hub_id="org/other", approach="few_shot")
    old_cfg = "org__other--leetcodedataset--few_shot"
    old_dir = tmp_path / "old" / "dataset" / "data" / old_cfg
    for name in ("summary.parquet", "manifest.json", "samples.parquet"):
        recorder.remote[("org/board", f"data/{old_cfg}/{name}")] = (old_dir / name).read_bytes()
    make_run(tmp_path / "run", approach="zero_shot")
    url = hub.push_results("org/board", [tmp_path / "run"], private=True)
    assert url.startswith("commit://org/board")
    (create,) = recorder.named("create_repo")
    assert create == {"repo_id": "org/board", "repo_type": "dataset", "private": True, "exist_ok": True}
    (upload,) = recorder.named("upload_folder")
    cfg = "embedded--leetcodedataset--zero_shot"
    assert upload["repo_type"] == "dataset"
    assert sorted(upload["files"]) == [
        "README.md",
        f"data/{cfg}/manifest.json",
        f"data/{cfg}/samples.parquet",
        f"data/{cfg}/summary.parquet",
    ]
    (tmp_path / "card.md").write_bytes(upload["files"]["README.md"])
    card = DatasetCard.load(tmp_path / "card.md")
    assert [c["config_name"] for c in card.data.configs] == [
        "summary",
        cfg,
        old_cfg,
    ]  # the old run stays listed
    assert set(card.data.letitcode_manifests) == {cfg, old_cfg}


def test_push_results_to_a_new_repo(tmp_path, recorder, make_run):
    recorder.missing_repos.add("org/fresh")
    make_run(tmp_path / "run")
    hub.push_results("org/fresh", [tmp_path / "run"])
    (upload,) = recorder.named("upload_folder")
    assert "README.md" in upload["files"] and len(upload["files"]) == 4


def test_publish_run_does_both_and_flags_parse(tmp_path, recorder, make_run):
    from letitcode.cli import parse_config
    from letitcode.config import EvalConfig

    cfg, push = parse_config(
        (EvalConfig, hub.PushArguments),
        ["--limit", "3", "--push-results", "org/board", "--push-to-card", "org/model", "--private"],
    )
    assert (
        cfg.limit == 3
        and push.push_results == "org/board"
        and push.push_to_card == "org/model"
        and push.private
        and push.any
    )
    make_run(tmp_path / "run")
    urls = hub.publish_run(tmp_path / "run", push)
    assert len(urls) == 2
    assert [n for n, _ in recorder.calls if n in ("upload_folder", "upload_file")] == [
        "upload_folder",
        "upload_file",
    ]
    assert not hub.PushArguments().any


def test_push_metric_spaces(recorder):
    dirs = [REPO / "evaluate" / "metrics" / n for n in ("pass_at_k", "codebleu")]
    urls = hub.push_metric_spaces("org", dirs)
    assert set(urls) == {"pass_at_k", "codebleu"}
    creates = recorder.named("create_repo")
    assert [c["repo_id"] for c in creates] == ["org/pass_at_k", "org/codebleu"]
    assert all(c["repo_type"] == "space" and c["space_sdk"] == "gradio" for c in creates)
    uploads = {u["repo_id"]: u["files"] for u in recorder.named("upload_folder")}
    files = uploads["org/pass_at_k"]
    assert {"README.md", "app.py", "pass_at_k.py", "requirements.txt", "sandbox.py", "worker.py"} <= set(
        files
    )
    assert b"tags:\n- evaluate\n- metric" in files["README.md"]
    assert "worker.py" not in uploads["org/codebleu"] and not any(f.startswith("letitcode/") for f in files)


def _clean_env(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH")
    }
    env["HF_HOME"] = str(tmp_path / "hf-home")  # no stored token either
    env["HF_HUB_OFFLINE"] = "1"
    return env


@pytest.mark.parametrize("flag", ["--push-results", "--push-to-card"])
def test_missing_token_fails_before_any_work(tmp_path, flag):
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "evaluate" / "run.py"),
            "--model",
            "embedded",
            "--limit",
            "2",
            "--output-dir",
            str(out),
            flag,
            "org/x",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_clean_env(tmp_path),
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "HF_TOKEN" in last and flag in last
    assert "Traceback" not in proc.stderr
    assert not out.exists()  # nothing was generated, loaded or written


def test_push_script_validates_before_uploading(tmp_path, make_run):
    env = _clean_env(tmp_path)
    push = [sys.executable, str(REPO / "evaluate" / "push.py")]
    proc = subprocess.run(
        push + ["--runs", str(tmp_path), "--push-results", "org/x"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2 and "HF_TOKEN" in proc.stderr.strip().splitlines()[-1]
    make_run(tmp_path / "run")
    board = tmp_path / "board"
    proc = subprocess.run(
        push + ["--runs", str(tmp_path / "run"), "--merge-into", str(board)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (board / "data" / "embedded--leetcodedataset--zero_shot" / "summary.parquet").exists()
