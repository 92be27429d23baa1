"""Real clean camera footage as the deployed agent sees it: the false-alarm test beyond the data set."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from common.frames import model_input


def footage_frames(path: Path, count: int, height: int, width: int, channels: int) -> np.ndarray | None:
    """`count` frames spread evenly over the video at `path`, preprocessed as the agent does (grey or BGR -> RGB,
    INTER_AREA resize, the exporter's `resize_interpolation`), as uint8 [N, C, H, W]; None if no frame decodes.

    Every frame is decoded in order: seeking is unreliable in AVI files, and a container's frame
    count may overstate what decodes (opencv-doc's tree.avi claims 444 frames and holds 68).
    """
    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            img = model_input(frame, height, width, channels, cv2.INTER_AREA)
            frames.append(img if channels == 1 else img[:, :, ::-1])  # the trainer's images are RGB
    finally:
        cap.release()
    if not frames:
        return None
    pick = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    return np.stack([frames[i] for i in pick]).transpose(0, 3, 1, 2).copy()
