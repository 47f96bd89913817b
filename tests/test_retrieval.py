"""Exemplar retrieval: the evaluation set never leaks into exemplars, selection is deterministic, indexes
are cached, and the manifest stats say what happened."""

from __future__ import annotations

import dataclasses
import random

import pytest
from conftest import SHARED_DATA

from letitcode import retrieval
from letitcode.config import EvalConfig
from letitcode.data.benchmarks._io import Benchmark
from letitcode.data.problem import Problem
from letitcode.errors import HubUnavailable, UserError

LCD_TRAIN = SHARED_DATA / "leetcodedataset" / "LeetCodeDataset-v0.2.0-train.jsonl.gz"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LETITCODE_CACHE", str(tmp_path / "cache"))


def prob(
    task_id: str,
    description: str,
    *,
    title: str | None = None,
    source: str = "train",
    difficulty="Easy",
    **kw,
):
    return Problem(
        task_id=task_id,
        source=source,
        title=title or task_id.replace("-", " ").title(),
        description=description,
        entry_point="Solution().f",
        difficulty=difficulty,
        slug=task_id,
        reference=kw.pop("reference", "class Solution:\n    def f(self):\n        return 1\n"),
        **kw,
    )


TOPICS = [
    "linked list reverse nodes pointer",
    "binary tree depth traversal recursion",
    "array two numbers sum target indices",
    "string palindrome characters reverse",
    "graph shortest path edges weights dijkstra",
    "dynamic programming stairs ways climb",
    "matrix rotate image clockwise",
    "heap kth largest element stream",
    "interval merge overlapping sort",
    "bit manipulation count ones integer",
]
POOL = [
    prob(
        f"train-{i}",
        f"Problem about {t}. Return the answer for the {t} task.",
        difficulty=("Easy", "Medium", "Hard")[i % 3],
    )
    for i, t in enumerate(TOPICS)
]


def test_overlap_is_found_by_slug_title_description_and_its_prefix():
    long_text = "Given an integer array nums and an integer target, " * 10
    evaluated = [
        prob("two-sum", "anything", source="leetcode"),
        prob("x1", "Some statement", title="Valid Parentheses", source="leetcode"),
        prob("x2", "Reverse the list!!  In place.", source="leetcode"),
        prob("x3", long_text + "Example 1: ...", source="leetcode"),
    ]
    candidates = [
        prob("two-sum", "different text"),  # same slug
        prob("valid-parentheses", "other text"),  # slug equals the evaluated title
        prob("c3", "reverse the list in place"),  # same normalised description
        prob("c4", long_text + "Example 1: something else entirely"),  # same first 300 normalised chars
        prob("c5", "Count the islands in a grid."),  # unrelated: kept
    ]
    kept, excluded = retrieval.exclude_overlapping(candidates, evaluated)
    assert [c.task_id for c in kept] == ["c5"]
    assert sorted(excluded) == ["c3", "c4", "two-sum", "valid-parentheses"]


def test_select_fixed_is_deterministic_for_a_seed_and_ignores_input_order():
    a = retrieval.select_fixed(POOL, 3, seed=0)
    shuffled = POOL[:]
    random.Random(1).shuffle(shuffled)
    b = retrieval.select_fixed(shuffled, 3, seed=0)
    assert [p.task_id for p in a] == [p.task_id for p in b]
    assert {p.difficulty for p in a} == {"Easy", "Medium", "Hard"}  # spread over difficulties
    others = {tuple(p.task_id for p in retrieval.select_fixed(POOL, 3, seed=s)) for s in range(1, 8)}
    assert len(others | {tuple(p.task_id for p in a)}) > 1  # the seed matters


def test_bm25_nearest_and_cache():
    docs = [retrieval.retrieval_text(p) for p in POOL]
    index = retrieval.BM25Index(docs)
    assert not index.cached and index.path.exists()
    scores = index.scores(
        ["how many ways to climb the stairs with dynamic programming", "merge overlapping intervals"]
    )
    top = retrieval.nearest(scores, 2)
    assert top[0][0] == 5 and top[1][0] == 8
    again = retrieval.BM25Index(docs)
    assert again.cached
    assert (again.scores(["merge overlapping intervals"]) == scores[1:]).all()
    assert not retrieval.BM25Index(docs[:-1]).cached  # another corpus, another index


