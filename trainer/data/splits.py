"""Turn a loader's train/test arrays into the train/val/test splits the config asks for."""
from __future__ import annotations

from typing import Optional

from .dataset import Dataset, DataError, Split


def split_off_val(train: Split, val_size: int, name: str) -> tuple[Split, Split]:
    """Split the last `val_size` images of `train` off as validation (CIFAR: 45,000/5,000 as in the paper)."""
    if val_size >= len(train):
        raise DataError(
            f"{name}: data.val_size={val_size} leaves no training images (the train set has {len(train)}); "
            "lower data.val_size"
        )
    cut = len(train) - val_size
    return Split(train.images[:cut], train.labels[:cut]), Split(train.images[cut:], train.labels[cut:])


def take_first(split: Split, limit: Optional[int]) -> Split:
    """The first `limit` images of `split` (all of them when `limit` is None or larger)."""
    if limit is None:
        return split
    return Split(split.images[:limit], split.labels[:limit])


def build_dataset(
    name: str,
    classes: list[str],
    train: Split,
    test: Split,
    val_size: int,
    train_limit: Optional[int],
    test_limit: Optional[int],
    val: Optional[Split] = None,
) -> Dataset:
    """Assemble a `Dataset`: split validation off `train` unless `val` is given, then apply the limits.

    The limits apply after the split so that the validation set does not change with them.
    """
    if val is None:
        train, val = split_off_val(train, val_size, name)
    return Dataset(name, classes, take_first(train, train_limit), val, take_first(test, test_limit))
