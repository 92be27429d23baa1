"""Is a frame a picture of a scene? Frozen, black, saturated and undecodable frames are not scored.

A camera that freezes, goes black or saturates, and a decoder that hands out empty or
flat-filled frames after a reconnect, would otherwise be scored as scenes (and p_adv on
them means nothing). `FrameHealth` judges each frame of one camera and tracks whether the
camera is degraded, with hysteresis so one odd frame does not flap the state.
"""
from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from agent.config import HealthConfig

Verdict = Literal["frozen", "black", "saturated", "undecodable"] | None
# Judged on a small grey thumbnail: cheap at any resolution, and the shares need no detail.
_THUMB = (64, 48)


class Hysteresis:
    """A state that turns on after `on_after` bad frames in a row and off after `off_after` good ones."""

    def __init__(self, on_after: int, off_after: int) -> None:
        self.on_after, self.off_after = on_after, off_after
        self._bad = 0
        self._good = 0
        self.reason: str | None = None  # why it is on; None while off

    def update(self, reason: str | None) -> Literal["on", "off"] | None:
        """Feed one frame (`reason` None: a good frame); return the change of state, if any."""
        if reason is not None:
            self._bad, self._good = self._bad + 1, 0
            if self.reason is None and self._bad >= self.on_after:
                self.reason = reason
                return "on"
            return None
        self._good, self._bad = self._good + 1, 0
        if self.reason is not None and self._good >= self.off_after:
            self.reason = None
            return "off"
        return None


class FrameHealth:
    """Per-camera frame checks; `state` says whether (and why) the camera is degraded."""

    def __init__(self, cfg: HealthConfig) -> None:
        self.cfg = cfg
        self._previous: np.ndarray | None = None
        self.state = Hysteresis(cfg.degrade_after, cfg.recover_after)

    def judge(self, image: np.ndarray | None) -> Verdict:
        """Why `image` must not be scored, or None when it can be."""
        if image is None or image.size == 0 or image.dtype != np.uint8 or image.ndim not in (2, 3):
            self._previous = None
            return "undecodable"
        previous, self._previous = self._previous, image
        grey = image if image.ndim == 2 else cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2GRAY)
        thumb = cv2.resize(grey, _THUMB, interpolation=cv2.INTER_AREA)
        c = self.cfg
        if np.count_nonzero(thumb <= c.black_level) >= c.share * thumb.size:
            return "black"
        if np.count_nonzero(thumb >= c.saturated_level) >= c.share * thumb.size:
            return "saturated"
        if float(thumb.std()) < c.uniform_std:
            return "undecodable"  # a decoder without data fills frames with one colour
        # Last: a black or saturated camera also repeats its frame, and that is the better reason.
        if previous is not None and previous.shape == image.shape and np.array_equal(previous, image):
            return "frozen"
        return None
