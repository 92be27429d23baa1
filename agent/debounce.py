"""Turn per-frame threshold decisions into alerts that one noisy frame cannot trigger."""
from __future__ import annotations

from collections import deque
from typing import Literal

Transition = Literal["raise", "clear"] | None


class Debouncer:
    """k-of-n raising, clearing after m frames below, and a cooldown after each clear.

    - inactive: raise when at least `k` of the last `n` frames exceeded the threshold,
      unless fewer than `cooldown` frames have passed since the last clear;
    - active: clear after `clear_after` consecutive frames below the threshold.
    """

    def __init__(self, k: int, n: int, clear_after: int, cooldown: int = 0) -> None:
        if not 1 <= k <= n or clear_after < 1 or cooldown < 0:
            raise ValueError(f"need 1 <= k <= n, clear_after >= 1, cooldown >= 0 (k={k}, n={n}, "
                             f"clear_after={clear_after}, cooldown={cooldown})")
        self.k, self.n, self.clear_after, self.cooldown = k, n, clear_after, cooldown
        self._window: deque[bool] = deque(maxlen=n)
        self._hits = 0  # True values in the window, kept to avoid summing every frame
        self._below = 0
        self._cooldown_left = 0
        self.active = False

    def _push(self, exceeded: bool) -> None:
        if len(self._window) == self.n and self._window[0]:
            self._hits -= 1
        self._window.append(exceeded)
        self._hits += exceeded

    def update(self, exceeded: bool) -> Transition:
        """Feed one frame's decision; return "raise", "clear" or None."""
        self._push(exceeded)
        if self.active:
            self._below = 0 if exceeded else self._below + 1
            if self._below >= self.clear_after:
                self.active = False
                self._cooldown_left = self.cooldown
                # Hits from before the clear must not count towards the next alert.
                self._window.clear()
                self._hits = 0
                return "clear"
            return None
        if self._cooldown_left > 0:
            self._cooldown_left -= 1
            return None
        if self._hits >= self.k:
            self.active = True
            self._below = 0
            return "raise"
        return None
