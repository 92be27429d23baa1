"""The one exception type the `export` CLI turns into `error: ...` and exit code 2."""
from __future__ import annotations


class ExportError(Exception):
    """An export or verification that cannot go on; the message is one line meant for the user.

    `report` holds the verification lines gathered before the failure, so the user sees the
    numbers that made it fail, not only the verdict.
    """

    def __init__(self, message: str, report: list[str] | None = None):
        super().__init__(message)
        self.report = list(report or [])
