"""What every generation backend takes and returns.

A backend turns prompts into texts. Caching, resuming and scoring belong to `letitcode.pipeline`, so a
backend only has to yield each answer as soon as it is complete.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

# A chat prompt is a list of {"role", "content"} messages; a completion prompt is a plain string.
Prompt = str | list[dict[str, str]]


def prompt_hash(prompt: Prompt) -> str:
    return hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:16]


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


class Backend(Protocol):
    name: str

    def describe(self) -> dict[str, Any]:
        """What goes into the manifest: backend kind, endpoint, dtype, batch size..."""
        ...

    def generate(
        self, requests: Sequence[GenRequest], params: DecodingParams, *, progress: bool = True
    ) -> Iterator[tuple[int, Generation]]:
        """Yield (index into requests, Generation) as each answer completes, in any order."""
        ...
