"""Start and stop an OpenAI-compatible server for a model: vLLM, `transformers serve`, or any command.

    with serve(letitcode.models.resolve("embedded").path) as server:       # transformers serve, for tests
        ... icl/run.py --backend openai --endpoint {server.url}/v1 --model {server.model} ...

    evaluate/run.py --model google/gemma-7b --serve vllm ...               # the GPU path (serve_for_eval)
    evaluate/run.py --model ADAPTER_DIR --serve vllm ...                    # --enable-lora --lora-modules
    evaluate/run.py --model M --serve "my-server --model {model} --port {port}"

    python -m letitcode.server embedded [--port 8000] [--continuous-batching]   # serve until Ctrl-C

`--serve` kinds (`server_command`):
- `vllm`: `vllm serve MODEL --host 127.0.0.1 --port P` (plus `--dtype`, and for an adapter `--enable-lora
  --lora-modules NAME=PATH --max-lora-rank R` on its base, and `--quantization bitsandbytes` for a QLoRA
  adapter's 4-bit base);
- `transformers`: `transformers serve MODEL --host 127.0.0.1 --port P --device D` (the `transformers[serving]`
  extra; the server is pinned to that one model and refuses any other name);
- any other string: a command template with `{model}` and `{port}` (and optionally `{host}`), split like a
  shell line.

A server counts as ready once GET /v1/models answers 200. One that exits first, or is not ready within the
timeout, is a one-line `UserError` with the tail of its log. Stopping sends SIGTERM to the server's own
process group (it was started in a new session), then SIGKILL after a grace period. A `--device cuda:N` pins
the server to that GPU through CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from letitcode import devices, models
from letitcode.data.problem import slugify
from letitcode.devices import DEVICE_HELP
from letitcode.errors import UserError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _serve_command() -> list[str]:
    exe = Path(sys.executable).with_name("transformers")
    if exe.exists():
        return [str(exe), "serve"]
    found = shutil.which("transformers")
    if found:
        return [found, "serve"]
    return [
        sys.executable,
        "-c",
        "import sys; from transformers.cli.transformers import main; sys.exit(main())",
        "serve",
    ]


@dataclass
class Server:
    process: subprocess.Popen
    host: str
    port: int
    model: str  # the name requests must use ("auto": the one model the server lists)
    log_path: Path
    kind: str = "transformers"  # vllm | transformers | command
    command: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def manifest(self) -> dict[str, Any]:
        return {"kind": self.kind, "command": self.command, "model": self.model}


def _one_line_tail(server: Server, n: int = 8) -> str:
    """The log's last lines joined into one line (errors stay one line)."""
    lines = [ln.strip() for ln in server.log_tail(n).splitlines() if ln.strip()]
    return " | ".join(lines) or "(empty log)"


def launch(
    command: Sequence[str],
    *,
    host: str,
    port: int,
    model: str,
    kind: str,
    ready_timeout_s: float = 180.0,
    log_path: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    """Start `command` in its own process group and wait until GET http://host:port/v1/models answers 200."""
    import httpx

    log = (
        Path(log_path)
        if log_path
        else Path(tempfile.mkstemp(prefix=f"letitcode-{kind}-serve-", suffix=".log")[1])
    )
    run_env = {**os.environ, **(env or {})}
    try:
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                list(command), stdout=fh, stderr=subprocess.STDOUT, env=run_env, start_new_session=True
            )
    except OSError as e:  # the executable is missing or not executable
        raise UserError(f"--serve {kind}: cannot run {command[0]!r}: {e.strerror or e}") from None
    server = Server(proc, host, port, model, log, kind, list(command))
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(
                f"--serve {kind}: the server exited with status {proc.returncode} before it was ready "
                f"(log {log}): {_one_line_tail(server)}"
            )
        try:
            if httpx.get(f"{server.url}/v1/models", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_server(server)
    raise UserError(
        f"--serve {kind}: the server was not ready after {ready_timeout_s:.0f} s (no answer from "
        f"{server.url}/v1/models; log {log}): {_one_line_tail(server)}"
    )


def start_server(
    model_path: str,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    continuous_batching: bool = False,
    dtype: str | None = None,
    device: str = "cpu",
    attn_implementation: str | None = None,
    quantization: str | None = None,
    ready_timeout_s: float = 180.0,
    cb_num_blocks: int = 64,
    cb_max_batch_tokens: int = 1024,
    log_path: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    """Start `transformers serve MODEL_PATH` and wait until it answers.

    With continuous batching the KV cache is sized explicitly (`cb_num_blocks` pages of 256 tokens; 64 hold
    sixteen 1,000-token sequences): on CPU the server's default takes a share of all free RAM."""
    if not Path(model_path).is_dir():
        raise UserError(
            f"transformers serve needs a model folder (config.json + weights), got {model_path!r}"
        )
    port = port or free_port(host)
    cmd = [
        *_serve_command(),
        model_path,
        "--host",
        host,
        "--port",
        str(port),
        "--device",
        device,
        "--log-level",
        "warning",
    ]
    if continuous_batching:
        cmd += [
            "--continuous-batching",
            "--cb-num-blocks",
            str(cb_num_blocks),
            "--cb-max-batch-tokens",
            str(cb_max_batch_tokens),
        ]
    if dtype and dtype != "auto":
        cmd += ["--dtype", dtype]
    if attn_implementation and attn_implementation != "auto":
        cmd += ["--attn-implementation", attn_implementation]
    if quantization:
        cmd += ["--quantization", quantization]
    run_env = {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), **(env or {})}
    return launch(
        cmd,
        host=host,
        port=port,
        model=model_path,
        kind="transformers",
        ready_timeout_s=ready_timeout_s,
        log_path=log_path,
        env=run_env,
    )


def stop_server(server: Server, grace_s: float = 10.0) -> None:
    """SIGTERM the server's process group (by its PID, which leads the group), SIGKILL if it lingers."""
    proc = server.process
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)


