"""k-of-n raising, clearing after m frames below, cooldown."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.debounce import Debouncer


def run(debouncer: Debouncer, pattern: str) -> list[tuple[int, str]]:
    """Feed '1'/'0' frames; return (index, transition) pairs."""
    out = []
    for i, c in enumerate(pattern):
        t = debouncer.update(c == "1")
        if t:
            out.append((i, t))
    return out


def test_single_noisy_frame_is_not_an_alert():
    assert run(Debouncer(k=3, n=5, clear_after=2), "0001000001000") == []


def test_k_of_n_raises_on_the_kth_hit_within_the_window():
    assert run(Debouncer(k=3, n=5, clear_after=20), "0101010") == [(5, "raise")]
    # three hits spread over more than n frames do not raise
    assert run(Debouncer(k=3, n=5, clear_after=20), "1000100010001") == []


def test_clears_after_m_consecutive_frames_below():
    d = Debouncer(k=2, n=3, clear_after=3)
    assert run(d, "11" + "001" + "000" + "0") == [(1, "raise"), (7, "clear")]


def test_cooldown_blocks_a_new_alert_after_clearing():
    d = Debouncer(k=1, n=1, clear_after=1, cooldown=3)
    #        raise clear  cooldown(3)  raise
    assert run(d, "1" + "0" + "111" + "1") == [(0, "raise"), (1, "clear"), (5, "raise")]


def test_hits_before_a_clear_do_not_count_towards_the_next_alert():
    d = Debouncer(k=2, n=5, clear_after=1)
    assert run(d, "11" + "0" + "1") == [(1, "raise"), (2, "clear")]


@pytest.mark.parametrize("args", [(0, 1, 1, 0), (3, 2, 1, 0), (1, 1, 0, 0), (1, 1, 1, -1)])
def test_bad_parameters_are_rejected(args):
    with pytest.raises(ValueError):
        Debouncer(*args)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 6), st.integers(0, 4), st.integers(1, 5), st.integers(0, 5),
       st.lists(st.booleans(), max_size=80))
def test_transitions_alternate_and_respect_the_rules(k, extra, m, cooldown, frames):
    n = k + extra
    d = Debouncer(k, n, m, cooldown)
    last_clear = None
    active = False
    for i, hit in enumerate(frames):
        t = d.update(hit)
        if t == "raise":
            assert not active
            assert sum(frames[max(0, i - n + 1):i + 1]) >= k
            if last_clear is not None:
                assert i - last_clear > cooldown
            active = True
        elif t == "clear":
            assert active
            assert not any(frames[i - m + 1:i + 1])
            active, last_clear = False, i
        assert d.active == active
