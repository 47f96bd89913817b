"""A run's folder is never damaged: options are checked before anything loads, outputs replace the old ones
only once all of them are written, a rerun with other options is refused, and a failed run leaves no empty
folder. The model is a test double (the backend boundary); data, prompts, sandbox and writers are real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from letitcode.backends.base import Backend, Generation
from letitcode.config import EvalConfig
from letitcode.errors import UserError
from letitcode.pipeline import outputs, run_eval


class WrongAnswers(Backend):
    """Answers every prompt with the same wrong program."""

    name = "wrong-answers"
    has_chat_template = True
    cache_key = "wrong-answers-v1"

    def __init__(self, fail: bool = False):
        self.fail = fail

    def describe(self):
        return {"backend": self.name}

    def generate(self, requests, params):
        if self.fail:
            raise RuntimeError("the server went away")
        for i, _ in enumerate(requests):
            text = "```python\nclass Solution:\n    pass\n```"
            yield i, Generation(text=text, n_tokens=5, latency_s=0.01, finish_reason="stop")


def _cfg(out: Path, **kw) -> EvalConfig:
    return EvalConfig(output_dir=str(out), limit=2, progress=False, workers=1, **kw)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    run_eval(_cfg(out), backend=WrongAnswers())
    return out


def test_a_bad_option_stops_before_loading_and_leaves_the_run_byte_identical(finished_run: Path) -> None:
    before = _snapshot(finished_run)
    assert {"samples.jsonl", "results.json", "manifest.json", "generations.jsonl"} <= set(before)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    for flags in (["--n", "0"], ["--limit", "0"], ["--limit", "-2"], ["--max_new_tokens", "0"]):
        cmd = [sys.executable, str(REPO / "evaluate" / "run.py"), "--output_dir", str(finished_run), *flags]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and flags[0] in lines[0], lines
    assert _snapshot(finished_run) == before


@pytest.mark.parametrize(
    ("options", "culprit"),
    [
        ({"n": 0}, "--n"),
        ({"limit": 0}, "--limit"),
        ({"limit": -5}, "--limit"),
        ({"top_p": 0}, "--top_p"),
        ({"k": "1,x"}, "x"),
        ({"temperature": -1}, "--temperature"),
        ({"task_ids": []}, "--task_ids"),
    ],
)
def test_each_bad_option_names_itself(options: dict, culprit: str) -> None:
    with pytest.raises(UserError, match=culprit):
        EvalConfig(**options)


def test_limit_unset_or_minus_one_means_all() -> None:
    assert EvalConfig(limit=-1).limit is None and EvalConfig().limit is None


def test_default_output_folder_names_model_benchmark_and_approach() -> None:
    cfg = EvalConfig(model="google/gemma-7b", benchmark="mbpp", strategy="few_shot")
    assert cfg.output_dir == str(Path("runs") / "google__gemma-7b--mbpp--few_shot")
    other = EvalConfig(model="google/gemma-7b", benchmark="mbpp", approach="lora")
    assert other.output_dir != cfg.output_dir  # a second run does not overwrite the first
    assert EvalConfig(model="/models/my-ft/", benchmark="humaneval").output_dir.endswith(
        "my-ft--humaneval--zero_shot"
    )


def test_a_rerun_with_other_options_is_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_eval(_cfg(out, temperature=0.7), backend=WrongAnswers())
    before = _snapshot(out)
    with pytest.raises(UserError, match=r"temperature 0\.7 -> 0\.2.*--overwrite"):
        run_eval(_cfg(out, temperature=0.2), backend=WrongAnswers())
    assert _snapshot(out) == before
    run_eval(_cfg(out, temperature=0.7, n=2), backend=WrongAnswers())  # more samples extend the run
    results = (out / "results.json").read_text()
    assert '"n_samples": 4' in results
    run_eval(_cfg(out, temperature=0.2, overwrite=True), backend=WrongAnswers())
    assert '"temperature": 0.2' in (out / "manifest.json").read_text()


def test_a_failure_while_scoring_keeps_the_previous_outputs(finished_run: Path, monkeypatch) -> None:
    before = _snapshot(finished_run)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full while writing the Parquet files")

    monkeypatch.setattr(outputs, "finalize", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run_eval(_cfg(finished_run), backend=WrongAnswers())
    assert _snapshot(finished_run) == before
    assert not list(finished_run.glob(".staging-*"))


def test_a_run_that_fails_early_leaves_no_folder(tmp_path: Path) -> None:
    out = tmp_path / "never"
    with pytest.raises(RuntimeError, match="went away"):
        run_eval(_cfg(out), backend=WrongAnswers(fail=True))
    assert not out.exists()
    with pytest.raises(UserError):
        run_eval(_cfg(out, model=str(tmp_path / "no-such-model")))
    assert not out.exists()


def test_no_local_path_reaches_the_manifest_dataset_or_card(tmp_path: Path, shared_data: Path) -> None:
    lcd = (shared_data / "leetcodedataset" / "LeetCodeDataset-v0.3.1-test.jsonl.gz").resolve()
    out = tmp_path / "run"
    cfg = _cfg(out, benchmark="leetcodedataset", dataset=str(lcd))
    cfg.extra_manifest = {"trained_from": str(Path.home() / ".cache" / "letitcode" / "adapter")}
    run_eval(cfg, backend=WrongAnswers())
    run_eval(cfg, backend=WrongAnswers())  # the same run again: its cut-down paths still match, it resumes
    manifest = (out / "manifest.json").read_text()
    bench = json.loads(manifest)["benchmark"]
    assert bench["source"] == "newfacade/LeetCodeDataset" and bench["file"] == lcd.name
    published = [out / "manifest.json", out / "results.json", *sorted((out / "dataset").rglob("*"))]
    for path in (p for p in published if p.is_file()):
        data = path.read_bytes()
        for local in (str(shared_data.resolve()), str(Path.home()), str(tmp_path)):
            assert local.encode() not in data, f"{local} in {path.relative_to(out)}"


def test_generation_progress_moves_per_finished_generation_with_tokens_per_second(
    tmp_path: Path, capsys
) -> None:
    cfg = _cfg(tmp_path / "run")
    cfg.progress = True
    run_eval(cfg, backend=WrongAnswers())
    err = capsys.readouterr().err
    assert "generating (wrong-answers)" in err and "2/2" in err and "tok/s" in err
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["generation"]["tokens_per_s"] > 0


def test_every_record_holds_the_contract_fields(finished_run: Path) -> None:
    from letitcode.records import RECORD_FIELDS, SampleRecord

    rows = [json.loads(line) for line in (finished_run / "samples.jsonl").read_text().splitlines()]
    assert rows and all(set(RECORD_FIELDS) <= set(r) for r in rows)
    assert set(RECORD_FIELDS) <= set(SampleRecord.__annotations__)
