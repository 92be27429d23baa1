"""Single-step attacks made for adversarial training of a classifier: cheap enough to run on every batch.

Both are l_inf. They are training tools, not evaluation attacks: the audit measures a model
trained with them using PGD with restarts and the adaptive attacks.
"""
from __future__ import annotations

import torch
from torch import nn

from trainer.attacks._ops import cross_entropy, evaluating, input_grad


def fgsm_random_start(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                      alpha: float | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
    """x_adv = Clip_eps,x(x_0 + alpha M sgn(grad_x J_cls(x_0, y))), x_0 = x + M U(-eps, eps), clipped to [0, 255].

    Wong, Rice & Kolter 2020, "Fast is better than free: revisiting adversarial training": the random
    start is what keeps one FGSM step from the catastrophic overfitting of plain FGSM training;
    `alpha` defaults to their 1.25 eps. `mask` M [N, 1, H, W] bool confines the perturbation to the
    object (`confined.object_mask`; x_adv equals x bitwise where M is 0); None = everywhere.
    x [N, C, H, W] in 0..255, y [N]; returns [N, C, H, W].
    """
    alpha = 1.25 * eps if alpha is None else alpha
    m = 1.0 if mask is None else mask.to(x.dtype)
    start = (x + m * torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 255)
    with evaluating(model):
        g = input_grad(cross_entropy(model, y), start)
    return torch.minimum(torch.maximum(start + alpha * m * g.sign(), x - eps), x + eps).clamp(0, 255)


def n_fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float | None = None,
           noise: float | None = None) -> torch.Tensor:
    """x_adv = x_0 + alpha sgn(grad_x J_cls(x_0, y)), x_0 = x + U(-noise, noise), only clipped to [0, 255].

    de Jorge et al. 2022, "Make some noise: reliable and efficient single-step adversarial training"
    (N-FGSM): stronger noise (`noise` defaults to 2 eps) and no projection back to the eps-ball
    (`alpha` defaults to eps), so the training perturbation may exceed eps; that is what avoids
    catastrophic overfitting at a single step's cost. x [N, C, H, W] in 0..255, y [N]; returns [N, C, H, W].
    """
    alpha = eps if alpha is None else alpha
    noise = 2 * eps if noise is None else noise
    start = (x + torch.empty_like(x).uniform_(-noise, noise)).clamp(0, 255)
    with evaluating(model):
        g = input_grad(cross_entropy(model, y), start)
    return (start + alpha * g.sign()).clamp(0, 255)
