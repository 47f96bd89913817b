"""What the two endpoint backends (`tgi`, `openai`) share: many requests in flight, retries, timeouts.

A thread pool keeps `concurrency` requests in flight (the clients are synchronous and thread-safe; the work
is waiting on the network, so threads are enough). Each answer is yielded only once it is complete, so the
pipeline caches whole answers and a rerun after a crash re-asks nothing already answered.

Failures:
- 408/409/425/429/5xx, a dropped connection or a timeout: retried with exponential backoff and jitter
  (`max_retries`, default 4), then a `UserError` naming the URL;
- any other HTTP error (400 bad model name, 404 no such route, 401): a `UserError` at once;
- an endpoint that is down: the constructor probes it and fails within the connect timeout, naming the URL.

Prompts are sent as the evaluator renders them; the server tokenizes. What the servers do was read from their
code: `transformers serve` tokenizes a `/v1/completions` prompt with the tokenizer's special tokens
(`tokenizer(prompt)`), as vLLM (`add_special_tokens` defaults to true for completions) and TGI's generate route
do, so a completion prompt gets the BOS that training (TRL) and the local backend give it; chat prompts get the
server's chat template, which writes BOS itself (tokenized without special tokens, as locally). So no BOS text is
prepended here (it would be doubled). The prompt style is never assumed: `letitcode.prompts.resolve_style`
needs --prompt_style, a training manifest or a seed-table entry for an endpoint model. For models whose chat
template rejects a system turn (Gemma, `prompts.NO_SYSTEM_TURN_NAMES`) it is folded into the first user turn,
as the local backend does after trying the template.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from letitcode.backends.base import Backend, DecodingParams, Generation, GenRequest
from letitcode.errors import UserError
from letitcode.models import EMBEDDED_MODELS
from letitcode.prompts import Prompt, fold_system, rejects_system_turn

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# Model specs that mean "whatever the endpoint serves" rather than a name to send.
AUTO_MODELS = ("auto", "")


class EndpointDown(Exception):
    """The endpoint could not be reached (refused, DNS, reset, timeout): retryable."""


@dataclass
class Failure(Exception):
    """A classified request failure: `retry` says whether another attempt may succeed."""

    message: str
    retry: bool
    status: int | None = None

    def __str__(self) -> str:
        return self.message


def normalize_endpoint(endpoint: str | None, backend: str) -> str:
    if not endpoint:
        raise UserError(f"--backend {backend} needs --endpoint URL (e.g. http://127.0.0.1:8000/v1)")
    parsed = urlparse(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UserError(f"--endpoint {endpoint!r} is not an http(s) URL such as http://127.0.0.1:8000/v1")
    return endpoint.rstrip("/")


def request_seed(params: DecodingParams, key: str) -> int:
    """A per-request seed from the cache key, so a resumed sampled run asks the server for the same draw."""
    return int(hashlib.sha256(f"{params.seed}:{key}".encode()).hexdigest()[:8], 16) % (2**31)


# What a server lists for each embedded model: its Hub id, or the converted folder (named after it).
EMBEDDED_SERVED = {"embedded": "SmolLM2-135M-Instruct", "embedded-base": "gemma-3-270m"}


def is_embedded_name(name: str, which: str = "embedded") -> bool:

    hub_id = EMBEDDED_MODELS[which][1]
    return name == hub_id or Path(name.rstrip("/")).name.startswith(EMBEDDED_SERVED[which])


class EndpointBackend(Backend):
    """Base of the endpoint backends. Subclasses implement `_probe_models` and `_request`."""

    name = "endpoint"

    def __init__(
        self,
        model: str,
        *,
        endpoint: str | None = None,
        concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        connect_timeout_s: float = 10.0,
    ):
        if concurrency < 1:
            raise UserError(f"--concurrency must be at least 1, got {concurrency}")
        if timeout_s <= 0:
            raise UserError(f"--request-timeout-s must be positive, got {timeout_s}")
        self.endpoint = normalize_endpoint(endpoint, self.name)
        self.concurrency = concurrency
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.connect_timeout_s = min(connect_timeout_s, self.timeout_s)
        self._local = threading.local()
        served = self._probe_models()
        self.model_name = self._pick_model(model, served)
        self.served_models = served
        ident = f"{self.name}|{self.endpoint}|{self.model_name}"
        self._cache_key = "endpoint-" + hashlib.sha256(ident.encode()).hexdigest()[:16]

    @property
    def cache_key(self) -> str:
        """The endpoint, its backend kind and the model it serves; `letitcode.server` re-keys a server it
        started by the weights it serves (its port is random)."""
        return self._cache_key

    @cache_key.setter
    def cache_key(self, key: str) -> None:
        self._cache_key = key

    # ------------------------------------------------------------------ hooks

    def _probe_models(self) -> list[str]:
        """Reach the endpoint (raising UserError naming the URL if it is down) and list the models it serves
        (empty when it does not say)."""
        raise NotImplementedError

    def _request(self, prompt: Prompt, params: DecodingParams, seed: int) -> Generation:
        """One request; raise `Failure` (classified) or `EndpointDown`."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared

    def _pick_model(self, model: str, served: list[str]) -> str:
        """The model name to send. `auto` takes the one model the server lists; `embedded` must be served
        (a `transformers serve` pinned to the converted folder lists that folder)."""
        if model in AUTO_MODELS or model in EMBEDDED_SERVED:
            if model in EMBEDDED_SERVED:
                matches = [m for m in served if is_embedded_name(m, model)]
                if len(matches) == 1:
                    return matches[0]
                if served:
                    raise UserError(
                        f"--model {model}: the endpoint {self.endpoint} serves {served[:5]}, not the embedded "
                        "model; pass --model with one of those names"
                    )
            if len(served) == 1:
                return served[0]
            raise UserError(
                f"--model {model or 'auto'}: the endpoint {self.endpoint} serves "
                f"{served[:5] if served else 'no listed models'}; pass --model NAME"
            )
        if served and model not in served:
            raise UserError(f"--model {model!r} is not served by {self.endpoint}; it serves {served[:5]}")
        return model

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "endpoint": self.endpoint,
            "model": self.model_name,
            "concurrency": self.concurrency,
            "timeout_s": self.timeout_s,
            "max_retries": self.max_retries,
        }

    def fit(self, prompt: Prompt) -> Prompt:
        """The prompt as sent: a system turn folded for models whose template rejects one."""
        if isinstance(prompt, list) and rejects_system_turn(self.model_name):
            return fold_system(prompt)
        return prompt

    def prompt_info(self, prompt: Prompt) -> dict[str, Any]:
        """The prompt as sent; its token count comes from the server's usage report (None until then)."""
        return {"prompt": self.fit(prompt), "n_prompt_tokens": None, "prompt_bos": None}

    def _down(self, why: Any) -> UserError:
        return UserError(f"endpoint {self.endpoint} is not reachable ({why}); is the server running?")

    def _with_retries(self, req: GenRequest, params: DecodingParams) -> Generation:
        seed = request_seed(params, req.key)
        t0 = time.perf_counter()
        attempt = 0
        while True:
            try:
                gen = self._request(self.fit(req.prompt), params, seed)
                gen.latency_s = time.perf_counter() - t0  # what a user waits, retries included
                gen.extra["attempts"] = attempt + 1
                return gen
            except EndpointDown as e:
                failure = Failure(f"not reachable: {e}", retry=True)
            except Failure as f:
                failure = f
            if not failure.retry:
                raise UserError(f"endpoint {self.endpoint} refused a request: {failure}")
            if attempt >= self.max_retries:
                if failure.status is None:
                    raise self._down(f"{failure}; gave up after {attempt + 1} attempts")
                raise UserError(
                    f"endpoint {self.endpoint} kept failing after {attempt + 1} attempts: {failure}"
                )
            # Exponential backoff with full jitter: concurrent workers do not retry in lockstep.
            time.sleep(random.uniform(0, self.backoff_s * 2**attempt))
            attempt += 1

    def generate(
        self, requests: Sequence[GenRequest], params: DecodingParams
    ) -> Iterator[tuple[int, Generation]]:
        if not requests:
            return
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"letitcode-{self.name}")
        pending: dict[Future, int] = {}
        todo = iter(range(len(requests)))
        try:
            # Submit no more than `concurrency` at a time, so a failure stops the run without a long queue
            # of doomed requests behind it.
            for i in todo:
                pending[pool.submit(self._with_retries, requests[i], params)] = i
                if len(pending) >= self.concurrency:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = pending.pop(fut)
                    gen = fut.result()  # raises the request's UserError
                    yield i, gen
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending[pool.submit(self._with_retries, requests[nxt], params)] = nxt
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
