"""Reading summary rows of result datasets back, from run directories, dataset folders or the Hub.

A Hub id (`ORG/NAME[@REVISION]`, as `letitcode.hub.spec` parses it) is fetched with
`huggingface_hub.snapshot_download` and then read exactly like a local dataset folder, so the two paths
cannot drift apart. This module talks to huggingface_hub directly: publishing (`letitcode.hub.publish`)
sits above results and imports it, never the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from letitcode.errors import HubUnavailable, UserError
from letitcode.hub.spec import looks_like_hub_id, split_revision
from letitcode.results.dataset import SUMMARY_COLUMNS, read_config_summaries, read_run_dir, summary_row

SUMMARY_PATTERNS = ["README.md", "data/*/summary.parquet"]


def download(
    spec: str,
    *,
    allow_patterns: Sequence[str] = SUMMARY_PATTERNS,
    instead: str = "a local run directory or dataset folder",
) -> tuple[Path, str, str | None]:
    """A local snapshot of (part of) the Hub result dataset `spec`: (folder, repo id, revision or None).
    Offline, unknown or gated all raise HubUnavailable naming `instead`."""
    from huggingface_hub import snapshot_download

    repo, revision = split_revision(spec)
    try:
        local = snapshot_download(
            repo, repo_type="dataset", revision=revision, allow_patterns=list(allow_patterns)
        )
    except UserError:
        raise
    except Exception as e:  # offline, unknown repo, gated: one message with the local alternative
        raise HubUnavailable("result dataset", spec, instead, e) from e
    return Path(local), repo, revision


def _local_rows(src: str, path: Path) -> list[dict[str, Any]]:
    if (path / "results.json").exists():
        folder = path / "dataset"
        if list((folder / "data").glob("*/summary.parquet")):
            return read_config_summaries(folder)
        # an older run without its dataset folder: summarise its files directly
        _, results, manifest = read_run_dir(path)
        return [summary_row(results, manifest)]
    if (path / "data").is_dir():
        found = read_config_summaries(path)
        if not found:
            raise UserError(f"{src}: dataset folder has no data/<config>/summary.parquet")
        return found
    raise UserError(f"{src}: neither a run directory (results.json) nor a result dataset folder (data/)")


def _frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    if not df.empty:
        df = df.drop_duplicates(subset=["config", "created"], keep="last").reset_index(drop=True)
    return df


def load_summaries(sources: Sequence[str]) -> Any:
    """Summary rows (a pandas DataFrame, SUMMARY_COLUMNS) from run directories, dataset folders or Hub
    dataset ids. A Hub id that cannot be fetched raises HubUnavailable naming the local alternative."""
    rows: list[dict[str, Any]] = []
    for src in sources:
        path = Path(src).expanduser()
        if path.is_dir():
            rows += _local_rows(src, path)
        elif looks_like_hub_id(src):
            rows += read_config_summaries(download(src)[0])
        else:
            raise UserError(f"{src}: no such directory, and not a Hub dataset id (ORG/NAME)")
    return _frame(rows)
