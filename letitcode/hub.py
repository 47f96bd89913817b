"""Hub publishing: one place that talks to `huggingface_hub.HfApi`.

Every push goes through `api()` so tests can swap the network boundary (a recording `HfApi` double)
and nothing else. `require_token()` is called before any long work starts, so a missing token fails in
the first second, not after an hour of generation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from letitcode.errors import UserError

_API_FACTORY: Any = None  # tests set this to a callable returning an HfApi double


def set_api_factory(factory: Any) -> None:
    """Replace how `api()` builds its client (tests: a recorded HfApi); None restores the real one."""
    global _API_FACTORY
    _API_FACTORY = factory


def api() -> Any:
    if _API_FACTORY is not None:
        return _API_FACTORY()
    from huggingface_hub import HfApi

    return HfApi()


def require_token(action: str) -> str:
    """The Hub token for `action`, or a clear error before any work starts."""
    from huggingface_hub import get_token

    token = get_token()
    if _API_FACTORY is not None and not token:
        token = "test-token"  # the recorded double needs no credentials
    if not token:
        raise UserError(
            f"{action} needs a Hub token with write access: set HF_TOKEN or run `hf auth login` first "
            "(or drop the push flag to keep results local)"
        )
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true") and _API_FACTORY is None:
        raise UserError(f"{action} needs the Hub, but HF_HUB_OFFLINE=1 is set: unset it, or drop the push flag")
    return token


def push_folder(
    repo_id: str,
    folder: str | Path,
    *,
    repo_type: str = "model",
    commit_message: str,
    private: bool = False,
    path_in_repo: str | None = None,
    ignore_patterns: list[str] | None = None,
) -> str:
    """Create the repo if needed and upload `folder` in one commit. Returns the commit URL."""
    client = api()
    client.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    info = client.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type=repo_type,
        path_in_repo=path_in_repo,
        commit_message=commit_message,
        ignore_patterns=ignore_patterns,
    )
    return str(getattr(info, "commit_url", info))
