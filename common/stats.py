"""Interval estimates for the rates a security report states (standard library only: export and the agent use it too)."""
from __future__ import annotations

import math


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95% for z = 1.96) of a proportion `successes / trials`.

    Unlike the normal approximation it stays inside [0, 1] and keeps its coverage for the small
    counts and rates near 0 or 1 that detectability on a few fooled images gives.
    """
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)