@contextlib.contextmanager
def serve(model_path: str, **kwargs: Any) -> Iterator[Server]:
    server = start_server(model_path, **kwargs)
    try:
        yield server
    finally:
        stop_server(server)


# ------------------------------------------------------------------------------------------------ --serve


def _vllm_executable() -> list[str]:
    exe = Path(sys.executable).with_name("vllm")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("vllm")
    if found:
        return [found]
    raise UserError(
        "--serve vllm needs vLLM on this machine (pip install vllm, on a GPU machine), or pass "
        "--serve transformers or a server command with {model} and {port}"
    )


def _lora_rank(adapter_dir: str) -> int | None:
    try:
        return int(json.loads((Path(adapter_dir) / "adapter_config.json").read_text()).get("r"))
    except (OSError, ValueError, TypeError):
        return None


@dataclass
class ServePlan:
    """What `--serve` starts: the command, the port and the model name requests use."""

    kind: str
    command: list[str]
    host: str
    port: int
    model: str
    env: dict[str, str]


def server_command(
    serve: str,
    resolved: Any,
    *,
    port: int,
    host: str = "127.0.0.1",
    device: str = "auto",
    dtype: str = "auto",
    attn_implementation: str = "auto",
    quantization: str = "auto",
) -> ServePlan:
    """The server command for `--serve vllm|transformers|TEMPLATE` and a resolved model (see the module doc).

    `device` is a resolved device ('cpu' or 'cuda:N'); a GPU is passed to the server as CUDA_VISIBLE_DEVICES."""

    env: dict[str, str] = {}
    if devices.is_cuda(device):
        env["CUDA_VISIBLE_DEVICES"] = devices.physical_gpu(device)
    quant = devices.resolve_quantization(quantization, resolved, device) if resolved.is_adapter else None
    base = resolved.base if resolved.is_adapter and resolved.base else resolved
    if serve == "vllm":
        cmd = [*_vllm_executable(), "serve", base.path, "--host", host, "--port", str(port)]
        served_name = base.hub_id or base.path
        cmd += ["--served-model-name", served_name]
        if dtype != "auto":
            cmd += ["--dtype", dtype]
        if resolved.is_adapter:
            model = slugify(Path(resolved.path.rstrip("/")).name) or "adapter"
            cmd += ["--enable-lora", "--lora-modules", f"{model}={resolved.path}"]
            rank = _lora_rank(resolved.path)
            if rank and rank > 16:  # vLLM's default --max-lora-rank is 16
                cmd += ["--max-lora-rank", str(rank)]
            if quant:  # a QLoRA adapter runs on the 4-bit base it was trained on (in-flight bitsandbytes)
                cmd += ["--quantization", "bitsandbytes"]
        else:
            model = served_name
        return ServePlan("vllm", cmd, host, port, model, env)
    if serve == "transformers":
        cmd = [
            *_serve_command(),
            resolved.path,
            "--host",
            host,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        # the server's own "auto" would spread a model over every GPU; pinned by CUDA_VISIBLE_DEVICES instead
        cmd += ["--device", "cuda:0" if devices.is_cuda(device) else "cpu"]
        if dtype != "auto":
            cmd += ["--dtype", dtype]
        if attn_implementation != "auto":
            cmd += ["--attn-implementation", attn_implementation]
        if quant:
            cmd += ["--quantization", "bnb-4bit"]
        if devices.is_cuda(device):
            cmd += ["--continuous-batching"]
        return ServePlan(
            "transformers",
            cmd,
            host,
            port,
            resolved.path,
            {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), **env},
        )
    if "{model}" not in serve or "{port}" not in serve:
        raise UserError(
            f"--serve {serve!r}: choose vllm, transformers, or a server command with {{model}} and {{port}}, "
            'e.g. "vllm serve {model} --port {port}"'
        )
    try:
        cmd = shlex.split(serve.format(model=shlex.quote(resolved.path), port=port, host=host))
    except (KeyError, IndexError, ValueError) as e:
        raise UserError(
            f"--serve {serve!r}: not a command template ({e}); only {{model}}, {{port}} and {{host}} are filled"
        ) from None
    return ServePlan("command", cmd, host, port, "auto", env)


