"""One definition of the same problem: SFT decontamination and exemplar exclusion agree on every case."""

from letitcode.data.overlap import Decontaminator, exclude_overlapping, ngram_overlap, word_ngrams
from letitcode.data.problem import Problem

LONG = "Given an integer array nums return the number of pairs " + " ".join(f"w{i}" for i in range(40))
EVALUATED = [
    Problem("two-sum", "leetcode", "Two Sum", "Find two numbers adding to target.", "f", slug="two-sum"),
    Problem("z", "leetcode", "Long One", LONG + " Example 1: input output", "f", slug="long-one"),
]


def P(
    task_id: str, description: str, slug: str | None = None, title: str = "", source: str = "pool"
) -> Problem:
    return Problem(task_id, source, title, description, "f", slug=slug)


CASES = {
    "slug": P("a", "other text", slug="two-sum"),
    "title": P("b", "other text", title="Two  Sum"),
    "description": P("c", "find TWO numbers, adding to target"),
    # the statement wrapped in an instruction, with other examples after it: the 32-word window rule
    "description_prefix": P(
        "d", "Please explain the following problem:\nLong One\n\n" + LONG + " Constraints: n"
    ),
    None: P("e", "Count the islands in a grid."),
}


def test_decontamination_and_exemplar_exclusion_agree():
    deco = Decontaminator(EVALUATED)
    for reason, problem in CASES.items():
        assert deco.reason(problem) == reason
    kept, excluded = exclude_overlapping(list(CASES.values()), EVALUATED)
    assert [p.task_id for p in kept] == ["e"]
    assert sorted(excluded) == ["a", "b", "c", "d"]


def test_the_same_task_is_excluded_whatever_its_text():
    same_id = P("two-sum", "a rewritten statement", source="leetcode")
    assert exclude_overlapping([same_id], EVALUATED)[0] == []
    # the same id in another source, with another text, is another problem
    assert exclude_overlapping([P("two-sum", "a rewritten statement")], EVALUATED)[0] != []


def test_ngram_overlap_counts_problems_sharing_a_13_gram():
    corpus = word_ngrams("prefix " + LONG)
    res = ngram_overlap([EVALUATED[1], EVALUATED[0]], corpus)
    assert res["n_overlap"] == 1 and res["task_ids"] == ["z"] and res["share"] == 0.5
