"""The adversarial patch (Brown et al. 2017): a square sticker, unbounded inside, on a fraction of the frame."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from trainer.attacks._ops import class_margin, evaluating, random_square, rounded, value_and_grad
from trainer.attacks.cw import undetected_margin
from trainer.attacks.search import ascend, best_of_restarts


def patch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, area: float = 0.07, steps: int = 100,
          restarts: int = 5, alpha: float | None = None) -> torch.Tensor:
    """x' = (1 - M) x + M P, P ascending the class margin max_{k!=y} z_k(x') - z_y(x') by sign steps.

    Brown et al. 2017, "Adversarial patch", per image: M is a square covering `area` of the frame
    at a uniform random position, drawn anew in each of `restarts` runs (a random search over
    positions); P starts uniform in 0..255 and takes `steps` steps of size `alpha` (default
    2.5 * 255 / steps), clipped to 0..255 only: no other bound inside the square, none outside
    it since x is kept there. x [N, C, H, W] in 0..255, y [N]. Returns, per image, the first run
    whose rounded frame is misclassified, else the one of largest margin.
    """
    return _attack(model, None, lambda z, d, ys: class_margin(z, ys), x, y, area, steps, restarts, alpha)


def patch_adaptive(model: nn.Module, detector_logit: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                   y: torch.Tensor, threshold: float, area: float = 0.07, steps: int = 100, restarts: int = 5,
                   alpha: float | None = None) -> torch.Tensor:
    """`patch` ascending C&W's detector-as-class margin (`undetected_margin`) at the deployed threshold instead.

    The sticker must make the classifier err AND keep p_adv = sigmoid(detector_logit) below
    `threshold`; arguments, shapes and result as for `patch`, success meaning both.
    """
    t = math.log(threshold / (1 - threshold))
    return _attack(model, detector_logit, lambda z, d, ys: undetected_margin(z, d, ys, t), x, y, area, steps,
                   restarts, alpha)


def _attack(model: nn.Module, detector_logit: Callable[[torch.Tensor], torch.Tensor] | None, objective: Callable,
            x: torch.Tensor, y: torch.Tensor, area: float, steps: int, restarts: int, alpha: float | None
            ) -> torch.Tensor:
    """Sign ascent of objective(z, d, y) (> 0: success) on the rounded frame, within a random square per run."""
    alpha = 2.5 * 255 / steps if alpha is None else alpha
    side = min(max(round(math.sqrt(area * x.shape[2] * x.shape[3])), 1), *x.shape[2:])

    def run(idx: torch.Tensor, restart: int):
        xs, ys = x[idx], y[idx]
        inside = random_square(xs, side)

        def score(v: torch.Tensor) -> torch.Tensor:
            frame = rounded(v)
            return objective(model(frame), None if detector_logit is None else detector_logit(frame), ys)

        def step(v: torch.Tensor):
            obj, g = value_and_grad(score, v)
            return g.sign(), obj

        start = torch.where(inside, torch.rand_like(xs) * 255, xs)
        x_run, obj = ascend(start, step, alpha, steps, lambda v: torch.where(inside, v.clamp(0, 255), xs))
        return x_run, obj > 0, obj

    with evaluating(model, detector_logit):  # a missing detector (None) is skipped
        return best_of_restarts(x, restarts, run)
