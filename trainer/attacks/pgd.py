"""Projected gradient descent with random restarts (Madry et al. 2018), l_inf and l_2, and the loop of its variants."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainer.attacks._ops import Norm, class_margin, direction, evaluating, project, random_point, rounded
from trainer.attacks.search import ascend, best_of_restarts

# threat(x) -> (start, constrain, image) for the images x of one run: the parameter v the run ascends
# starts at `start`, `constrain` maps each step's result back into the threat model, and image(v) is
# the attacked image [n, C, H, W] in 0..255 (None: v itself, for attacks on the pixels).
Threat = Callable[[torch.Tensor], tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor],
                                        Callable[[torch.Tensor], torch.Tensor] | None]]


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
    return restarted_pgd(model, x, y, steps, restarts, alpha, lambda g: direction(g, norm),
                         lambda xs: (random_point(xs, eps, norm), lambda v: project(v, xs, eps, norm), None))


def restarted_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, restarts: int, alpha: float,
                  unit: Callable[[torch.Tensor], torch.Tensor], threat: Threat) -> torch.Tensor:
    """`restarts` runs of v_{n+1} = constrain(v_n + alpha unit(grad_v J_cls(image(v_n), y))), the best kept per image.

    `pgd`'s loop for any threat model (see `Threat`): J_cls is the cross-entropy of the rounded
    frame of image(v); each run returns image(v) of its iterate of largest class margin, a success
    when that margin is > 0, and `best_of_restarts` keeps per image the first success, else the
    best. x [N, C, H, W] in 0..255, y [N]; returns [N, C, H, W].
    """
    def run(idx: torch.Tensor, restart: int):
        xs, ys = x[idx], y[idx]
        start, constrain, image = threat(xs)
        image = image or _pixels
        grad_at = cross_entropy_grad(model, ys, image)

        def step(v: torch.Tensor):
            g, _, margin = grad_at(v)
            return unit(g), margin

        v, obj = ascend(start, step, alpha, steps, constrain)
        return image(v), obj > 0, obj

    with evaluating(model):
        return best_of_restarts(x, restarts, run)


def cross_entropy_grad(model: nn.Module, y: torch.Tensor, image: Callable[[torch.Tensor], torch.Tensor] | None = None
                       ) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """v -> (grad_v J_cls, J_cls [n], class margin [n]) at the rounded frame of image(v) (default v), in one pass."""
    image = _pixels if image is None else image

    def at(v: torch.Tensor):
        with torch.enable_grad():
            v = v.detach().requires_grad_(True)
            z = model(rounded(image(v)))
            loss = F.cross_entropy(z, y, reduction="none")
            g, = torch.autograd.grad(loss.sum(), v)
        return g, loss.detach(), class_margin(z.detach(), y)

    return at


def _pixels(v: torch.Tensor) -> torch.Tensor:
    """The image of an attack that works on the pixels themselves."""
    return v
