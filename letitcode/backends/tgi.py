"""`tgi` backend: Text Generation Inference (or any server that speaks its API) through
`huggingface_hub.InferenceClient`.

    icl/run.py --backend tgi --endpoint http://127.0.0.1:8080 --model auto ...

Completion prompts go to TGI's native generate route (`text_generation`, POST to the endpoint root, with
`details=True` for the token count and finish reason); chat prompts go to the OpenAI-compatible route
(`chat_completion`, `/v1/chat/completions`), which TGI, vLLM and `transformers serve` all have. The old
`text-generation` client cannot be installed next to huggingface_hub >= 1.0, hence InferenceClient.

A server without the native route (`transformers serve`, vLLM) answers chat prompts only: a completion
prompt there fails at once with a message saying to use chat prompts or `--backend openai`.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from letitcode.backends.base import DecodingParams, Generation
from letitcode.backends.endpoint import RETRY_STATUS, EndpointBackend, EndpointDown, Failure
from letitcode.errors import UserError
from letitcode.prompts import Prompt

# Origins (scheme, host, port) of the endpoints this process was pointed at. huggingface_hub's HTTP client
# refuses every request while HF_HUB_OFFLINE=1, even to a server on 127.0.0.1; offline mode means "do not
# reach the Hub", so requests to an endpoint the user named explicitly are let through (Hub URLs stay blocked).
_ALLOWED_ORIGINS: set[tuple[str, str, int | None]] = set()
_FACTORY_LOCK = threading.Lock()
_factory_installed = False


def _origin(url: Any) -> tuple[str, str, int | None]:
    from urllib.parse import urlparse

    u = urlparse(str(url))
    return (u.scheme, (u.hostname or "").lower(), u.port or (443 if u.scheme == "https" else 80))


def allow_offline_endpoint(endpoint: str) -> None:
    """Let huggingface_hub reach `endpoint` while HF_HUB_OFFLINE=1 (a no-op when online)."""
    global _factory_installed
    from huggingface_hub import constants

    if not constants.is_offline_mode():
        return
    _ALLOWED_ORIGINS.add(_origin(endpoint))
    with _FACTORY_LOCK:
        if _factory_installed:
            return
        import httpx2
        from huggingface_hub.utils import set_client_factory
        from huggingface_hub.utils._http import hf_request_event_hook

        def hook(request: Any) -> None:
            if _origin(request.url) in _ALLOWED_ORIGINS:
                return None
            return hf_request_event_hook(request)  # raises OfflineModeIsEnabled for the Hub

        # The same client as huggingface_hub's default factory, with the hook above instead of its own.
        set_client_factory(
            lambda: httpx2.Client(event_hooks={"request": [hook]}, follow_redirects=True, timeout=None)
        )
        _factory_installed = True


class TGIBackend(EndpointBackend):
    name = "tgi"

    def __init__(self, model: str, *, endpoint: str | None = None, **kwargs: Any):
        if endpoint:
            endpoint = endpoint.rstrip("/")
            # InferenceClient appends /v1/chat/completions itself, and the native route is the root.
            if endpoint.endswith("/v1"):
                endpoint = endpoint[: -len("/v1")]
        self.server_info: dict[str, Any] = {}
        if endpoint:
            allow_offline_endpoint(endpoint)
        super().__init__(model, endpoint=endpoint, **kwargs)

    def _client(self) -> Any:
        from huggingface_hub import InferenceClient

        client = getattr(self._local, "client", None)
        if client is None:
            # HF_TOKEN only when set: a private Inference Endpoint needs it, a local server ignores it.
            client = InferenceClient(
                base_url=self.endpoint, timeout=self.timeout_s, api_key=os.environ.get("HF_TOKEN")
            )
            self._local.client = client
        return client

    def _probe_models(self) -> list[str]:
        """TGI answers GET /info with its model id; OpenAI-compatible servers list /v1/models."""
        from huggingface_hub.utils import get_session

        session = get_session()
        try:
            r = session.get(f"{self.endpoint}/info", timeout=self.connect_timeout_s)
            if r.status_code == 200 and isinstance(r.json(), dict) and r.json().get("model_id"):
                self.server_info = r.json()
                return [str(self.server_info["model_id"])]
            r = session.get(f"{self.endpoint}/v1/models", timeout=self.connect_timeout_s)
        except Exception as e:  # httpx connect/timeout errors (any transport failure means: down)
            raise self._down(f"{type(e).__name__}: {e}"[:300]) from None
        if r.status_code == 200:
            try:
                return sorted(str(m["id"]) for m in r.json().get("data", []))
            except (ValueError, TypeError, KeyError):
                return []
        return []

    def _pick_model(self, model: str, served: list[str]) -> str:
        if self.server_info and model not in served:
            # A TGI server serves exactly one model and ignores the name in requests: record its own.
            return served[0]
        return super()._pick_model(model, served)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        if self.server_info:
            d["server"] = {
                k: self.server_info.get(k) for k in ("model_id", "model_sha", "version", "model_dtype")
            }
        return d

    def _request(self, prompt: Prompt, params: DecodingParams, seed: int) -> Generation:
        from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

        client = self._client()
        sampling: dict[str, Any] = (
            {"temperature": params.temperature, "top_p": params.top_p} if not params.greedy else {}
        )
        try:
            if isinstance(prompt, str):
                out = client.text_generation(
                    prompt,
                    details=True,
                    max_new_tokens=params.max_new_tokens,
                    do_sample=not params.greedy,
                    seed=seed,
                    stop=list(params.stop) or None,
                    return_full_text=False,
                    **sampling,
                )
                details = out.details
                n_tokens = int(details.generated_tokens) if details else 0
                finish = "length" if details and str(details.finish_reason).endswith("length") else "stop"
                return Generation(
                    text=out.generated_text, n_tokens=n_tokens, latency_s=0.0, finish_reason=finish
                )
            resp = client.chat_completion(
                prompt,
                model=self.model_name,
                max_tokens=params.max_new_tokens,
                temperature=0.0 if params.greedy else params.temperature,
                top_p=None if params.greedy else params.top_p,
                seed=seed,
            )
        except InferenceTimeoutError as e:
            raise EndpointDown(f"timed out after {self.timeout_s:g} s: {e}") from None
        except HfHubHTTPError as e:
            status = e.response.status_code if e.response is not None else None
            if isinstance(prompt, str) and status in (404, 405):
                raise UserError(
                    f"endpoint {self.endpoint} has no TGI generate route (HTTP {status}): it is not a TGI server; "
                    "use chat prompts (--prompt_style chat) or --backend openai"
                ) from None
            raise Failure(
                f"HTTP {status}: {str(e).splitlines()[0][:300]}", retry=status in RETRY_STATUS, status=status
            ) from None
        except (OSError, ConnectionError) as e:
            raise EndpointDown(f"{type(e).__name__}: {e}"[:300]) from None
        except Exception as e:
            # httpx transport errors (connect refused, reset, read timeout) do not share a base class with
            # the ones above; anything from the transport layer counts as the endpoint being down.
            if type(e).__module__.split(".")[0].startswith("httpx"):
                raise EndpointDown(f"{type(e).__name__}: {e}"[:300]) from None
            raise
        choice = resp.choices[0]
        usage = getattr(resp, "usage", None)
        n_tokens = int(usage.completion_tokens) if usage and usage.completion_tokens is not None else 0
        finish = "length" if choice.finish_reason == "length" else "stop"
        extra = (
            {"prompt_tokens": int(usage.prompt_tokens)} if usage and usage.prompt_tokens is not None else {}
        )
        return Generation(
            text=choice.message.content or "",
            n_tokens=n_tokens,
            latency_s=0.0,
            finish_reason=finish,
            extra=extra,
        )
