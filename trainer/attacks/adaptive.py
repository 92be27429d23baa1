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

from trainer.attacks._ops import Norm, direction, evaluating, input_grad, per_sample, project
from trainer.attacks.iterative import iterate


def adaptive(model: nn.Module, detector_logit: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
             y: torch.Tensor, eps: float, threshold: float, norm: Norm = "linf", steps: int = 100,
             restarts: int = 5, alpha: float | None = None, margin: float = 1.0) -> torch.Tensor:
    """Projected gradient ascent on min(max_{k!=y} z_k - z_y, margin) + min(logit(threshold) - d, margin).

    z are class logits and d the detector's adversarial logit; p_adv = sigmoid(d) < threshold
    exactly when d < logit(threshold). Both terms are hinge margins in logit units, so neither
    dominates and each stops pulling once it holds with `margin` to spare (which also buys
    robustness to uint8 rounding). The first run starts at x, the other `restarts - 1` at uniform
    random points of the eps-ball; a sample keeps the first run that succeeds (both conditions),
    else the run with the highest objective, and succeeded samples leave the batch. `alpha`
    defaults to 2.5 eps / steps (Madry et al. 2018). `detector_logit`: a module or a bound
    method of one, as for `dynamic`.
    """
    alpha = 2.5 * eps / steps if alpha is None else alpha
    t = math.log(threshold / (1 - threshold))

    def objective(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        z = model(xs)
        z_y = z.gather(1, ys[:, None]).squeeze(1)
        z_other = z.scatter(1, ys[:, None], -torch.inf).amax(1)
        return (z_other - z_y).clamp(max=margin) + (t - detector_logit(xs)).clamp(max=margin)

    best, best_obj = x.clone(), torch.full((len(x),), -torch.inf, device=x.device)
    done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    with evaluating(model, detector_logit):
        for run in range(restarts):
            idx = (~done).nonzero().squeeze(1)
            if not len(idx):
                break
            xs, ys = x[idx], y[idx]
            start = xs if run == 0 else project(xs + _random_delta(xs, eps, norm), xs, eps, norm)
            step = lambda xn: direction(input_grad(lambda v: objective(v, ys), xn), norm)  # noqa: E731
            x_run = iterate(xs, step, eps, alpha, steps, norm, start=start)
            with torch.no_grad():
                obj = objective(x_run, ys)
                success = (model(x_run).argmax(1) != ys) & (detector_logit(x_run) < t)
            better = success | (obj > best_obj[idx])
            best[idx[better]] = x_run[better]
            best_obj[idx[better]] = obj[better]
            done[idx[success]] = True
    return best


def _random_delta(x: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    """A uniform random point of the l_inf box, or a random direction at a uniform radius of the l_2 ball."""
    if norm == "linf":
        return (torch.rand_like(x) * 2 - 1) * eps
    return direction(torch.randn_like(x), "l2") * per_sample(torch.rand(len(x), device=x.device) * eps, x)
