"""The recorded latencies: percentiles within 1% of the exact ones, in memory that does not grow."""
from __future__ import annotations

import numpy as np
import pytest

from agent.timings import LatencyHistogram


def test_percentiles_within_one_percent_in_fixed_memory():
    rng = np.random.default_rng(0)
    # Latencies as a watch sees them: a lognormal body around 50 ms and a tail of stalls up to seconds.
    values = np.concatenate([rng.lognormal(np.log(50), 0.4, 50_000), rng.uniform(200, 5000, 500)])
    hist = LatencyHistogram(rel=0.01)
    size = hist.counts.nbytes
    for v in values:
        hist.add(float(v))
    assert hist.count == len(values) and hist.counts.nbytes == size
    for q in (1, 50, 90, 99, 99.9, 100):
        exact = np.percentile(values, q, method="inverted_cdf")  # nearest rank
        assert hist.percentile(q) == pytest.approx(exact, rel=0.01), q


def test_values_outside_the_range_land_in_the_end_bins():
    hist = LatencyHistogram(low_ms=1.0, high_ms=100.0)
    for v in (0.0, 0.5, 1e6):
        hist.add(v)
    assert hist.percentile(50) == pytest.approx(1.0, rel=0.01)
    assert hist.percentile(100) == pytest.approx(100.0, rel=0.03)  # the last bin reaches a little past high_ms
    with pytest.raises(ValueError):
        LatencyHistogram().percentile(50)
