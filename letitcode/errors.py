"""User-facing errors. Scripts print these as one line, without a traceback (see `letitcode.cli`)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and what to pass instead."""


class DataError(UserError, ValueError):
    """A dataset row that cannot be mapped. The message names the source, the row and the field."""

    def __init__(self, source: str, row: int | str, field_name: str, reason: str):
        self.source, self.row, self.field, self.reason = source, row, field_name, reason
        # `row` is a 0-based index; shown 1-based, so "row 3" of a JSONL file is its line 3, as editors count
        where = f"row {row + 1}" if isinstance(row, int) else f"task {row!r}"
        super().__init__(f"{source}: {where}: field {field_name!r}: {reason}")


class HubUnavailable(UserError):
    """A Hub id could not be reached (offline, unknown or gated). Says what to pass instead."""

    def __init__(self, what: str, repo_id: str, instead: str, cause: BaseException | None = None):
        offline = " (HF_HUB_OFFLINE=1 is set)" if _offline() else ""
        detail = f": {type(cause).__name__}: {str(cause).splitlines()[0][:200]}" if cause else ""
        super().__init__(
            f"cannot reach {what} {repo_id!r} on the Hub{offline}{detail}. Pass {instead} instead."
        )


def _offline() -> bool:
    import os

    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
