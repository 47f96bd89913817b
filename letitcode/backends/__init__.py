"""Generation backends: `local` (transformers), and endpoint backends added by `make_backend`."""

from letitcode.backends.base import Backend, DecodingParams, Generation, GenRequest
from letitcode.backends.local import LocalBackend
from letitcode.backends.openai import OpenAIBackend
from letitcode.backends.tgi import TGIBackend
from letitcode.errors import UserError

__all__ = ["Backend", "DecodingParams", "GenRequest", "Generation", "make_backend"]


def make_backend(kind: str, model: str, **kwargs) -> Backend:
    """Build a backend by name: local | tgi | openai."""

    if kind == "local":
        return LocalBackend(model, **kwargs)
    if kind == "tgi":
        return TGIBackend(model, **kwargs)
    if kind == "openai":
        return OpenAIBackend(model, **kwargs)
    raise UserError(f"unknown backend {kind!r}: choose local, tgi or openai")
