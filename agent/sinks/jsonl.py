"""Alert events appended to a JSON-lines file, whole lines only, within a size budget."""
from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path

from agent.alerts import MB
from agent.observers import Context
from agent.sinks import Sink

log = logging.getLogger(__name__)


class JsonlSink(Sink):
    """Appends one JSON object per line and fsyncs it, so a power cut loses no written alert.

    Each line goes out in one write; a write the disk cut short is truncated away again, so
    the file never holds a torn line (one left by a crash is removed at open). Past
    `max_bytes` the file is renamed to FILE.1, replacing the previous one.
    """

    def __init__(self, path: Path, max_bytes: float = float("inf")) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = self._open()

    def _open(self) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(fd).st_size
        if size:
            tail = os.pread(fd, min(size, 1 << 16), max(0, size - (1 << 16)))
            if not tail.endswith(b"\n"):
                keep = max(0, size - len(tail)) + tail.rfind(b"\n") + 1
                log.warning("%s ended in a torn line (%d bytes, from a crash or full disk); removed it",
                            self.path, size - keep)
                os.ftruncate(fd, keep)
        return fd

    def emit(self, event: dict) -> None:
        """Append `event` as one line and force it to disk; raises OSError, leaving no partial line."""
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        size = os.fstat(self._fd).st_size
        if size and size + len(line) > self.max_bytes:
            os.close(self._fd)
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self._fd, size = self._open(), 0
        try:
            if os.write(self._fd, line) != len(line):
                raise OSError(errno.ENOSPC, "short write")
            os.fsync(self._fd)
        except OSError as exc:
            os.ftruncate(self._fd, size)
            raise OSError(exc.errno, f"alert {event.get('id')} not appended to {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)


def build(ctx: Context) -> JsonlSink | None:
    """`sinks.jsonl`, rotated past `sinks.jsonl_max_mb`."""
    sinks = ctx.cfg.sinks
    return JsonlSink(sinks.jsonl, sinks.jsonl_max_mb * MB) if sinks.jsonl is not None else None
