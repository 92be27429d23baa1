"""Train/val split and limits, shared by every format."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.data import Dataset, DataError, Split
from trainer.data.splits import build_dataset, split_off_val, take_first


def numbered(n: int, channels: int = 1) -> Split:
    """n 2x3 images; image i is filled with i and labelled i % 10."""
    images = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, channels, 2, 3).contiguous()
    return Split(images, torch.arange(n) % 10)


def test_val_is_the_tail_of_train():
    train, val = split_off_val(numbered(10), 3, "x")
    assert train.images[:, 0, 0, 0].tolist() == list(range(7))
    assert val.images[:, 0, 0, 0].tolist() == [7, 8, 9]
    assert val.labels.tolist() == [7, 8, 9]


def test_val_size_must_leave_training_images():
    with pytest.raises(DataError, match="val_size=10 leaves no training images"):
        split_off_val(numbered(10), 10, "x")


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(2, 40),
    val=st.integers(1, 39),
    train_limit=st.none() | st.integers(1, 50),
    test_limit=st.none() | st.integers(1, 50),
)
def test_limits_apply_after_the_split(n, val, train_limit, test_limit):
    if val >= n:
        return
    data = build_dataset("x", [str(i) for i in range(10)], numbered(n), numbered(7), val, train_limit, test_limit)
    cut = n - val
    assert data.val.images[:, 0, 0, 0].tolist() == list(range(cut, n))  # the limits never change val
    assert data.train.images[:, 0, 0, 0].tolist() == list(range(min(cut, train_limit or cut)))
    assert len(data.test) == min(7, test_limit or 7)


def test_given_val_is_kept_and_val_size_ignored():
    data = build_dataset("x", ["a"], numbered(5), numbered(4), 100, None, None, val=numbered(2))
    assert (len(data.train), len(data.val), len(data.test)) == (5, 2, 4)


def test_take_first_without_limit_is_identity():
    split = numbered(3)
    assert take_first(split, None) is split


def test_dataset_properties():
    data = Dataset("x", ["a", "b", "c"], numbered(4, 3), numbered(1, 3), numbered(2, 3))
    assert (data.channels, data.height, data.width, data.num_classes) == (3, 2, 3, 3)


def test_split_rejects_wrong_dtypes():
    with pytest.raises(ValueError):
        Split(torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError):
        Split(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))