def _prompt_style(resolved: Any) -> str:
    """chat when the model's tokenizer has a chat template, else completion: known locally, so a served
    base model is not given chat prompts it was never trained on (endpoints always claim a template)."""
    folder = Path(resolved.path)
    base = Path(resolved.base.path) if getattr(resolved, "base", None) else folder
    for d in (folder, base):
        if (d / "chat_template.jinja").exists() or (d / "chat_template.json").exists():
            return "chat"
        cfg = d / "tokenizer_config.json"
        if cfg.exists():
            try:
                return "chat" if json.loads(cfg.read_text()).get("chat_template") else "completion"
            except (OSError, json.JSONDecodeError):
                pass
    return "chat"


@contextlib.contextmanager
def serve_for_eval(cfg: Any) -> Iterator[tuple[Any, Any]]:
    """For `run_eval` with `cfg.serve`: start the server for `cfg.model` and yield (a copy of `cfg` that
    evaluates through the `openai` backend at it, that backend); the server is stopped afterwards. The manifest
    records the server command and the served model."""
    from letitcode.backends import make_backend

    if cfg.backend not in ("local", "openai"):
        raise UserError(
            f"--serve evaluates through --backend openai; --backend {cfg.backend} cannot be used with it"
        )
    device = devices.resolve_device(
        cfg.device
    )  # before anything starts: --device cuda without a GPU is one line
    dtype = devices.resolve_dtype(cfg.dtype, device) if cfg.dtype != "auto" else "auto"
    attn = (
        devices.resolve_attn(cfg.attn_implementation, device) if cfg.attn_implementation != "auto" else "auto"
    )
    resolved = models.resolve(cfg.model)
    port = cfg.serve_port or free_port()
    plan = server_command(
        cfg.serve,
        resolved,
        port=port,
        device=device,
        dtype=dtype,
        attn_implementation=attn,
        quantization=cfg.quantization,
    )
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    log = Path(cfg.output_dir) / "server.log"
    print(f"starting {plan.kind} server: {shlex.join(plan.command)} (log {log})", file=sys.stderr)
    server = launch(
        plan.command,
        host=plan.host,
        port=plan.port,
        model=plan.model,
        kind=plan.kind,
        ready_timeout_s=cfg.serve_ready_timeout_s,
        log_path=log,
        env=plan.env,
    )
    try:
        served = dataclasses.replace(
            cfg,
            backend="openai",
            endpoint=f"{server.url}/v1",
            model=plan.model,
            serve=None,
            prompt_style=cfg.prompt_style if cfg.prompt_style != "auto" else _prompt_style(resolved),
            extra_manifest={
                **cfg.extra_manifest,
                "server": {**server.manifest(), "device": device, "log": log.name},
                "served_model": resolved.manifest(),
            },
        )
        backend = make_backend(
            "openai",
            plan.model,
            endpoint=served.endpoint,
            concurrency=cfg.concurrency,
            timeout_s=cfg.request_timeout_s,
        )
        # keyed by the weights and the server kind, not the (random) port: a rerun resumes from the cache
        ident = f"served|{plan.kind}|{resolved.cache_key}|{backend.model_name}"
        backend.cache_key = "served-" + hashlib.sha256(ident.encode()).hexdigest()[:16]
        yield served, backend
    finally:
        stop_server(server)


def devices_help() -> str:

    return DEVICE_HELP


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m letitcode.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="embedded, a local model folder, or ORG/NAME[@REVISION]")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--continuous-batching", action="store_true")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--device", default="auto", help=devices_help())
    args = parser.parse_args(argv)
    try:
        from letitcode import devices

        device = devices.resolve_device(
            args.device
        )  # auto: the GPU when there is one, never silently the CPU
        path = models.resolve(args.model).path
        server = start_server(
            path,
            host=args.host,
            port=args.port,
            continuous_batching=args.continuous_batching,
            dtype=args.dtype,
            device="cuda:0" if devices.is_cuda(device) else "cpu",
            env={"CUDA_VISIBLE_DEVICES": devices.physical_gpu(device)} if devices.is_cuda(device) else None,
        )
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"serving {path} at {server.url}/v1 (model name: {server.model}); log: {server.log_path}; Ctrl-C stops it"
    )
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
