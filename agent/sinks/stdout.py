"""Alert events as JSON lines on stdout (logs go to stderr, so stdout stays machine-readable)."""
from __future__ import annotations

import json
import sys

from agent.observers import Context
from agent.sinks import Sink


class StdoutSink(Sink):
    """One JSON object per line, flushed at once so a pipe reader sees it without delay."""

    def emit(self, event: dict) -> None:
        """Print `event` as one line."""
        sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        """Nothing buffered."""


def build(ctx: Context) -> StdoutSink | None:
    """`sinks.stdout`."""
    return StdoutSink() if ctx.cfg.sinks.stdout else None
