"""A camera frame as the model's input: the one preprocessing the agent applies and the audit's footage test repeats."""
from __future__ import annotations

import cv2
import numpy as np


def model_input(frame: np.ndarray, height: int, width: int, channels: int, interpolation: int) -> np.ndarray:
    """One BGR(A) or grey frame as uint8 [height, width, channels] (BGR or grey), resized with `interpolation`."""
    if frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if channels == 1 and frame.ndim == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    elif channels == 3 and frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[1] != width or frame.shape[0] != height:
        frame = cv2.resize(frame, (width, height), interpolation=interpolation)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    return frame
