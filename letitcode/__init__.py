"""LetItCode core library."""

from letitcode import benign as _benign

_benign.install()
