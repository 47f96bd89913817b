"""Reference-based metrics: BLEU (sacrebleu) and CodeBLEU (the `codebleu` package) against a reference solution.

Both sides are compared as code: comments and docstrings are removed first (`normalize`), so that prose
the prompt already contains (a HumanEval docstring) does not inflate the match.

A metric is *absent* (the key is missing or None) where a problem has no reference, never 0: an
embedded LeetCode problem without a reference solution says nothing about BLEU. Where a reference exists
but the model wrote no code, both metrics are 0 (the model produced nothing that resembles it).

CodeBLEU uses the package's default weights (0.25 each) and keeps its four components. Note a quirk of
codebleu 0.7.0 that we keep for comparability with other users of the package: its composite counts the
data-flow term as 1 whenever the data-flow match is 0 (k4black/codebleu#59). The components are recorded,
so the composite can be recomputed without the quirk.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from letitcode.data.problem import Problem

LANG = "python"
WEIGHTS = (0.25, 0.25, 0.25, 0.25)
# codebleu's component names -> the shorter record keys we store them under
COMPONENTS = {
    "ngram_match_score": "codebleu_ngram",
    "weighted_ngram_match_score": "codebleu_weighted_ngram",
    "syntax_match_score": "codebleu_syntax",
    "dataflow_match_score": "codebleu_dataflow",
}
SAMPLE_KEYS = ("bleu", "codebleu", *COMPONENTS.values())


@contextlib.contextmanager
def _quiet_codebleu() -> Iterator[None]:
    """codebleu logs a root-logger warning for every sample whose reference has no data flow; on
    per-sample scoring that is noise (the component is recorded anyway)."""
    root = logging.getLogger()
    flt = logging.Filter("codebleu-silencer")  # rejects everything from the root logger's name ''
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def sentence_bleu(prediction: str, reference: str) -> float:
    """sacrebleu sentence BLEU (0-100, default 13a tokenizer and exp smoothing)."""
    import sacrebleu

    return float(sacrebleu.sentence_bleu(prediction, [reference]).score)


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """sacrebleu corpus BLEU (0-100) with its signature, so the number can be reproduced."""
    from sacrebleu.metrics import BLEU

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    metric = BLEU()
    score = metric.corpus_score(list(predictions), [list(references)])
    return {"bleu": float(score.score), "signature": str(metric.get_signature())}


def codebleu(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    weights: tuple[float, float, float, float] = WEIGHTS,
) -> dict[str, float]:
    """Corpus CodeBLEU (0-1) and its four components, as computed by the codebleu package."""
    from codebleu import calc_codebleu

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    with _quiet_codebleu():
        out = calc_codebleu(list(references), list(predictions), lang=LANG, weights=weights)
    return {"codebleu": float(out["codebleu"]), **{COMPONENTS[k]: float(out[k]) for k in COMPONENTS}}


@functools.lru_cache(maxsize=4096)  # a run repeats its references and its n samples: tokenize each text once
def normalize(code: str) -> str:
    """Code without comments and docstrings (codebleu's own normalizer), so that prose, e.g. a HumanEval
    docstring every answer repeats, does not count as matching code. Unparseable code is kept as is."""
    from codebleu.parser import remove_comments_and_docstrings

    try:
        out = remove_comments_and_docstrings(code, LANG)
    except Exception:  # tokenize errors on broken code; BLEU still compares its tokens
        return code
    return "\n".join(line.rstrip() for line in out.splitlines() if line.strip())


def sample_metrics(code: str | None, reference: str | None) -> dict[str, float] | None:
    """Per-sample BLEU and CodeBLEU (+ components); None where there is no reference."""
    if reference is None or not reference.strip():
        return None
    code, reference = normalize(code or ""), normalize(reference)
    if not code.strip():
        return dict.fromkeys(SAMPLE_KEYS, 0.0)
    scores = {"bleu": sentence_bleu(code, reference), **codebleu([code], [reference])}
    return {k: round(v, 6) for k, v in scores.items()}  # 100.00000000000004 -> 100.0


def corpus_metrics(pairs: Sequence[tuple[str | None, str | None]]) -> dict[str, Any] | None:
    """Corpus BLEU and CodeBLEU over the (code, reference) pairs that have a reference; None if none has.

    A missing prediction counts as the empty string (it is scored, and scores nothing)."""
    scored = [(normalize(c or ""), normalize(r)) for c, r in pairs if r is not None and r.strip()]
    if not scored:
        return None
    preds, refs = [c for c, _ in scored], [r for _, r in scored]
    bleu = corpus_bleu(preds, refs)
    return {
        "bleu": bleu["bleu"],
        "bleu_signature": bleu["signature"],
        **codebleu(preds, refs),
        "n_with_reference": len(scored),
    }


# What a sample may be for the metrics to look at it: codebleu turns each tree-sitter node into its
# s-expression recursively in C (`str(node)`), which crashed the whole scorer (segfault) on 40,000 chained
# `1 + 1 + ...`; tokenizers and radon are linear but long texts cost seconds. Beyond these the sample is
# scored as the empty string, and its record says why (`metrics_skipped`).
MAX_CHARS = 50_000
MAX_TREE_DEPTH = 400


@functools.lru_cache(maxsize=1)
def _parser() -> Any:
    import tree_sitter_python
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_python.language()))


def unsafe_reason(code: str | None) -> str | None:
    """Why `code` cannot go through BLEU/CodeBLEU/radon safely, or None. Walks the parse tree with a cursor
    (iteratively: nothing here recurses)."""
    if not code:
        return None
    if len(code) > MAX_CHARS:
        return f"longer than {MAX_CHARS} characters"
    try:
        data = code.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8 (lone surrogates)"
    cursor = _parser().parse(data).walk()
    depth = deepest = 0
    while True:
        if cursor.goto_first_child():
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_TREE_DEPTH:
                return f"nested deeper than {MAX_TREE_DEPTH} syntax levels"
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return None
            depth -= 1


def reference_pair(record: Mapping[str, Any], problem: Problem | None) -> tuple[str | None, str | None]:
    """(hypothesis, reference) compared for one record, as whole programs; (None, None) without reference.

    A completion-style record (HumanEval) holds only the function body the model appended to the prompt,
    and HumanEval's canonical solution is a body too: both get the prompt prepended, so that CodeBLEU's
    syntax and data-flow matches see a parseable function on each side."""
    ref = problem.reference if problem is not None else None
    if ref is None or not ref.strip():
        return None, None
    assert problem is not None
    code = record.get("code")
    if problem.prompt and record.get("extraction") == "completion" and code is not None:
        code = problem.prompt + code
    if problem.prompt and not re.search(rf"\bdef\s+{re.escape(problem.function_name)}\b", ref):
        ref = problem.prompt + ref
    if unsafe_reason(code):
        code = ""  # scored as writing nothing (see MAX_CHARS)
    return code, ref
