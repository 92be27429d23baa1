"""Latency percentiles of a run of any length, in fixed memory.

`Watch(record=True)` times every frame's stages for the benchmarks. Kept as lists, those
timings grew ~115 bytes per frame (5 floats and their list slots): +38 MB in a 30-minute
8-camera run at 187 frames/s, most of issue 14's RSS growth. A `LatencyHistogram` counts
values in log-spaced bins instead, as HdrHistogram and DDSketch do: its size is fixed, and a
percentile it reports lies within `rel` of the exact one. (Those libraries are not used: the
agent depends on onnxruntime, OpenCV and NumPy only, and this needs one array.)
"""
from __future__ import annotations

import math

import numpy as np

from agent.observers import Observer, Scored

STAGES = ("capture", "preprocess", "inference", "alerting", "end_to_end")


class LatencyHistogram:
    """Counts of millisecond values in bins `rel` wide (relative), from `low_ms` to `high_ms`.

    Values outside the range count in the first or last bin, so percentiles that fall there
    only say "at most `low_ms`" / "at least `high_ms`".
    """

    def __init__(self, low_ms: float = 1e-3, high_ms: float = 1e5, rel: float = 0.01) -> None:
        self.low_ms, self.high_ms = low_ms, high_ms
        self._log_step = math.log1p(2 * rel)  # bin i spans low * (1+2rel)^[i, i+1): its middle is within rel of all of it
        self.counts = np.zeros(math.ceil(math.log(high_ms / low_ms) / self._log_step) + 1, np.int64)
        self.count = 0

    def add(self, ms: float) -> None:
        """Count one value."""
        i = math.floor(math.log(ms / self.low_ms) / self._log_step) if ms > self.low_ms else 0
        self.counts[min(i, len(self.counts) - 1)] += 1
        self.count += 1

    def percentile(self, q: float) -> float:
        """The q-th percentile (0 < q <= 100, nearest rank), within `rel` of the exact value."""
        if self.count == 0:
            raise ValueError("no values recorded")
        rank = max(1, math.ceil(q / 100 * self.count))
        i = int(np.searchsorted(np.cumsum(self.counts), rank))
        return self.low_ms * math.exp((i + 0.5) * self._log_step)


class StageTimings(Observer):
    """Per-stage latency of every scored frame (`Watch(record=True)`), one histogram per stage."""

    def __init__(self) -> None:
        self.histograms = {stage: LatencyHistogram() for stage in STAGES}

    def on_frame(self, scored: Scored) -> None:
        """Count the frame's time in each stage."""
        h = self.histograms
        h["capture"].add(scored.frame.capture_ms)
        h["preprocess"].add(scored.prep_ms)
        h["inference"].add(scored.infer_ms)
        h["alerting"].add(scored.alerting_ms)
        h["end_to_end"].add(scored.latency_ms)
