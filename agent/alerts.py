"""Alert events and their lossless snapshots, kept within a size, age and free-space budget."""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from agent.config import AlertConfig
from agent.metrics import Metrics
from common.files import write_atomic

log = logging.getLogger(__name__)

MB = 1 << 20


def utc_iso(ts: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2024-05-01T12:00:00.123Z."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_writable(folder: Path) -> None:
    """Create `folder` if needed and prove a file can be created in it; raises OSError otherwise."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder):
        pass


def alert_name(camera: str, frame_index: int, ts: float) -> str:
    """The file or folder name of an alert's saved frames: camera, frame index and UTC time."""
    stamp = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{camera}-{frame_index:09d}-{stamp}"


def low_space(folder: Path, need: int, min_free_mb: float) -> str | None:
    """Why `need` bytes must not be written in `folder` (the free-space guard), or None."""
    free = shutil.disk_usage(folder).free
    if free - need < min_free_mb * MB:
        return f"{free / MB:.2f} MB free on its filesystem, alerts.min_free_mb is {min_free_mb}"
    return None


class Retention:
    """Files or folders kept within a total size and an age; the oldest are removed first.

    Entries are tracked as they are added, so pruning never lists the folder again.
    """

    def __init__(self, max_bytes: float, max_age_days: float, metrics: Metrics) -> None:
        self.max_bytes = max_bytes
        self.max_age_s = max_age_days * 86400
        self.metrics = metrics
        self._kept: deque[tuple[float, Path, int]] = deque()  # (mtime, path, bytes), oldest first
        self._bytes = 0

    def track(self, entries: list[tuple[float, Path, int]]) -> None:
        """Start tracking what a folder already holds, (mtime, path, bytes) each, then prune."""
        self._kept = deque(sorted([*self._kept, *entries]))
        self._bytes = sum(size for _, _, size in self._kept)
        self.prune()

    def add(self, path: Path, size: int) -> None:
        """Track a new entry, then prune."""
        self._kept.append((os.stat(path).st_mtime, path, size))
        self._bytes += size
        self.prune()

    def prune(self) -> None:
        """Remove the oldest entries beyond the size or the age bound."""
        cutoff = time.time() - self.max_age_s
        while self._kept and (self._bytes > self.max_bytes or self._kept[0][0] < cutoff):
            _, path, size = self._kept.popleft()
            self._bytes -= size
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            self.metrics.retention_deleted.inc()


class SnapshotWriter:
    """Writes the full-resolution frame of each alert as PNG (lossless, so it can be re-analysed).

    A snapshot is encoded in memory, written through a temp file, fsynced, renamed and read
    back: a path in an alert always names the complete image. Retention removes the oldest
    snapshots beyond `snapshot_max_mb` or `snapshot_max_age_days`; below `min_free_mb` of
    free space none is written, so the alert log and the MQTT spool keep their room.
    """

    def __init__(self, cfg: AlertConfig, metrics: Metrics | None = None) -> None:
        self.cfg = cfg
        self.folder = Path(cfg.snapshot_dir)
        self.metrics = metrics or Metrics()
        check_writable(self.folder)
        self.retention = Retention(cfg.snapshot_max_mb * MB, cfg.snapshot_max_age_days, self.metrics)
        found = []
        for path in self.folder.glob("*.png"):
            st = path.stat()
            found.append((st.st_mtime, path, st.st_size))
        self.retention.track(found)

    def write(self, image: np.ndarray, camera: str, frame_index: int, ts: float) -> Path:
        """Save `image` and return its path; raises OSError (and counts it) when it cannot be saved whole."""
        path = self.folder / f"{alert_name(camera, frame_index, ts)}.png"
        # Level 1: PNG is lossless at every level; the fast one keeps alerting cheap.
        ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            self.metrics.snapshot_errors.labels("encode").inc()
            raise OSError(f"cannot encode snapshot {path}")
        data = encoded.tobytes()
        if (why := low_space(self.folder, len(data), self.cfg.min_free_mb)) is not None:
            self.metrics.snapshot_errors.labels("low_space").inc()
            raise OSError(f"snapshot {path} not written: {why}")
        try:
            write_atomic(path, data)
            if path.read_bytes() != data:
                path.unlink(missing_ok=True)
                raise OSError("it did not read back as written")
        except OSError as exc:
            self.metrics.snapshot_errors.labels("write").inc()
            raise OSError(f"snapshot {path} not saved: {exc.strerror or exc}") from None
        self.retention.add(path, len(data))
        return path


def make_event(*, camera: str, frame_index: int, captured_at: float, p_adv: float, threshold: float,
               probs: np.ndarray, class_names: list[str], model_sha256: str, snapshot: Path | None) -> dict:
    """The JSON-serialisable alert event sent to every sink."""
    predicted = int(np.argmax(probs))
    return {
        "event": "alert",
        "id": uuid.uuid4().hex,
        "time": utc_iso(captured_at),
        "camera": camera,
        "frame_index": frame_index,
        "p_adv": round(float(p_adv), 6),
        "threshold": threshold,
        "predicted_class": class_names[predicted] if predicted < len(class_names) else str(predicted),
        "predicted_index": predicted,
        "class_probability": round(float(probs[predicted]), 6),
        "model_sha256": model_sha256,
        "snapshot": str(snapshot) if snapshot is not None else None,
    }
