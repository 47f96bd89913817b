"""The one definition of "the same problem", for every check that keeps evaluated problems out of what a
model sees: SFT decontamination, few-shot and retrieval exemplars, and the study's contamination measure.

Two problems are the same when they share a slug (or a title slugified as one), a normalised-description
hash, or when the first 32 normalised words of one's description appear anywhere in the other's. The last
rule catches the same statement scraped by two sources (one keeps the examples, the other the constraints)
and rows that wrap the statement in an instruction ("Please solve the following problem in python: ...").
It errs towards removing: related problems that open with the same 32 words (Course Schedule I/II) count as
one. Before, exemplars used a 300-character prefix hash and the SFT data the 32-word windows, so an exemplar
could pass a check that training data failed.

The study also *measures* residual contamination as word 13-gram overlap (GPT-3's and Llama 2's
contamination studies): a rate to report after removal, not a rule for removing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from letitcode.data.problem import Problem, description_hash, normalize_text, slugify

PREFIX_WORDS = 32
NGRAM = 13  # contamination n-gram length (word tokens), as in GPT-3's and Llama 2's contamination studies


def _prefix_key(text: str, words: int = PREFIX_WORDS) -> str | None:
    """The first `words` normalised words of a description, or None for shorter ones."""
    tokens = normalize_text(text).split()
    return " ".join(tokens[:words]) if len(tokens) >= words else None


def _windows(text: str, words: int = PREFIX_WORDS) -> Iterable[str]:
    tokens = normalize_text(text).split()
    for i in range(len(tokens) - words + 1):
        yield " ".join(tokens[i : i + words])


class Decontaminator:
    """Finds problems (training rows, exemplar candidates) that are the same as one of `problems`."""

    def __init__(self, problems: Iterable[Problem]):
        self.slugs: set[str] = set()
        self.titles: set[str] = set()
        self.hashes: set[str] = set()
        self.prefixes: set[str] = set()
        self.ids: set[tuple[str, str]] = set()
        self.n = 0
        for p in problems:
            self.n += 1
            self.ids.add((p.source, p.task_id))
            if p.slug:
                self.slugs.add(slugify(p.slug))
            if p.title:
                self.titles.add(slugify(p.title))
            if p.description:
                self.hashes.add(description_hash(p.description))
                if (key := _prefix_key(p.description)) is not None:
                    self.prefixes.add(key)
        self.labels = self.titles | self.slugs  # a row's title may name a problem by its title or its slug

    def reason(self, problem: Problem) -> str | None:
        """Why this problem counts as the same ("slug", "title", "description", "description_prefix")."""
        if problem.slug and slugify(problem.slug) in self.slugs:
            return "slug"
        if problem.title and slugify(problem.title) in self.labels:
            return "title"
        if problem.description and description_hash(problem.description) in self.hashes:
            return "description"
        if any(w in self.prefixes for w in _windows(problem.description or "")):
            return "description_prefix"
        return None

    def same_task(self, problem: Problem) -> bool:
        """The very task (same source and id), whatever its text says."""
        return (problem.source, problem.task_id) in self.ids


def exclude_overlapping(
    candidates: Sequence[Problem], evaluated: Sequence[Problem]
) -> tuple[list[Problem], list[str]]:
    """Candidates that are not the same problem as (nor, within one source, the same task as) any evaluated one."""
    deco = Decontaminator(evaluated)
    kept, excluded = [], []
    for c in candidates:
        if deco.same_task(c) or deco.reason(c):
            excluded.append(c.task_id)
        else:
            kept.append(c)
    return kept, excluded


def word_ngrams(text: str, n: int = NGRAM) -> set[str]:
    """Word n-grams of a text, after the normalisation used for deduplication (lower case, no punctuation)."""
    toks = normalize_text(text).split()
    return {" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def ngram_overlap(problems: Sequence[Any], corpus: set[str], n: int = NGRAM) -> dict[str, Any]:
    """How many problems' descriptions share at least one word n-gram with `corpus` (a set of n-grams)."""
    hits = [p.task_id for p in problems if word_ngrams(p.description or p.prompt, n) & corpus]
    return {
        "n_problems": len(problems),
        "n_overlap": len(hits),
        "share": len(hits) / len(problems) if problems else None,
        "task_ids": hits,
    }
