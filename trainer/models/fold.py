"""Frozen inference copies of models, for attacks that differentiate through them many times."""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def folded(*models: nn.Module) -> tuple[nn.Module, ...]:
    """Eval-mode copies of `models` computing the same functions with fewer operations.

    In eval mode BatchNorm is a fixed per-channel affine map, so every Conv2d -> BatchNorm2d
    pair inside an nn.Sequential becomes one convolution (results agree to float rounding).
    Weights are stored channels_last, which oneDNN's CPU convolutions prefer, and parameters
    stop requiring grad so backward passes compute input gradients only. The models are copied
    together, so a module they share (the classifier inside a DetectedClassifier) is copied and
    folded once. The originals are untouched: callers may keep training them.
    """
    nets = copy.deepcopy(models)
    for net in nets:
        net.eval().requires_grad_(False)
        for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
            for i in range(len(seq) - 1):
                if isinstance(seq[i], nn.Conv2d) and isinstance(seq[i + 1], nn.BatchNorm2d):
                    seq[i], seq[i + 1] = fuse_conv_bn_eval(seq[i], seq[i + 1]), nn.Identity()
        net.to(memory_format=torch.channels_last)
    return nets
