"""Generation backends.

- endpoint backends: a dead endpoint fails fast naming the URL; retries on 429/5xx with backoff; no retry
  on other 4xx; several requests in flight (a scripted HTTP server on 127.0.0.1 checks the client-side
  behaviour: the order of failures and the concurrency);
- the real thing (slow): `transformers serve` with the embedded model, driven by icl/run.py through both
  the `openai` and the `tgi` backend, stopped by its PID afterwards;
- the local backend (slow): continuous batching gives the same greedy answers as static batching, and
  counts useful tokens only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import REPO

from letitcode.backends import make_backend
from letitcode.backends.base import DecodingParams, GenRequest
from letitcode.errors import UserError

CHAT = [{"role": "user", "content": "Say hi."}]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed on exit: nothing listens there


@pytest.mark.parametrize("kind", ["openai", "tgi"])
def test_dead_endpoint_is_a_clear_error_within_the_timeout(kind):
    url = f"http://127.0.0.1:{closed_port()}" + ("/v1" if kind == "openai" else "")
    t0 = time.monotonic()
    with pytest.raises(UserError, match="not reachable") as err:
        make_backend(kind, "auto", endpoint=url, concurrency=2, timeout_s=5)
    assert time.monotonic() - t0 < 5
    assert url.removesuffix("/v1") in str(err.value)


@pytest.mark.parametrize("kind", ["openai", "tgi"])
def test_endpoint_arguments_are_checked(kind):
    with pytest.raises(UserError, match="needs --endpoint"):
        make_backend(kind, "auto", endpoint=None)
    with pytest.raises(UserError, match="not an http"):
        make_backend(kind, "auto", endpoint="127.0.0.1:8000")
    with pytest.raises(UserError, match="concurrency"):
        make_backend(kind, "auto", endpoint="http://127.0.0.1:1", concurrency=0)


class Scripted:
    """A tiny OpenAI-compatible server: answers per a script of status codes, and records concurrency."""

    def __init__(self, statuses=(), delay_s=0.0, model="m", tgi=False):
        self.statuses = list(statuses)
        self.delay_s = delay_s
        self.model = model
        self.tgi = tgi  # also speak TGI's own API: GET /info and the native generate route (POST /)
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.posts = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if owner.tgi and self.path == "/info":
                    self._send(200, {"model_id": owner.model, "model_sha": "abc123", "version": "3.3.0"})
                elif self.path.endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": owner.model, "object": "model"}]})
                else:
                    self._send(404, {"detail": "not found"})

            def do_POST(self):
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.lock:
                    owner.bodies.append({"path": self.path, **req})
                    owner.posts += 1
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                    status = owner.statuses.pop(0) if owner.statuses else 200
                try:
                    time.sleep(owner.delay_s)
                    if status != 200:
                        self._send(status, {"detail": f"scripted {status}"})
                        return
                    if "inputs" in req:  # TGI's native route: POST / answers a list with one generation
                        if not owner.tgi or self.path not in ("/", "/generate"):
                            self._send(404, {"error": "no such route"})
                            return
                        n = min(7, req["parameters"]["max_new_tokens"])
                        finish = "length" if n == req["parameters"]["max_new_tokens"] else "eos_token"
                        details = {
                            "finish_reason": finish,
                            "generated_tokens": n,
                            "seed": req["parameters"].get("seed"),
                            "prefill": [],
                            "tokens": [],
                        }
                        self._send(200, [{"generated_text": " return 1" if n else "", "details": details}])
                        return
                    text = "echo: " + req["messages"][-1]["content"]
                    self._send(
                        200,
                        {
                            "id": "x",
                            "object": "chat.completion",
                            "created": 0,
                            "model": req["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": text},
                                }
                            ],
                            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
                        },
                    )
                finally:
                    with owner.lock:
                        owner.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _requests(n):
    return [GenRequest([{"role": "user", "content": f"q{i}"}], f"key{i}") for i in range(n)]


@pytest.mark.parametrize("kind", ["openai", "tgi"])
def test_retries_on_429_and_5xx_then_succeeds(kind):
    with Scripted(statuses=[429, 503, 500]) as srv:
        b = make_backend(kind, "auto", endpoint=srv.url, concurrency=1, timeout_s=10)
        b.backoff_s = 0.01
        out = dict(b.generate(_requests(1), DecodingParams(max_new_tokens=8)))
    assert out[0].text == "echo: q0" and out[0].n_tokens == 5
    assert out[0].extra["attempts"] == 4 and srv.posts == 4
    assert b.describe()["model"] == "m" and b.cache_key.startswith("endpoint-")


def test_gives_up_after_max_retries_naming_the_url():
    with Scripted(statuses=[503] * 10) as srv:
        b = make_backend("openai", "auto", endpoint=srv.url, concurrency=1, timeout_s=10)
        b.backoff_s, b.max_retries = 0.01, 2
        with pytest.raises(UserError, match="kept failing after 3 attempts") as err:
            list(b.generate(_requests(1), DecodingParams()))
    assert srv.url in str(err.value) and srv.posts == 3


@pytest.mark.parametrize("kind", ["openai", "tgi"])
def test_other_4xx_is_not_retried(kind):
    with Scripted(statuses=[400]) as srv:
        b = make_backend(kind, "auto", endpoint=srv.url, concurrency=1, timeout_s=10)
        with pytest.raises(UserError, match="HTTP 400"):
            list(b.generate(_requests(1), DecodingParams()))
    assert srv.posts == 1


def test_request_timeout_is_respected():
    with Scripted(delay_s=3.0) as srv:
        b = make_backend("openai", "auto", endpoint=srv.url, concurrency=1, timeout_s=0.5)
        b.backoff_s, b.max_retries = 0.01, 1
        t0 = time.monotonic()
        with pytest.raises(UserError, match=srv.url.split("//")[1]):
            list(b.generate(_requests(1), DecodingParams()))
        assert time.monotonic() - t0 < 2.5  # two attempts of 0.5 s each, not the server's 3 s


@pytest.mark.parametrize("kind", ["openai", "tgi"])
def test_several_requests_in_flight_and_every_answer_once(kind):
    with Scripted(delay_s=0.3) as srv:
        b = make_backend(kind, "auto", endpoint=srv.url, concurrency=4, timeout_s=10)
        t0 = time.monotonic()
        out = list(b.generate(_requests(8), DecodingParams()))
        wall = time.monotonic() - t0
    assert sorted(i for i, _ in out) == list(range(8))
    assert all(g.text == f"echo: q{i}" for i, g in out)
    assert srv.max_in_flight == 4
    assert wall < 8 * 0.3  # concurrent, not one after another


def test_model_name_must_be_served():
    with Scripted(model="served-model") as srv:
        with pytest.raises(UserError, match="not served"):
            make_backend("openai", "other-model", endpoint=srv.url)
        assert make_backend("openai", "served-model", endpoint=srv.url).model_name == "served-model"
        with pytest.raises(UserError, match="not the embedded model"):
            make_backend("openai", "embedded", endpoint=srv.url)


@pytest.mark.parametrize("kind", ["openai", "tgi"])
def test_gemma_endpoint_gets_the_system_turn_folded_and_reports_prompt_tokens(kind):
    """Gemma's chat template rejects a system turn: the request carries it in the first user turn. The
    server's usage report gives the record its n_prompt_tokens."""
    from letitcode import prompts

    system_then_user = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "q"}]
    with Scripted(model="google/gemma-7b-it") as srv:
        b = make_backend(kind, "google/gemma-7b-it", endpoint=srv.url, concurrency=1)
        ((_, gen),) = list(b.generate([GenRequest(system_then_user, "k")], DecodingParams(max_new_tokens=4)))
        sent = srv.bodies[0]["messages"]
        assert [m["role"] for m in sent] == ["user"] and sent[0]["content"] == "Be terse.\n\nq"
        assert gen.extra["prompt_tokens"] == 3
        assert b.prompt_info(system_then_user)["prompt"] == prompts.fold_system(system_then_user)
    with Scripted(model="meta-llama/Llama-3.1-8B-Instruct") as srv:
        b = make_backend(kind, "meta-llama/Llama-3.1-8B-Instruct", endpoint=srv.url, concurrency=1)
        list(b.generate([GenRequest(system_then_user, "k")], DecodingParams(max_new_tokens=4)))
        assert [m["role"] for m in srv.bodies[0]["messages"]] == ["system", "user"]


