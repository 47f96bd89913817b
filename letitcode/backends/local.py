"""Local transformers backend: batched `generate` with left padding.

Requests are sorted by prompt length so a batch pads little, and each batch stops early on the stop strings
(`stop_strings` in `generate`). Sampling is seeded per batch from the first request's cache key, so a rerun
of the same requests draws the same samples.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from letitcode.backends.base import DecodingParams, Generation, GenRequest, Prompt
from letitcode.errors import UserError
from letitcode.models import ResolvedModel


class LocalBackend:
    name = "local"

    def __init__(
        self,
        model: str | ResolvedModel,
        *,
        batch_size: int = 8,
        dtype: str = "float32",
        device: str | None = None,
        loaded: tuple[Any, Any] | None = None,
    ):
        from letitcode import models

        self.batch_size = batch_size
        self.dtype = dtype
        if loaded is not None:
            self.model, self.tokenizer = loaded
            self.resolved = model if isinstance(model, ResolvedModel) else models.resolve(model)
        else:
            self.model, self.tokenizer, self.resolved = models.load(model, dtype=dtype, device=device)
        self.tokenizer.padding_side = "left"  # decoder-only batched generation needs left padding
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "dtype": self.dtype, "batch_size": self.batch_size, "device": str(self.model.device)}

    def to_text(self, prompt: Prompt) -> str:
        if isinstance(prompt, str):
            return prompt
        if not self.has_chat_template:
            raise UserError(
                f"model {self.resolved.spec!r} has no chat template, but a chat prompt was requested: "
                "pass --prompt-style completion"
            )
        return self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)

    def generate(
        self, requests: Sequence[GenRequest], params: DecodingParams, *, progress: bool = True
    ) -> Iterator[tuple[int, Generation]]:
        import torch
        from tqdm.auto import tqdm

        texts = [self.to_text(r.prompt) for r in requests]
        lengths = [len(self.tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
        order = sorted(range(len(requests)), key=lambda i: -lengths[i])
        bar = tqdm(total=len(requests), desc="generating", unit="sample", disable=not progress)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            seed = int(hashlib.sha256(f"{params.seed}:{requests[idx[0]].key}".encode()).hexdigest()[:8], 16)
            torch.manual_seed(seed)
            batch = self.tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            batch = batch.to(self.model.device)
            kwargs: dict[str, Any] = dict(
                max_new_tokens=params.max_new_tokens,
                do_sample=not params.greedy,
                pad_token_id=self.tokenizer.pad_token_id,
            )
            if not params.greedy:
                kwargs.update(temperature=params.temperature, top_p=params.top_p)
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            if params.stop:
                kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = self.model.generate(**batch, **kwargs)
            elapsed = time.perf_counter() - t0
            new = out[:, batch["input_ids"].shape[1] :]
            eos_ids = self._eos_ids()
            for row, i in enumerate(idx):
                toks = new[row].tolist()
                n_useful = len(toks)
                finish = "length"
                for j, t in enumerate(toks):  # useful tokens end at the sequence's own EOS, not the batch's
                    if t in eos_ids:
                        n_useful, finish = j, "stop"
                        break
                text = self.tokenizer.decode(toks[:n_useful], skip_special_tokens=True)
                if params.stop and finish == "length" and any(s in text for s in params.stop):
                    finish = "stop"
                yield i, Generation(text=text, n_tokens=n_useful, latency_s=elapsed, finish_reason=finish)
            bar.update(len(idx))
        bar.close()

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = ids if isinstance(ids, list) else [ids]
        ids = [i for i in ids if i is not None]
        if self.tokenizer.pad_token_id is not None:
            ids.append(self.tokenizer.pad_token_id)
        return set(ids)
