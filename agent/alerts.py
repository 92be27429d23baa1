"""Alert events and their lossless snapshots."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np


def utc_iso(ts: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2024-05-01T12:00:00.123Z."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SnapshotWriter:
    """Writes the full-resolution frame of each alert as PNG (lossless, so it can be re-analysed)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, image: np.ndarray, camera: str, frame_index: int, ts: float) -> Path:
        """Save `image` and return its path; raises OSError when it cannot be written."""
        stamp = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.folder / f"{camera}-{frame_index:09d}-{stamp}.png"
        # Level 1: PNG is lossless at every level; the fast one keeps alerting cheap.
        if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise OSError(f"cannot write snapshot {path}")
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
