"""The one error type for input the user can fix, and how every CLI reports it."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

EXIT_CODE = 2


class UserError(Exception):
    """Bad input the user can fix (config, data, run directory, model file): every CLI prints
    `error: <message>` as one line on stderr and exits with code 2, without a traceback.

    `report` holds lines gathered before the failure (e.g. verification numbers), printed first.
    """

    def __init__(self, message: str, report: list[str] | None = None):
        super().__init__(message)
        self.report = list(report or [])


@contextmanager
def reported() -> Iterator[None]:
    """Run a CLI command; a `UserError` becomes its report, `error: ...` on stderr and `SystemExit(2)`."""
    try:
        yield
    except UserError as exc:
        for line in exc.report:
            print(line)
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CODE) from None