def test_tgi_native_generate_route_for_completion_prompts():
    """Completion prompts take TGI's own route (POST / with inputs/parameters, details for the token count and
    finish reason) and the server's /info names the model; chat prompts still take the chat route."""
    with Scripted(model="bigcode/tiny", tgi=True) as srv:
        b = make_backend("tgi", "auto", endpoint=srv.url + "/v1", concurrency=2, timeout_s=10)
        reqs = [GenRequest("def f():\n", "k0"), GenRequest("def g():\n", "k1")]
        out = dict(b.generate(reqs, DecodingParams(max_new_tokens=7, stop=("\ndef",))))
        chat = dict(b.generate(_requests(1), DecodingParams(max_new_tokens=8)))
    assert [(g.text, g.n_tokens, g.finish_reason) for _, g in sorted(out.items())] == [
        (" return 1", 7, "length")
    ] * 2
    native = sorted((x for x in srv.bodies if "inputs" in x), key=lambda x: x["inputs"])
    assert [x["inputs"] for x in native] == ["def f():\n", "def g():\n"] and {x["path"] for x in native} == {
        "/"
    }
    params = native[0]["parameters"]
    assert params["max_new_tokens"] == 7 and params["details"] is True and params["do_sample"] is False
    assert params["stop"] == ["\ndef"] and params["return_full_text"] is False
    assert chat[0].text == "echo: q0" and any(x["path"] == "/v1/chat/completions" for x in srv.bodies)
    assert b.describe()["server"]["model_id"] == "bigcode/tiny" and b.describe()["model"] == "bigcode/tiny"


