"""The one Hub-id parser, and how runs are named: what `--model`, `--dataset` and `--results` accept.

A Hub id is `ORG/NAME` with an optional `@REVISION`. Both parts start with a letter or digit and hold only
letters, digits, `.`, `_` and `-` (the Hub's own rule); a revision, when an `@` is given, is non-empty and has
no whitespace. A spec spelled as a path (`./x`, `/x`, `~/x`, a backslash, more than one `/`, a trailing
`/`) or named like a data file (`org/rows.jsonl`) is never a Hub id. Only the part before the first `@` is
the repo: repo ids cannot contain `@`, revisions (`refs/pr/1`) can contain `/`.

Callers check for an existing local path first (a local path wins over a Hub id of the same spelling);
`local_reason` says why a spec that does not exist is still a local path, not a Hub id.

A low layer: data, models, pipeline and results import it; it imports nothing of the project but errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from letitcode.errors import UserError

# the data readers read exactly these; a spec ending in one is a local file, never a Hub id
DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_REVISION = re.compile(r"\S+")


def split_revision(
    spec: str, revision: str | None = None, *, what: str = "dataset"
) -> tuple[str, str | None]:
    """`org/name@rev` -> (org/name, rev). An explicit `revision` argument must agree with the `@rev`."""
    repo, _, at_rev = spec.partition("@")
    if at_rev and revision and at_rev != revision:
        raise UserError(f"{what} {spec!r} names revision {at_rev!r} but revision={revision!r} was also given")
    return repo, (at_rev or revision or None)


def is_repo_id(repo: str) -> bool:
    """`ORG/NAME` (no revision) in the Hub's spelling."""
    parts = repo.split("/")
    return (
        len(parts) == 2
        and all(_PART.fullmatch(p) for p in parts)
        and not repo.lower().endswith(DATA_SUFFIXES)
    )


def looks_like_hub_id(spec: str) -> bool:
    """`ORG/NAME` or `ORG/NAME@REVISION`, and not spelled as a local path or data file."""
    repo, at, revision = spec.partition("@")
    return is_repo_id(repo) and (not at or bool(_REVISION.fullmatch(revision)))


def local_reason(spec: str) -> str | None:
    """Why a spec that does not exist is a local path, not a Hub id (None when it may be a Hub id)."""
    repo = spec.partition("@")[0]
    if spec.startswith((".", "/", "~")) or "\\" in spec:
        return "it is spelled as a path"
    if repo.count("/") > 1 or repo.endswith("/"):
        return "a Hub id has one '/', ORG/NAME"
    first = repo.split("/")[0]
    if first and Path(first).is_dir():
        return f"{first}/ is a folder here"
    return None


# ---------------------------------------------------------------- naming runs


def model_slug(model: str) -> str:
    """`HuggingFaceTB/SmolLM2-135M` -> `huggingfacetb__smollm2-135m`: safe in paths and config names."""
    return re.sub(r"[^a-z0-9_.-]", "-", model.replace("/", "__").lower())


def config_name(model: str, benchmark: str, approach: str) -> str:
    """A run's config in a result dataset (and its default output folder): `{model_slug}--{benchmark}--{approach}`."""
    return f"{model_slug(model)}--{benchmark}--{approach}"


def model_identity(manifest: Mapping[str, Any]) -> tuple[str, str | None]:
    """(model name for tables, Hub repo id or None) from a run manifest.

    A Hub spec is named by its repo id (without @revision); `embedded` stays `embedded` (its weights are a
    quantised copy, not the Hub repo it came from); a local folder is named by its Hub id if it has one,
    else its folder name; a scored samples file (no model) by the file's stem."""
    model = manifest.get("model")
    if not isinstance(model, Mapping):
        samples = (manifest.get("samples") or {}).get("path")
        return (f"samples:{Path(samples).stem}" if samples else "unknown"), None
    spec = str(model.get("spec") or "unknown")
    hub_id = model.get("hub_id")
    if spec == "embedded":
        return "embedded", hub_id
    if hub_id:
        return str(hub_id), str(hub_id)
    if looks_like_hub_id(spec) and not Path(spec).exists():
        repo = spec.partition("@")[0]
        return repo, repo
    return Path(spec.rstrip("/")).name or spec, None


def approach_of(manifest: Mapping[str, Any]) -> str:
    """The approach a run is named by: the manifest's own, else its prompt strategy, else its kind."""
    return str(
        manifest.get("approach")
        or (manifest.get("prompt") or {}).get("strategy")
        or manifest.get("kind")
        or "score"
    )
