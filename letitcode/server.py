"""Start and stop a local `transformers serve` (an OpenAI-compatible server) for the endpoint backends.

    with serve(letitcode.models.resolve("embedded").path) as server:
        ... icl/run.py --backend openai --endpoint {server.url}/v1 --model {server.model} ...

    python -m letitcode.server embedded [--port 8000] [--continuous-batching]   # serve until Ctrl-C

The server is pinned to one model folder (it then refuses requests for any other name) and listens on
127.0.0.1 only. It needs the `transformers[serving]` extra (fastapi, uvicorn). Stopping sends SIGTERM to
the server's own process group (it was started in a new session), then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
    return [sys.executable, "-c", "import sys; from transformers.cli.transformers import main; sys.exit(main())", "serve"]


@dataclass
class Server:
    process: subprocess.Popen
    host: str
    port: int
    model: str  # the name requests must use: the folder the server is pinned to
    log_path: Path

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


def start_server(
    model_path: str,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    continuous_batching: bool = False,
    dtype: str | None = None,
    ready_timeout_s: float = 180.0,
    cb_num_blocks: int = 64,
    cb_max_batch_tokens: int = 1024,
    log_path: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    """Start `transformers serve MODEL_PATH` and wait until GET /health answers 200.

    With continuous batching the KV cache is sized explicitly (`cb_num_blocks` pages of 256 tokens; 64 hold
    sixteen 1,000-token sequences): on CPU the server's default takes a share of all free RAM."""
    import httpx

    if not Path(model_path).is_dir():
        raise UserError(f"transformers serve needs a model folder (config.json + weights), got {model_path!r}")
    port = port or free_port(host)
    cmd = [*_serve_command(), model_path, "--host", host, "--port", str(port), "--device", "cpu", "--log-level", "warning"]
    if continuous_batching:
        cmd += ["--continuous-batching", "--cb-num-blocks", str(cb_num_blocks), "--cb-max-batch-tokens", str(cb_max_batch_tokens)]
    if dtype:
        cmd += ["--dtype", dtype]
    log = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="transformers-serve-", suffix=".log")[1])
    run_env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), **(env or {})}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=run_env, start_new_session=True)
    server = Server(proc, host, port, model_path, log)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"transformers serve exited with status {proc.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_server(server)
    raise UserError(f"transformers serve was not ready after {ready_timeout_s:.0f} s:\n{server.log_tail()}")


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
def serve(model_path: str, **kwargs) -> Iterator[Server]:
    server = start_server(model_path, **kwargs)
    try:
        yield server
    finally:
        stop_server(server)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from letitcode import models

    parser = argparse.ArgumentParser(prog="python -m letitcode.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="embedded, a local model folder, or ORG/NAME[@REVISION]")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--continuous-batching", action="store_true")
    parser.add_argument("--dtype", default=None)
    args = parser.parse_args(argv)
    try:
        path = models.resolve(args.model).path
        server = start_server(
            path, host=args.host, port=args.port, continuous_batching=args.continuous_batching, dtype=args.dtype
        )
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"serving {path} at {server.url}/v1 (model name: {server.model}); log: {server.log_path}; Ctrl-C stops it")
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
