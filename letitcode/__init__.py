"""LetItCode: fine-tune code LLMs with TRL and measure them honestly on LeetCode, HumanEval and MBPP.

The public API is below. Names are imported when first used (a module `__getattr__`, the idea of TRL's
`_LazyModule`), so `import letitcode` stays cheap and a script pays for torch only when it needs a model.
"""

from __future__ import annotations

import importlib
from typing import Any

from letitcode import benign as _benign

_benign.install()

# name -> the module that defines it (one place per concept; see the README's layout section)
_API = {
    "UserError": "letitcode.errors",
    "DataError": "letitcode.errors",
    "HubUnavailable": "letitcode.errors",
    "Problem": "letitcode.data.problem",
    "BenchmarkInfo": "letitcode.data.benchmarks.registry",
    "REGISTRY": "letitcode.data.benchmarks.registry",
    "load_benchmark": "letitcode.data.benchmarks",
    "Decontaminator": "letitcode.data.overlap",
    "ExecJob": "letitcode.sandbox",
    "Sandbox": "letitcode.sandbox",
    "make_backend": "letitcode.backends",
    "EvalConfig": "letitcode.config",
    "ScoreConfig": "letitcode.config",
    "run_eval": "letitcode.pipeline",
    "score_samples": "letitcode.pipeline",
    "pass_at_k": "letitcode.scoring.passk",
    "format_ci": "letitcode.scoring.stats",
    "paired_comparison": "letitcode.scoring.stats",
    "write_report": "letitcode.results.report",
    "train": "letitcode.training.trainer",
    "run_study": "letitcode.study.runner",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'letitcode' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
