"""Auto-PGD with the cross-entropy (Croce and Hein 2020): PGD with momentum and a step size that adapts itself."""
from __future__ import annotations

import torch
from torch import nn

from trainer.attacks._ops import Norm, direction, evaluating, per_sample, project, random_point
from trainer.attacks.pgd import cross_entropy_grad
from trainer.attacks.search import best_of_restarts

MOMENTUM, RHO = 0.75, 0.75


def apgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: Norm = "linf", steps: int = 100,
         restarts: int = 1) -> torch.Tensor:
    """z_{k+1} = P(x_k + eta u(grad f(x_k))), x_{k+1} = P(x_k + a (z_{k+1} - x_k) + (1 - a)(x_k - x_{k-1})).

    Croce and Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse
    parameter-free attacks", APGD-CE: f = J_cls the cross-entropy of the rounded frame, P `project`
    onto the l_inf or l_2 eps-ball (and [0, 255]), u = sgn (l_inf) or g / ||g||_2 (l_2), a = 0.75
    (1 at the first step), eta = 2 eps at first. At each checkpoint w_j = ceil(p_j steps), p_0 = 0,
    p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), eta is halved and x_k reset to the
    point of highest f so far where fewer than rho = 0.75 of the steps since w_{j-1} raised f, or
    where neither eta nor the highest f changed since w_{j-1}. The start is uniform in the eps-ball
    (`random_point`). Each of `restarts` runs keeps its iterate of largest class margin; per image,
    the first run whose rounded frame is misclassified, else the best. x [N, C, H, W] in 0..255,
    y [N]. Returns [N, C, H, W] in 0..255.
    """
    checkpoints = _checkpoints(steps)

    def run(idx: torch.Tensor, restart: int):
        xs, ys = x[idx], y[idx]
        f = cross_entropy_grad(model, ys)

        def ball(v: torch.Tensor) -> torch.Tensor:
            return project(v, xs, eps, norm)

        x_k = x_prev = random_point(xs, eps, norm)
        g, loss, margin = f(x_k)
        eta = torch.full((len(xs),), 2.0 * eps, device=x.device)
        x_max, f_max, g_max = x_k, loss, g  # the point of highest f: where a halving restarts
        best, best_margin = x_k, margin  # the iterate of largest class margin: what the run returns
        # since the last checkpoint `last`: steps that raised f, and whether eta was halved there, f_max then
        raised, halved, f_max_then, last = torch.zeros_like(loss), torch.zeros_like(loss, dtype=torch.bool), f_max, 0
        for k in range(steps):
            a = MOMENTUM if k else 1.0
            z = ball(x_k + per_sample(eta, x_k) * direction(g, norm))
            x_k, x_prev = ball(x_k + a * (z - x_k) + (1 - a) * (x_k - x_prev)), x_k
            g, new_loss, margin = f(x_k)
            raised += new_loss > loss
            loss = new_loss
            x_max, g_max, f_max = _where(loss > f_max, (x_k, g, loss), (x_max, g_max, f_max))
            best, best_margin = _where(margin > best_margin, (x_k, margin), (best, best_margin))
            if k + 1 in checkpoints:
                halve = (raised < RHO * (k + 1 - last)) | (~halved & (f_max == f_max_then))
                eta = torch.where(halve, eta / 2, eta)
                x_k, g, loss = _where(halve, (x_max, g_max, f_max), (x_k, g, loss))
                raised, halved, f_max_then, last = torch.zeros_like(raised), halve, f_max, k + 1
        return best, best_margin > 0, best_margin

    with evaluating(model):
        return best_of_restarts(x, restarts, run)


def _checkpoints(steps: int) -> set[int]:
    """The iterations w_j = ceil(p_j steps) in (0, steps] at which APGD may halve its step size.

    p_j is counted in hundredths, so that float rounding cannot move a w_j (0.41 + 0.16 > 0.57).
    """
    p, previous, points = 22, 0, set()
    while p <= 100:
        points.add(-(-p * steps // 100))
        p, previous = p + max(p - previous - 3, 6), p
    return points


def _where(cond: torch.Tensor, new: tuple[torch.Tensor, ...], old: tuple[torch.Tensor, ...]
           ) -> tuple[torch.Tensor, ...]:
    """Per sample, the tensors of `new` where cond [n] holds, else those of `old`."""
    return tuple(torch.where(per_sample(cond, a), a, b) for a, b in zip(new, old))
