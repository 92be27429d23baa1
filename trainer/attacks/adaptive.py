"""An adaptive white-box attack on a deployed classifier + detector (beyond the paper).

The dynamic adversary of Sec. 3.3 follows a fixed mix of two signed gradients. An honest
security evaluation instead optimises the deployed decision itself: misclassify AND keep
p_adv below the operating threshold, with more iterations and random restarts. This is how
Carlini & Wagner (2017, "Adversarial examples are not easily detected") broke this detector.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from trainer.attacks._ops import Norm, class_margin, direction, evaluating, input_grad, per_sample, random_point
from trainer.attacks.iterative import iterate
from trainer.attacks.search import best_of_restarts


def adaptive(model: nn.Module, detector_logit: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
             y: torch.Tensor, eps: float | torch.Tensor, threshold: float, norm: Norm = "linf", steps: int = 100,
             restarts: int = 5, alpha: float | None = None, margin: float = 1.0,
             random_start: bool = False) -> torch.Tensor:
    """Projected gradient ascent on min(max_{k!=y} z_k - z_y, margin) + min(logit(threshold) - d, margin).

    z are class logits and d the detector's adversarial logit; p_adv = sigmoid(d) < threshold
    exactly when d < logit(threshold). Both terms are hinge margins in logit units, so neither
    dominates and each stops pulling once it holds with `margin` to spare (which also buys
    robustness to uint8 rounding). The first run starts at x (at a random point with
    `random_start`), the other `restarts - 1` at uniform random points of the eps-ball; a
    sample keeps the first run whose rounded frame succeeds (both conditions), else the run with
    the highest objective. `alpha` defaults to 2.5 eps / steps (Madry et al. 2018). `eps` may be
    a tensor [N] giving each l_inf sample its own budget. `detector_logit`: a module or a bound
    method of one, as for `dynamic`.
    """
    eps = per_sample(eps.to(x), x) if torch.is_tensor(eps) else eps
    alpha = 2.5 * eps / steps if alpha is None else alpha
    t = math.log(threshold / (1 - threshold))

    def objective(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return class_margin(model(xs), ys).clamp(max=margin) + (t - detector_logit(xs)).clamp(max=margin)

    def run(idx: torch.Tensor, restart: int):
        xs, ys = x[idx], y[idx]
        e, a = (v[idx] if torch.is_tensor(v) else v for v in (eps, alpha))
        start = xs if restart == 0 and not random_start else random_point(xs, e, norm)
        step = lambda xn: direction(input_grad(lambda v: objective(v, ys), xn), norm)  # noqa: E731
        x_run = iterate(xs, step, e, a, steps, norm, start=start)
        with torch.no_grad():
            frame = x_run.round()
            success = (model(frame).argmax(1) != ys) & (detector_logit(frame) < t)
            return x_run, success, objective(frame, ys)

    with evaluating(model, detector_logit):
        return best_of_restarts(x, restarts, run)