def test_nearest_breaks_ties_by_index():
    import numpy as np

    assert retrieval.nearest(np.array([[1.0, 3.0, 3.0, 0.0]]), 3) == [[1, 2, 0]]


class FakeBench:
    """An evaluation benchmark (only `.problems` and `.name` are used by exemplars_for)."""

    def __init__(self, problems):
        self.problems = problems
        self.name = "leetcode"


def _pool_loader(pool):
    def load(cfg):
        return Benchmark("leetcodedataset", list(pool), "fake-train", None, "v0", "train"), {
            "source": "fake-train"
        }

    return load


def test_rag_never_retrieves_an_evaluated_problem_even_when_it_is_the_nearest(monkeypatch):
    # The evaluated problems are copies of train problems under another source and id: without the
    # exclusion, each one's nearest neighbour would be its own twin with the answer in it.
    twins = [dataclasses.replace(p, task_id=f"eval-{i}", source="leetcode") for i, p in enumerate(POOL[:4])]
    monkeypatch.setattr(retrieval, "load_exemplar_pool", _pool_loader(POOL))
    cfg = EvalConfig(benchmark="leetcode", strategy="rag", k_shots=2, retriever="bm25")
    chosen, stats = retrieval.exemplars_for(cfg, FakeBench(twins), twins)
    twin_ids = {p.task_id for p in POOL[:4]}
    for t in twins:
        ids = [e.task_id for e in chosen[t.task_id]]
        assert len(ids) == 2 and not twin_ids & set(ids)
    assert stats["excluded_overlap"] == 4 and stats["eligible"] == 6
    assert stats["selection"] == "nearest" and stats["retriever"] == "bm25" and stats["k"] == 2
    assert stats["mean_similarity"] is not None
    assert set(stats["exemplar_ids"]) == {t.task_id for t in twins}


def test_rag_puts_the_nearest_exemplar_last(monkeypatch):
    monkeypatch.setattr(retrieval, "load_exemplar_pool", _pool_loader(POOL))
    q = prob("q", "Count the ways to climb stairs using dynamic programming.", source="leetcode")
    cfg = EvalConfig(benchmark="leetcode", strategy="rag", k_shots=3)
    chosen, _ = retrieval.exemplars_for(cfg, FakeBench([q]), [q])
    assert chosen["q"][-1].task_id == "train-5"


def test_few_shot_is_the_same_fixed_set_for_every_problem_and_deterministic(monkeypatch):
    monkeypatch.setattr(retrieval, "load_exemplar_pool", _pool_loader(POOL))
    evaluated = [
        prob(f"e{i}", f"Evaluation problem {i} about {TOPICS[i]}", source="leetcode") for i in range(3)
    ]
    cfg = EvalConfig(benchmark="leetcode", strategy="few_shot", k_shots=3, seed=7)
    chosen, stats = retrieval.exemplars_for(cfg, FakeBench(evaluated), evaluated)
    sets = {tuple(e.task_id for e in ex) for ex in chosen.values()}
    assert len(sets) == 1 and stats["exemplar_ids"] == list(next(iter(sets)))
    again, _ = retrieval.exemplars_for(cfg, FakeBench(evaluated), evaluated)
    assert {t: [e.task_id for e in ex] for t, ex in again.items()} == {
        t: [e.task_id for e in ex] for t, ex in chosen.items()
    }
    assert stats["selection"] == "fixed" and stats["excluded_overlap"] == 0


def test_ineligible_candidates_and_too_few_exemplars(monkeypatch):
    pool = [
        prob("no-ref", "x", reference=None),
        prob("too-long", "y" * (retrieval.MAX_DESCRIPTION_CHARS + 1)),
        prob("ok", "fine problem"),
    ]
    usable, why = retrieval.eligible(pool)
    assert [p.task_id for p in usable] == ["ok"] and why == {
        "no_reference": 1,
        "too_long": 1,
        "no_reasoning": 0,
    }
    monkeypatch.setattr(retrieval, "load_exemplar_pool", _pool_loader(pool))
    cfg = EvalConfig(benchmark="leetcode", strategy="few_shot", k_shots=2)
    with pytest.raises(UserError, match="only 1 usable exemplars"):
        retrieval.exemplars_for(cfg, FakeBench([]), [])
    with pytest.raises(UserError, match="unknown retriever"):
        retrieval.exemplars_for(dataclasses.replace(cfg, retriever="tfidf"), FakeBench([]), [])


