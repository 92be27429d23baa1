"""Selective and Orthogonal PGD (Bryniarski et al. 2022, "Evading adversarial example detectors using orthogonal PGD").

Both attack the deployed pair, classifier and detector at its threshold, one constraint at a
time: an image not yet misclassified steps on the classifier's loss, one misclassified but still
detected steps on the detector's. Orthogonal PGD removes from each gradient its component along
the other, so a step that fixes one constraint does not undo the other.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainer.attacks._ops import Norm, direction, evaluating, per_sample, project, random_point, rounded
from trainer.attacks.cw import undetected_margin
from trainer.attacks.search import ascend, best_of_restarts

Detector = Callable[[torch.Tensor], torch.Tensor]


def selective_pgd(model: nn.Module, detector_logit: Detector, x: torch.Tensor, y: torch.Tensor, eps: float,
                  threshold: float, norm: Norm = "linf", steps: int = 200, restarts: int = 5,
                  alpha: float | None = None) -> torch.Tensor:
    """x_{n+1} = Project_eps,x(x_n + alpha u(g)), g = grad J_cls(x_n, y) if x_n is classified y, else grad -d(x_n).

    Bryniarski et al. 2022, Selective PGD, l_inf (u = sgn) or l_2 (u = g / ||g||_2). J_cls is the
    cross-entropy, d the detector's logit (p_adv = sigmoid(d)). x [N, C, H, W] in 0..255, y [N];
    `threshold`: the deployed p_adv threshold; `alpha` defaults to 2.5 eps / steps. See `_attack`
    for restarts and what is returned.
    """
    return _attack(model, detector_logit, x, y, eps, threshold, norm, steps, restarts, alpha, orthogonal=False)


def orthogonal_pgd(model: nn.Module, detector_logit: Detector, x: torch.Tensor, y: torch.Tensor, eps: float,
                   threshold: float, norm: Norm = "linf", steps: int = 200, restarts: int = 5,
                   alpha: float | None = None) -> torch.Tensor:
    """Selective PGD stepping on g_c - proj_{g_d} g_c while classified y, else on g_d - proj_{g_c} g_d.

    Bryniarski et al. 2022, Orthogonal PGD: g_c = grad J_cls(x_n, y), g_d = grad -d(x_n), and
    proj_b a = (<a, b> / <b, b>) b per image; l_inf (sgn of the projected gradient) or l_2.
    Arguments, shapes and result as for `selective_pgd`.
    """
    return _attack(model, detector_logit, x, y, eps, threshold, norm, steps, restarts, alpha, orthogonal=True)


def _attack(model: nn.Module, detector_logit: Detector, x: torch.Tensor, y: torch.Tensor, eps: float,
            threshold: float, norm: Norm, steps: int, restarts: int, alpha: float | None,
            orthogonal: bool) -> torch.Tensor:
    """`restarts` runs from uniform random points of the eps-ball, each keeping its iterate of highest
    `undetected_margin`; per image, the first run that succeeds (misclassified and undetected), else
    the best. Losses and success are evaluated on the rounded frame a camera delivers (`rounded`)."""
    alpha = 2.5 * eps / steps if alpha is None else alpha
    t = math.log(threshold / (1 - threshold))

    def run(idx: torch.Tensor, restart: int):
        xs, ys = x[idx], y[idx]

        def step(v: torch.Tensor):
            with torch.enable_grad():
                v = v.detach().requires_grad_(True)
                frame = rounded(v)
                z, d = model(frame), detector_logit(frame)
                j_cls, fooled = F.cross_entropy(z, ys, reduction="none"), z.argmax(1) != ys
                if orthogonal:
                    g_c, = torch.autograd.grad(j_cls.sum(), v, retain_graph=True)
                    g_d, = torch.autograd.grad(-d.sum(), v)
                    g = torch.where(per_sample(fooled, v), g_d - _along(g_d, g_c), g_c - _along(g_c, g_d))
                else:  # one backward pass: each image's gradient is that of its own loss
                    g, = torch.autograd.grad(torch.where(fooled, -d, j_cls).sum(), v)
            return direction(g, norm), undetected_margin(z.detach(), d.detach(), ys, t)

        x_run, obj = ascend(random_point(xs, eps, norm), step, alpha, steps, lambda v: project(v, xs, eps, norm))
        return x_run, obj > 0, obj

    with evaluating(model, detector_logit):
        return best_of_restarts(x, restarts, run)


def _along(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The projection of each image's a onto its b: (<a, b> / <b, b>) b (zero where b is zero)."""
    dot = (a * b).flatten(1).sum(1) / (b * b).flatten(1).sum(1).clamp_min(1e-30)
    return per_sample(dot, a) * b
