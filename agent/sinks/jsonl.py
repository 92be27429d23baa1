"""Alert events appended to a JSON-lines file."""
from __future__ import annotations

import json
import os
from pathlib import Path


class JsonlSink:
    """Appends one JSON object per line and fsyncs it, so a power cut loses no written alert."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", encoding="utf-8")

    def emit(self, event: dict) -> None:
        """Append `event` and force it to disk."""
        self._fh.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Close the file."""
        self._fh.close()