def test_tgi_completion_prompt_on_a_server_without_the_native_route_says_what_to_use():
    with Scripted(model="m") as srv:  # an OpenAI-compatible server only (vLLM, transformers serve)
        b = make_backend("tgi", "m", endpoint=srv.url, concurrency=1, timeout_s=10)
        with pytest.raises(UserError, match="no TGI generate route") as err:
            list(b.generate([GenRequest("def f():\n", "k")], DecodingParams(max_new_tokens=4)))
    assert srv.url in str(err.value) and "--backend openai" in str(err.value)


# ---------------------------------------------------------------------------------------- real server


def _icl(args, env, cwd):
    return subprocess.run(
        [sys.executable, str(REPO / "icl" / "run.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=900,
    )


@pytest.mark.slow
def test_transformers_serve_through_openai_and_tgi_backends(tmp_path):
    from letitcode import models
    from letitcode.server import start_server, stop_server

    path = models.resolve("embedded").path
    server = start_server(path, log_path=tmp_path / "serve.log")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    try:
        assert server.process.poll() is None
        runs = {
            "openai": ["--endpoint", f"{server.url}/v1", "--strategy", "zero_shot"],
            # few-shot exemplars from the embedded HumanEval: works offline, exercises retrieval end to end
            "tgi": [
                "--endpoint",
                server.url,
                "--strategy",
                "few_shot",
                "--exemplar_dataset",
                "humaneval",
                "--k_shots",
                "1",
            ],
        }
        for kind, extra in runs.items():
            out = tmp_path / kind
            args = [
                "--backend",
                kind,
                "--model",
                "embedded",
                "--benchmark",
                "leetcode",
                "--limit",
                "2",
                "--max_new_tokens",
                "24",
                "--concurrency",
                "2",
                "--output_dir",
                str(out),
                "--progress",
                "false",
                *extra,
            ]
            proc = _icl(args, env, tmp_path)
            assert proc.returncode == 0, proc.stderr[-3000:] + server.log_tail()
            samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
            results = json.loads((out / "results.json").read_text())
            manifest = json.loads((out / "manifest.json").read_text())
            assert len(samples) == 2 and results["n_problems"] == 2
            assert all(s["status"] and "latency_s" in s and s["n_tokens"] > 0 for s in samples)
            assert manifest["backend"]["backend"] == kind
            assert manifest["backend"]["endpoint"].startswith(server.url)
            assert (
                manifest["backend"]["model"] == Path(path).name
            )  # the served folder, without its local path
            assert manifest["generation"]["requests"] == 2 and manifest["generation"]["tokens"] > 0
            if kind == "tgi":
                assert manifest["prompt"]["strategy"] == "few_shot"
                assert manifest["prompt"]["exemplars"]["source"]["name"] == "humaneval"
                assert manifest["prompt"]["exemplars"]["k"] == 1
        # Resumable: the same command again asks the server nothing.
        proc = _icl(args, env, tmp_path)
        assert proc.returncode == 0 and "resuming: 2 of 2" in proc.stdout
        assert json.loads((out / "manifest.json").read_text())["generation"]["requests"] == 0
    finally:
        stop_server(server)
    assert server.process.poll() is not None  # stopped by its PID
    with pytest.raises(UserError, match="not reachable"):
        make_backend("openai", "auto", endpoint=f"{server.url}/v1", timeout_s=5)


# ---------------------------------------------------------------------------------------- local backend


@pytest.mark.slow
def test_local_continuous_batching_matches_static_and_counts_useful_tokens():
    from letitcode.backends.local import LocalBackend

    # batch 2 for 4 requests: rows leave and new prompts join the cache mid-flight
    b = LocalBackend("embedded", batch_size=2)
    assert b.mode == "continuous"  # the default on CPU
    questions = ["Say hi.", "Count to three.", "What is 2+2?", "Write a haiku about the sea."]
    reqs = [GenRequest([{"role": "user", "content": q}], f"k{i}") for i, q in enumerate(questions)]
    params = DecodingParams(max_new_tokens=16)
    cont = dict(b.generate(reqs, params))
    b.mode = "static"
    stat = dict(b.generate(reqs, params))
    assert sorted(cont) == [0, 1, 2, 3]
    for i in range(4):
        assert cont[i].text == stat[i].text  # greedy: the same answers as padded static batches
        assert cont[i].n_tokens == stat[i].n_tokens <= 16
        assert (cont[i].finish_reason == "length") == (cont[i].n_tokens == 16)
    assert any(g.finish_reason == "stop" for g in cont.values())  # some end at EOS, which is not counted
    # Stop strings end a sequence early.
    b.mode = "continuous"
    stopped = dict(b.generate(reqs[1:2], DecodingParams(max_new_tokens=40, stop=(" ",))))
    assert stopped[0].n_tokens < 40 and stopped[0].finish_reason == "stop"
    # transformers' paged manager answers every request too.
    b.mode = "paged"
    paged = dict(b.generate(reqs[:2], DecodingParams(max_new_tokens=8)))
    assert sorted(paged) == [0, 1] and all(0 < g.n_tokens <= 8 for g in paged.values())
