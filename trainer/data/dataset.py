"""The in-memory form every loader returns: uint8 images with int64 labels, split three ways."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from common.errors import UserError


class DataError(UserError):
    """A data set that cannot be loaded; the message is one line for the user (what, which file, what to do)."""


@dataclass
class Split:
    """One part of a data set.

    `images` is uint8 [N, C, H, W] (RGB for colour) so that attack budgets stay in 0..255
    units; `labels` is int64 [N].
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        # A wrong dtype or shape here is a bug in a loader, not a user error: fail loudly and early.
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 [N,C,H,W], got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            n = self.images.shape[0]
            raise ValueError(f"labels must be int64 [{n}], got {self.labels.dtype} {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass
class Dataset:
    """A named data set with its class names and train/val/test splits."""

    name: str
    classes: list[str]
    train: Split
    val: Split
    test: Split

    @property
    def channels(self) -> int:
        """Image channels: 1 (grey) or 3 (RGB)."""
        return self.train.images.shape[1]

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return self.train.images.shape[2]

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return self.train.images.shape[3]

    @property
    def num_classes(self) -> int:
        """Number of classes, i.e. of logits a classifier needs."""
        return len(self.classes)
