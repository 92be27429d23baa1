"""The fast method (FGSM, Goodfellow et al. 2015; Sec. 3.1)."""
from __future__ import annotations

import torch
from torch import nn

from trainer.attacks._ops import cross_entropy, evaluating, input_grad


def fast(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """x_adv = x + eps * sgn(grad_x J_cls(x, y_true)), clipped to [0, 255]."""
    with evaluating(model):
        g = input_grad(cross_entropy(model, y), x)
    return (x + eps * g.sign()).clamp(0, 255)
