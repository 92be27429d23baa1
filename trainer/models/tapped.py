"""The interface every classifier offers to detectors: a trunk with attachment points.

A classifier is `trunk[0] -> trunk[1] -> ... -> head`. The activation after `trunk[i]`
is the paper's attachment point AD(i) (Fig. 1), so a detector taps the network by
running the trunk up to its point, without copying any layer.
"""
from __future__ import annotations

import torch
from torch import nn


class Normalize(nn.Module):
    """Maps 0..255 images to zero mean / unit variance, so the model takes raw pixels."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class TappedClassifier(nn.Module):
    """A classifier split into `trunk` stages (AD(0)..AD(n-1)) and a `head` giving logits."""

    trunk: nn.ModuleList
    head: nn.Module
    tap_channels: list[int]  # channels of the activation at each AD(i)
    tap_strides: list[int]  # spatial downsampling of each AD(i) relative to the input

    def tap(self, x: torch.Tensor, point: int) -> torch.Tensor:
        """Activation at AD(point) for images `x` in 0..255."""
        for stage in self.trunk[: point + 1]:
            x = stage(x)
        return x

    def advance(self, h: torch.Tensor, point: int, to: int) -> torch.Tensor:
        """Activation at AD(to) from the one at AD(point), to >= point."""
        for stage in self.trunk[point + 1 : to + 1]:
            h = stage(h)
        return h

    def resume(self, h: torch.Tensor, point: int) -> torch.Tensor:
        """Logits from the activation at AD(point)."""
        for stage in self.trunk[point + 1 :]:
            h = stage(h)
        return self.head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resume(self.tap(x, 0), 0)
