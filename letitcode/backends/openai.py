"""`openai` backend: any OpenAI-compatible server (vLLM, `transformers serve`, OpenAI itself).

    icl/run.py --backend openai --endpoint http://127.0.0.1:8000/v1 --model NAME ...

Chat prompts go to `/chat/completions`, completion prompts to `/completions`. The API key comes from
`OPENAI_API_KEY` (local servers accept any, so "EMPTY" is sent when it is unset). An endpoint without a
path gets `/v1` appended, the prefix every one of those servers uses. The client's own retries are off:
`EndpointBackend` retries (429/5xx/connection) with backoff so that both endpoint backends behave alike.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from letitcode.backends.base import DecodingParams, Generation
from letitcode.backends.endpoint import RETRY_STATUS, EndpointBackend, EndpointDown, Failure
from letitcode.prompts import Prompt


class OpenAIBackend(EndpointBackend):
    name = "openai"

    def __init__(self, model: str, *, endpoint: str | None = None, **kwargs: Any):
        if endpoint and urlparse(endpoint).path.rstrip("/") == "":
            endpoint = endpoint.rstrip("/") + "/v1"
        super().__init__(model, endpoint=endpoint, **kwargs)

    def _client(self, timeout: float | None = None) -> Any:
        import openai

        # One client per thread: cheap, and no connection pool shared across the worker threads.
        key = f"client-{timeout}"
        client = getattr(self._local, key, None)
        if client is None:
            client = openai.OpenAI(
                base_url=self.endpoint,
                api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"),
                timeout=timeout or self.timeout_s,
                max_retries=0,
            )
            setattr(self._local, key, client)
        return client

    def _probe_models(self) -> list[str]:
        import openai

        try:
            return sorted(m.id for m in self._client(self.connect_timeout_s).models.list())
        except openai.APIConnectionError as e:  # refused, DNS, timeout
            raise self._down(_reason(e)) from None
        except openai.APIStatusError as e:
            if e.status_code in (401, 403):
                raise self._down(f"HTTP {e.status_code}: check OPENAI_API_KEY") from None
            return []  # reachable, but it does not list models: send --model as given

    def _request(self, prompt: Prompt, params: DecodingParams, seed: int) -> Generation:
        import openai

        common: dict[str, Any] = {
            "model": self.model_name,
            "temperature": 0.0 if params.greedy else params.temperature,
            "top_p": 1.0 if params.greedy else params.top_p,
            "seed": seed,
        }
        if params.stop:
            common["stop"] = list(params.stop)[:4]  # OpenAI accepts at most 4 stop sequences
        try:
            if isinstance(prompt, str):
                resp = self._client().completions.create(
                    prompt=prompt, max_tokens=params.max_new_tokens, **common
                )
                choice = resp.choices[0]
                text = choice.text or ""
            else:
                resp = self._client().chat.completions.create(
                    messages=prompt, max_completion_tokens=params.max_new_tokens, **common
                )
                choice = resp.choices[0]
                text = choice.message.content or ""
        except openai.APIConnectionError as e:
            raise EndpointDown(_reason(e)) from None
        except openai.APIStatusError as e:
            raise Failure(
                f"HTTP {e.status_code}: {_body(e)}", retry=e.status_code in RETRY_STATUS, status=e.status_code
            ) from None
        usage = getattr(resp, "usage", None)
        n_tokens = int(usage.completion_tokens) if usage and usage.completion_tokens is not None else 0
        finish = "length" if choice.finish_reason == "length" else "stop"
        extra = (
            {"prompt_tokens": int(usage.prompt_tokens)} if usage and usage.prompt_tokens is not None else {}
        )
        return Generation(text=text, n_tokens=n_tokens, latency_s=0.0, finish_reason=finish, extra=extra)


def _reason(e: Exception) -> str:
    cause = e.__cause__ or e.__context__
    return f"{type(e).__name__}: {cause or e}"[:300]


def _body(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("error") or body.get("message") or body
        return str(detail)[:300]
    return str(getattr(e, "message", e))[:300]
