"""`load_dataset`: from a `DataConfig` to the three splits, whatever the source format."""
from __future__ import annotations

from trainer.config import DataConfig

from .cifar10 import DEFAULT_ROOT as CIFAR10_ROOT, load_cifar10
from .dataset import Dataset, DataError
from .folder import load_folder
from .idx import FASHION_MNIST, MNIST, load_idx
from .splits import build_dataset


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load the data set `cfg` names, split validation off the end of train, apply the limits.

    Raises `DataError` (one line: what is wrong, which file, what to do) on missing or bad data.
    """
    val = None
    if cfg.name == "cifar10":
        classes, train, test = load_cifar10(cfg.root or CIFAR10_ROOT, cfg.download)
    elif cfg.name in ("fashion-mnist", "mnist"):
        source = FASHION_MNIST if cfg.name == "fashion-mnist" else MNIST
        classes, train, test = load_idx(cfg.root or source.root, source, cfg.download)
    else:
        if cfg.root is None or cfg.image_size is None:
            raise DataError("data.name=folder needs data.root (the folder with train/ and test/) and data.image_size")
        classes, train, val, test = load_folder(cfg.root, cfg.image_size, cfg.channels)
    return build_dataset(cfg.name, classes, train, test, cfg.val_size, cfg.train_limit, cfg.test_limit, val)
