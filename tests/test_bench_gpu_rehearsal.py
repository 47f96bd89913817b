"""bench/gpu_rehearsal.py: the real shapes are the seed models', the memory plan for full fine-tuning, and the
same code at --tiny shapes on this CPU (what a GPU run executes, minus CUDA)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import seed_models
from conftest import REPO

# Parameter counts of the released checkpoints (their model cards: 8.54B, 8.03B, 3.82B).
REAL_PARAMETERS = {
    "gemma-7b": 8_537_680_896,
    "llama-3.1-8b-instruct": 8_030_261_248,
    "phi-3-mini-4k-instruct": 3_821_079_552,
}


@pytest.mark.parametrize("seed", seed_models.SEEDS)
def test_real_shapes(seed: str) -> None:
    """The configs kept as data build the real models (on the meta device: no memory, no download)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(seed_models.seed_config(seed))
    assert type(model).__name__ == seed_models.SEED_MODELS[seed]["architecture"]
    assert sum(p.numel() for p in model.parameters()) == REAL_PARAMETERS[seed]


def test_full_fine_tuning_memory_plan() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    import gpu_rehearsal

    assert gpu_rehearsal.full_plan(REAL_PARAMETERS["phi-3-mini-4k-instruct"], 139.8) == (
        "fp32+autocast",
        None,
    )
    assert gpu_rehearsal.full_plan(REAL_PARAMETERS["phi-3-mini-4k-instruct"], 79.2) == ("fp32+autocast", None)
    how, why = gpu_rehearsal.full_plan(REAL_PARAMETERS["llama-3.1-8b-instruct"], 139.8)  # 8B x 16 B > an H200
    assert how == "bf16+adamw8bit+checkpointing" and "8-bit AdamW" in why
    how, why = gpu_rehearsal.full_plan(REAL_PARAMETERS["gemma-7b"], 23.6)
    assert how == "skip" and "GiB" in why
    assert gpu_rehearsal.full_plan(1000, None) == ("fp32", None)


@pytest.mark.slow
def test_tiny_run(tmp_path: Path) -> None:
    """--tiny runs every section on one seed model and reports numbers, ratios and a manifest."""
    out = tmp_path / "gpu_rehearsal.json"
    cmd = [sys.executable, str(REPO / "bench" / "gpu_rehearsal.py"), "--tiny", "--seeds", "phi-3-mini-4k-instruct",
           "--batches", "1,2", "--max_new_tokens", "4", "--json", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    if "not installed" in proc.stderr + proc.stdout and "make tokenizers" in proc.stderr + proc.stdout:
        pytest.skip("seed tokenizers not installed: run `make tokenizers` (needs npm)")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    rows = data["rows"]
    gen = {(r["mode"], r["batch"]): r for r in rows if r["section"] == "generate"}
    assert set(gen) == {("static", 1), ("paged", 1), ("static", 2), ("paged", 2)}
    for (_, batch), r in gen.items():
        assert "skipped" not in r, r
        assert 0 < r["tokens"] <= batch * 4 and r["tokens_per_s"] > 0
    steps = {r["section"]: r for r in rows if r["section"] in ("lora", "full", "qlora")}
    assert set(steps) == {"lora", "full", "qlora"}
    for section, r in steps.items():
        if section == "qlora" and r.get("skipped"):  # bitsandbytes without a 4-bit backend here
            assert "bitsandbytes" in r["skipped"] and "skipped:" in proc.stdout
            continue
        assert r["s_per_step"] > 0 and r["tokens_per_step"] == 2 * 64
    assert steps["full"]["memory_plan"] == "fp32"
    assert steps["lora"]["trainable"] < steps["lora"]["parameters"]
    m = data["manifest"]
    assert m["tiny"] is True and m["device"]["type"] == "cpu" and m["seed"] == 0
    assert m["libraries"]["torch"] and m["libraries"]["transformers"]
    # the printed table: measured numbers and ratios
    assert "paged / static" in proc.stdout and "phi-3-mini-4k-instruct" in proc.stdout
    assert "ratio" in proc.stdout


def test_real_shapes_need_a_gpu() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_rehearsal.py")], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode != 0
    assert "CUDA" in proc.stderr and "--tiny" in proc.stderr and "Traceback" not in proc.stderr
