"""The `--serve` launcher (letitcode/server.py): commands per server kind, readiness, one-line failures, and a
real `transformers serve` on the embedded model evaluated through the openai backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from letitcode import server
from letitcode.errors import UserError
from letitcode.models import ResolvedModel


def _model(tmp_path: Path, name: str = "base") -> ResolvedModel:
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text("{}")
    return ResolvedModel(str(d), str(d), "org/base", None, "fp")


def _adapter(tmp_path: Path, *, qlora: bool, r: int = 8) -> ResolvedModel:
    base = _model(tmp_path)
    d = tmp_path / "gemma-7b-qlora"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base.path, "r": r}))
    if qlora:
        quant = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}
        (d / "manifest.json").write_text(
            json.dumps({"method": "qlora", "hyperparameters": {"quantization": quant}})
        )
    return ResolvedModel(str(d), str(d), None, None, "fpa", is_adapter=True, base=base)


def test_vllm_command_for_a_model_and_for_adapter_arms(monkeypatch, tmp_path):
    from letitcode import devices

    monkeypatch.setattr(server, "_vllm_executable", lambda: ["vllm"])
    plan = server.server_command("vllm", _model(tmp_path), port=8123, device="cpu")
    assert plan.command[:3] == ["vllm", "serve", str(tmp_path / "base")]
    assert plan.command[plan.command.index("--port") + 1] == "8123" and plan.model == "org/base"
    assert "--enable-lora" not in plan.command and "CUDA_VISIBLE_DEVICES" not in plan.env

    sub = tmp_path / "a"
    sub.mkdir()
    lora = _adapter(sub, qlora=False, r=64)
    plan = server.server_command("vllm", lora, port=8124, device="cpu", dtype="bfloat16")
    cmd = plan.command
    assert cmd[2] == lora.base.path  # the base is served; the adapter is a LoRA module on it
    assert "--enable-lora" in cmd and cmd[cmd.index("--lora-modules") + 1] == f"gemma-7b-qlora={lora.path}"
    assert cmd[cmd.index("--max-lora-rank") + 1] == "64" and cmd[cmd.index("--dtype") + 1] == "bfloat16"
    assert plan.model == "gemma-7b-qlora" and "--quantization" not in cmd

    # a QLoRA adapter on a GPU (bitsandbytes with CUDA): vLLM serves its 4-bit base, pinned to that GPU
    monkeypatch.setattr(devices, "bnb_cuda_available", lambda: True)
    monkeypatch.setattr(devices, "physical_gpu", lambda d: "3")
    sub = tmp_path / "q"
    sub.mkdir()
    plan = server.server_command("vllm", _adapter(sub, qlora=True), port=8125, device="cuda:0")
    assert plan.command[plan.command.index("--quantization") + 1] == "bitsandbytes"
    assert plan.env["CUDA_VISIBLE_DEVICES"] == "3"


def test_vllm_missing_and_bad_templates_are_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(server.shutil, "which", lambda name: None)
    monkeypatch.setattr(server.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(UserError, match="--serve vllm needs vLLM"):
        server.server_command("vllm", _model(tmp_path), port=1)
    with pytest.raises(UserError, match=r"\{model\} and \{port\}"):
        server.server_command("my-server --port 1", _model(tmp_path), port=1)
    plan = server.server_command(
        "my-server --model {model} --port {port} --host {host}", _model(tmp_path), port=7
    )
    assert plan.command == [
        "my-server",
        "--model",
        str(tmp_path / "base"),
        "--port",
        "7",
        "--host",
        "127.0.0.1",
    ]
    assert plan.kind == "command" and plan.model == "auto"


def test_transformers_command_pins_the_device(monkeypatch, tmp_path):
    from letitcode import devices

    monkeypatch.setattr(devices, "physical_gpu", lambda d: "1")
    plan = server.server_command("transformers", _model(tmp_path), port=9, device="cuda:1", dtype="float16")
    cmd = plan.command
    assert cmd[cmd.index("--device") + 1] == "cuda:0" and plan.env["CUDA_VISIBLE_DEVICES"] == "1"
    assert cmd[cmd.index("--dtype") + 1] == "float16" and "--continuous-batching" in cmd
    assert plan.model == str(tmp_path / "base")


def test_server_that_exits_early_is_one_line_with_its_log_tail(tmp_path):
    cmd = [sys.executable, "-c", "import sys; print('CUDA out of memory while loading'); sys.exit(3)"]
    with pytest.raises(UserError) as e:
        server.launch(
            cmd,
            host="127.0.0.1",
            port=server.free_port(),
            model="m",
            kind="vllm",
            ready_timeout_s=30,
            log_path=tmp_path / "s.log",
        )
    msg = str(e.value)
    assert "exited with status 3" in msg and "CUDA out of memory while loading" in msg and "\n" not in msg


def test_server_that_never_becomes_ready_is_stopped_and_one_line(tmp_path):
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); print('loading...', flush=True); time.sleep(600)"
    t0 = time.monotonic()
    with pytest.raises(UserError) as e:
        server.launch(
            [sys.executable, "-c", code],
            host="127.0.0.1",
            port=server.free_port(),
            model="m",
            kind="command",
            ready_timeout_s=2,
            log_path=tmp_path / "s.log",
        )
    assert time.monotonic() - t0 < 30
    msg = str(e.value)
    assert "not ready after 2 s" in msg and "/v1/models" in msg and "loading..." in msg and "\n" not in msg
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # the whole process group was stopped
        os.kill(pid, 0)


def test_serve_through_run_eval_fails_clearly_for_a_never_ready_command(tmp_path, embedded_path):
    from letitcode.config import EvalConfig
    from letitcode.pipeline import run_eval

    cfg = EvalConfig(
        model=str(embedded_path),
        benchmark="humaneval",
        limit=1,
        output_dir=str(tmp_path),
        device="cpu",
        serve=f"{sys.executable} -c 'import time; time.sleep(600)' {{model}} {{port}}",
        serve_ready_timeout_s=1,
        progress=False,
    )
    with pytest.raises(UserError, match="--serve command: the server was not ready after 1 s"):
        run_eval(cfg)
    assert (tmp_path / "server.log").exists() and not (tmp_path / "manifest.json").exists()


@pytest.mark.slow
def test_evaluate_run_serve_transformers_end_to_end(tmp_path, embedded_path):
    """`evaluate/run.py --serve transformers`: the server starts, answers through the openai backend, lands in the
    manifest, and is stopped; the same command again resumes from the cache (keyed by weights, not port)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "evaluate/run.py",
        "--model",
        "embedded",
        "--serve",
        "transformers",
        "--device",
        "cpu",
        "--benchmark",
        "leetcode",
        "--limit",
        "2",
        "--max_new_tokens",
        "16",
        "--concurrency",
        "2",
        "--output_dir",
        str(out),
        "--progress",
        "false",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out / "manifest.json").read_text())
    assert m["backend"]["backend"] == "openai" and m["server"]["kind"] == "transformers"
    # the manifest names the served folder without its local path (it travels into datasets and cards)
    assert (
        m["server"]["command"][1:3] == ["serve", embedded_path.name]
        or embedded_path.name in m["server"]["command"]
    )
    assert str(embedded_path) not in json.dumps(m)
    assert m["served_model"]["hub_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert m["generation"]["requests"] == 2 and m["generation"]["tokens"] > 0
    assert (
        m["prompt"]["style"] == "chat"
    )  # read from the local tokenizer's template, not claimed by the endpoint
    # stopped: nothing listens on its port any more
    import httpx

    port = m["backend"]["endpoint"].rsplit(":", 1)[1].split("/")[0]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and "resuming: 2 of 2" in proc.stdout, proc.stderr[-2000:]
