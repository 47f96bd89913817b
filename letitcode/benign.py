"""Known-benign messages of the pinned libraries, filtered by their exact text where they are emitted.

Each filter names one message of one library version and says why it is harmless; nothing else is hidden
(no blanket `ignore` of a category or a logger). Installed once, on the first `import letitcode`.
"""

from __future__ import annotations

import logging
import warnings

# transformers 5 deprecates `is_gradient_checkpointing` for `is_activation_checkpointing`; PEFT 0.18 and
# TRL 0.2x still read the old name on every prepare/step. The value is the same; the warning repeats per
# call and says nothing a user can act on.
_FUTURE_WARNINGS = (r"`is_gradient_checkpointing` is deprecated",)

# bitsandbytes on an AVX512-BF16 CPU tries the optional `kernels` package for a faster 4-bit GEMV, logs a
# warning when it is absent and falls back to its own kernel. The 4-bit results are the same.
_LOG_MESSAGES = {
    "bitsandbytes.backends.cpu.ops": ("Failed to load CPU gemm_4bit_forward from kernels-community",)
}


class _DropMessages(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def install() -> None:
    for message in _FUTURE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)
    for name, prefixes in _LOG_MESSAGES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(prefixes))
