"""Resumable evaluation: a run that crashes mid-generation, rerun, regenerates nothing already cached and
scores everything. The model is a test double (a Backend that counts its generations and can crash)."""

import json
from pathlib import Path

import pytest

from letitcode.backends.base import Backend, Generation
from letitcode.config import EvalConfig
from letitcode.pipeline import run_eval

LCD = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "leetcodedataset"
    / "LeetCodeDataset-v0.3.1-test.jsonl.gz"
)


class SimulatedCrash(RuntimeError):
    pass


class CountingBackend(Backend):
    """Answers with the reference solution for every other problem and a wrong one otherwise; counts
    each generated answer; with `crash_after`, raises after that many answers (a killed run)."""

    name = "counting"
    has_chat_template = True
    cache_key = "counting-backend-v1"

    def __init__(self, problems, crash_after=None):
        self.problems = problems
        self.crash_after = crash_after
        self.generated = 0

    def describe(self):
        return {"name": self.name}

    def _answer(self, prompt):
        text = json.dumps(prompt)
        for i, p in enumerate(self.problems):
            if json.dumps(p.description[:200])[1:-1] in text:
                body = p.reference if i % 2 == 0 else "class Solution:\n    pass\n"
                return f"Here is my solution:\n```python\n{body}```\n"
        raise AssertionError("prompt for an unknown problem")

    def generate(self, requests, params):
        for i, req in enumerate(requests):
            if self.crash_after is not None and self.generated >= self.crash_after:
                raise SimulatedCrash(f"killed after {self.generated} answers")
            self.generated += 1
            yield (
                i,
                Generation(text=self._answer(req.prompt), n_tokens=10, latency_s=0.01, finish_reason="stop"),
            )


@pytest.fixture(scope="module")
def bench():
    if not LCD.exists():
        pytest.skip(f"shared data not found at {LCD.parent} (it ships with CI, not with the repo)")
    from letitcode.data.benchmarks import load_benchmark

    return load_benchmark("leetcodedataset", dataset=str(LCD))


@pytest.fixture
def problems(bench, monkeypatch):
    """The 6 problems a run selects; the benchmark is parsed once per module (seconds) and handed to
    every run_eval of the module instead of being re-read from the file."""
    import letitcode.data.benchmarks
    from letitcode.pipeline import select_problems

    monkeypatch.setattr(letitcode.data.benchmarks, "load_benchmark", lambda name, **kw: bench)
    return select_problems(bench.problems, _cfg("unused"))


def _cfg(out):
    return EvalConfig(
        model="counting",
        benchmark="leetcodedataset",
        dataset=str(LCD),
        limit=6,
        output_dir=str(out),
        progress=False,
        workers=2,
    )


def _lines(path):
    return [line for line in path.read_text().splitlines() if line.strip()]


def test_resume_after_crash_regenerates_nothing_finished(tmp_path, problems):
    out = tmp_path / "run"
    first = CountingBackend(problems, crash_after=4)
    with pytest.raises(SimulatedCrash):
        run_eval(_cfg(out), backend=first)
    assert first.generated == 4
    assert len(_lines(out / "generations.jsonl")) == 4
    assert not (out / "results.json").exists()  # nothing was scored yet

    second = CountingBackend(problems)
    results = run_eval(_cfg(out), backend=second)
    assert second.generated == 2  # only the unfinished ones
    assert first.generated + second.generated == len(problems) == 6
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["generation"]["reused_from_cache"] == 4 and manifest["generation"]["requests"] == 2
    records = [json.loads(x) for x in _lines(out / "samples.jsonl")]
    assert [r["task_id"] for r in records] == [p.task_id for p in problems]  # everything scored, in order
    assert [r["passed"] for r in records] == [True, False] * 3
    assert results["pass@1"] == pytest.approx(0.5)
    assert all(r["bleu"] == 100.0 for r in records[::2])  # the reference itself
    assert (out / "dataset" / "README.md").exists()

    third = CountingBackend(problems)
    again = run_eval(_cfg(out), backend=third)
    assert third.generated == 0
    assert again["pass@1"] == results["pass@1"]
    assert len(_lines(out / "generations.jsonl")) == 6  # append-only, no duplicates


def test_torn_last_line_is_regenerated_and_does_not_corrupt_the_cache(tmp_path, problems):
    out = tmp_path / "run"
    with pytest.raises(SimulatedCrash):
        run_eval(_cfg(out), backend=CountingBackend(problems, crash_after=3))
    cache = out / "generations.jsonl"
    lines = _lines(cache)
    # a kill in the middle of writing the 3rd entry: half a line, no newline
    cache.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])
    second = CountingBackend(problems)
    run_eval(_cfg(out), backend=second)
    assert second.generated == 4
    third = CountingBackend(problems)
    run_eval(_cfg(out), backend=third)
    assert third.generated == 0  # the entry appended after the torn line survived


def test_different_prompt_or_model_is_not_reused(tmp_path, problems):
    out = tmp_path / "run"
    run_eval(_cfg(out), backend=CountingBackend(problems))
    other = CountingBackend(problems)
    other.cache_key = "another-model"
    run_eval(_cfg(out), backend=other)
    assert other.generated == 6
