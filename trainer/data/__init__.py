"""Data sets as uint8 tensors: CIFAR-10, Fashion-MNIST, MNIST and image folders.

`load_dataset(cfg.data)` returns a `Dataset` with train/val/test `Split`s; every failure
to find or read the data is a `DataError` with a one-line message for the user.
"""
from .dataset import Dataset, DataError, Split
from .load import load_dataset

__all__ = ["DataError", "Dataset", "Split", "load_dataset"]
