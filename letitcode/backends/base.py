"""What every generation backend takes and returns, and the whole contract the pipeline relies on (`Backend`,
as EvalPlus's `DecoderBase` holds it in one place).

A backend turns prompts into texts. Caching, resuming, the progress bar and scoring belong to
`letitcode.pipeline`, so a backend only has to yield each answer as soon as it is complete.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from letitcode.prompts import Prompt

if TYPE_CHECKING:
    from letitcode.models import ResolvedModel


@dataclass(frozen=True)
class DecodingParams:
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    n: int = 1  # samples per problem; the pipeline expands them into separate requests
    seed: int = 0
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass(frozen=True)
class GenRequest:
    prompt: Prompt
    key: str  # the cache key; also seeds sampling so a resumed run draws the same samples
    sample_index: int = 0


@dataclass
class Generation:
    text: str
    n_tokens: int  # generated tokens up to the sequence's own end (no padding)
    latency_s: float  # wall time of the request (of its batch, for batched local generation)
    finish_reason: str = "stop"  # stop | length
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """Everything `letitcode.pipeline` uses of a backend. Subclasses implement `describe`, `generate` and
    `cache_key`; the rest has defaults that say "not known here" (what an endpoint knows)."""

    name: str = "backend"
    # The model as resolved locally (spec, revision, adapter, training manifest); None behind an endpoint.
    resolved: ResolvedModel | None = None
    # The model name an endpoint serves (the prompt style is looked up by it); None for a local model.
    model_name: str | None = None
    # Where generation runs ("cpu", "cuda:0"); None for a remote endpoint.
    device: str | None = None
    # Whether the tokenizer has a chat template (the last resort of --prompt_style auto); None: unknown.
    has_chat_template: bool | None = None

    @property
    @abstractmethod
    def cache_key(self) -> str:
        """The model's identity in the generation cache: another model, quantisation or endpoint never
        reuses a cached generation."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What goes into the manifest: backend kind, endpoint, dtype, batch size..."""

    @abstractmethod
    def generate(
        self, requests: Sequence[GenRequest], params: DecodingParams
    ) -> Iterator[tuple[int, Generation]]:
        """Yield (index into requests, Generation) as each answer completes, in any order."""

    def prompt_info(self, prompt: Prompt) -> dict[str, Any]:
        """What a record says about the prompt sent: its text, token count and whether it starts with BOS
        (None where the backend cannot tell)."""
        return {"prompt": prompt, "n_prompt_tokens": None, "prompt_bos": None}

    def context_window(self) -> int | None:
        """The longest prompt + new tokens the model takes; None: the server checks its own."""
        return None
