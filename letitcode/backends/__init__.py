"""Generation backends: `local` (transformers), and endpoint backends added by `make_backend`."""

from letitcode.backends.base import Backend, DecodingParams, Generation, GenRequest

__all__ = ["Backend", "DecodingParams", "GenRequest", "Generation", "make_backend"]


def make_backend(kind: str, model: str, **kwargs) -> Backend:
    """Build a backend by name: local | tgi | openai."""
    from letitcode.errors import UserError

    if kind == "local":
        from letitcode.backends.local import LocalBackend

        return LocalBackend(model, **kwargs)
    if kind == "tgi":
        from letitcode.backends.tgi import TGIBackend

        return TGIBackend(model, **kwargs)
    if kind == "openai":
        from letitcode.backends.openai import OpenAIBackend

        return OpenAIBackend(model, **kwargs)
    raise UserError(f"unknown backend {kind!r}: choose local, tgi or openai")
