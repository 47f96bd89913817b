"""The benchmark registry: one entry per benchmark, aliases, a did-you-mean error, and every entry backed
by an adapter module with a `load` function."""

import importlib

import pytest

from letitcode.data.benchmarks.registry import BENCHMARKS, HUB_DEFAULTS, REGISTRY, canonical, info
from letitcode.errors import UserError


def test_every_entry_has_an_adapter_and_its_facts():
    for name, entry in REGISTRY.items():
        module = importlib.import_module(f"letitcode.data.benchmarks.{entry.module}")
        assert callable(module.load), name
        assert entry.default_split in entry.splits, name
        assert entry.exemplar_source[0] in REGISTRY, name
        assert entry.licence and entry.citation and entry.title, name
    assert set(HUB_DEFAULTS) == {n for n, e in REGISTRY.items() if e.hub_id}
    assert BENCHMARKS == tuple(REGISTRY)


def test_aliases_and_case_resolve():
    assert canonical("HumanEval") == "humaneval"
    assert canonical("human-eval") == "humaneval"
    assert info("RayBernard/leetcode").name == "raybernard"


def test_unknown_name_suggests_the_nearest():
    with pytest.raises(UserError, match=r"unknown benchmark 'humaneavl'; did you mean humaneval"):
        info("humaneavl")
    with pytest.raises(UserError, match=r"choose one of leetcode, "):
        info("zzz")


def test_only_humaneval_prompts_are_code():
    assert [n for n, e in REGISTRY.items() if e.prompt_is_code] == ["humaneval"]
