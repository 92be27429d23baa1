"""Projected gradient descent with random restarts (Madry et al. 2018), l_inf and l_2."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainer.attacks._ops import Norm, class_margin, direction, evaluating, project, random_point, rounded
from trainer.attacks.search import ascend, best_of_restarts


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: Norm = "linf", steps: int = 100,
        restarts: int = 5, alpha: float | None = None) -> torch.Tensor:
    """x_{n+1} = Project_eps,x(x_n + alpha u(grad_x J_cls(x_n, y))) from a uniform random x_0 in the eps-ball.

    Madry et al. 2018, "Towards deep learning models resistant to adversarial attacks": l_inf
    (u = sgn) or l_2 (u = g / ||g||_2), J_cls the cross-entropy, evaluated at the rounded frame
    (`rounded`). Each of `restarts` runs keeps its iterate of largest class margin; per image, the
    first run whose rounded frame is misclassified, else the best. x [N, C, H, W] in 0..255, y [N];
    `alpha` defaults to 2.5 eps / steps. Returns [N, C, H, W] in 0..255.
    """
    alpha = 2.5 * eps / steps if alpha is None else alpha

    def run(idx: torch.Tensor, restart: int):
        xs, ys = x[idx], y[idx]

        def step(v: torch.Tensor):
            with torch.enable_grad():
                v = v.detach().requires_grad_(True)
                z = model(rounded(v))
                g, = torch.autograd.grad(F.cross_entropy(z, ys, reduction="sum"), v)
            return direction(g, norm), class_margin(z.detach(), ys)

        x_run, obj = ascend(random_point(xs, eps, norm), step, alpha, steps, lambda v: project(v, xs, eps, norm))
        return x_run, obj > 0, obj

    with evaluating(model):
        return best_of_restarts(x, restarts, run)