def test_parse_exemplar_spec():
    assert retrieval.parse_exemplar_spec(None, "leetcode") == ("leetcodedataset", None, "train")
    assert retrieval.parse_exemplar_spec(None, "humaneval") == ("mbpp", None, "train")
    assert retrieval.parse_exemplar_spec("humaneval", "leetcode") == ("humaneval", None, None)
    assert retrieval.parse_exemplar_spec("mbpp:/d/mbpp.jsonl", "humaneval") == (
        "mbpp",
        "/d/mbpp.jsonl",
        "train",
    )
    assert retrieval.parse_exemplar_spec("/d/train.jsonl.gz", "leetcode") == (
        "leetcodedataset",
        "/d/train.jsonl.gz",
        "train",
    )


def test_offline_default_source_names_the_option_to_pass():
    cfg = EvalConfig(benchmark="leetcode", strategy="few_shot")
    with pytest.raises(HubUnavailable, match="--exemplar-dataset"):
        retrieval.load_exemplar_pool(cfg)


def test_embedded_humaneval_works_as_an_offline_exemplar_source():
    from letitcode.prompts import render

    evaluated = [prob("e0", "Return the sum of a list of integers.", source="leetcode")]
    cfg = EvalConfig(benchmark="leetcode", strategy="rag", k_shots=2, exemplar_dataset="humaneval")
    chosen, stats = retrieval.exemplars_for(cfg, FakeBench(evaluated), evaluated)
    assert stats["source"]["name"] == "humaneval" and len(chosen["e0"]) == 2
    text = render(evaluated[0], "rag", "chat", chosen["e0"]).prompt[1]["content"]
    assert "def " + chosen["e0"][0].entry_point in text  # completion-style exemplars show their signature


@pytest.fixture
def lcd_train():
    if not LCD_TRAIN.exists():
        pytest.skip(
            "shared LeetCodeDataset not found at ../shared/data (it ships with CI, not with the repo)"
        )
    return LCD_TRAIN


def test_leetcodedataset_train_excludes_the_embedded_leetcode_set(lcd_train):
    from letitcode.data.benchmarks import load_benchmark

    bench = load_benchmark("leetcode")
    some = bench.problems[:40]
    cfg = EvalConfig(
        benchmark="leetcode", strategy="rag", k_shots=3, exemplar_dataset=f"leetcodedataset:{lcd_train}"
    )
    chosen, stats = retrieval.exemplars_for(cfg, bench, some)
    evaluated_slugs = {p.slug for p in bench.problems}
    assert stats["excluded_overlap"] > 500  # the two sources share most classic problems
    for ex in chosen.values():
        assert len(ex) == 3 and not {e.slug for e in ex} & evaluated_slugs
    assert stats["source"]["split"] == "train"


def test_cot_few_shot_exemplars_carry_worked_reasoning(lcd_train):
    from letitcode.data.benchmarks import load_benchmark
    from letitcode.prompts import exemplar_reasoning

    bench = load_benchmark(
        "leetcodedataset", dataset=str(lcd_train.parent / "LeetCodeDataset-v0.3.1-test.jsonl.gz")
    )
    cfg = EvalConfig(
        benchmark="leetcodedataset", strategy="cot_few_shot", k_shots=2, dataset=str(lcd_train.parent)
    )
    chosen, stats = retrieval.exemplars_for(cfg, bench, bench.problems[:2])
    for ex in chosen.values():
        assert all(exemplar_reasoning(e) for e in ex)
    assert stats["source"]["split"] == "train"


@pytest.mark.slow
def test_dense_retrieval_with_the_embedded_encoder_loads_offline():
    docs = [retrieval.retrieval_text(p) for p in POOL]
    index = retrieval.DenseIndex(docs)
    assert not index.cached
    scores = index.scores(
        ["climbing a staircase: in how many distinct ways?", "turn a square matrix by 90 degrees"]
    )
    assert retrieval.nearest(scores, 1) == [[5], [6]]
    assert abs(float(scores.max())) <= 1.0 + 1e-5  # cosine
    assert retrieval.DenseIndex(docs).cached
