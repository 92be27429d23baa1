"""Square Attack, l_inf (Andriushchenko et al. 2020): gradient-free random search, on the classifier or on both."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from trainer.attacks._ops import class_margin, evaluating, random_square
from trainer.attacks.cw import undetected_margin

# Iterations (of 10,000) after which the paper halves the square's share of the image.
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def square(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, queries: int = 1000,
           p_init: float = 0.05) -> torch.Tensor:
    """Random search for max_{x' in eps-box} max_{k!=y} z_k(x') - z_y(x'), using logits only.

    Andriushchenko et al. 2020, "Square Attack", l_inf: start at vertical stripes x +- eps, then
    `queries - 1` times redraw one random square window to +-eps per channel and keep the change if
    the margin of the rounded frame grows. The window covers a share p of the image, p_init
    halved on the paper's schedule. Images leave once misclassified. x [N, C, H, W] in 0..255,
    y [N]; returns [N, C, H, W] in 0..255 within eps of x.
    """
    with evaluating(model):
        return _search(lambda frames, ys: class_margin(model(frames), ys), x, y, eps, queries, p_init)


def square_adaptive(model: nn.Module, detector_logit: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                    y: torch.Tensor, eps: float, threshold: float, queries: int = 1000,
                    p_init: float = 0.05) -> torch.Tensor:
    """`square` maximising C&W's detector-as-class margin (`undetected_margin`) at the deployed threshold.

    A gradient-free check on the gradient-based adaptive attacks: it succeeds when the rounded
    frame is misclassified AND p_adv = sigmoid(detector_logit) < `threshold`. Arguments, shapes and
    result as for `square`.
    """
    t = math.log(threshold / (1 - threshold))
    with evaluating(model, detector_logit):
        return _search(lambda frames, ys: undetected_margin(model(frames), detector_logit(frames), ys, t),
                       x, y, eps, queries, p_init)


@torch.no_grad()
def _search(objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
            eps: float, queries: int, p_init: float) -> torch.Tensor:
    """Square Attack's random search on objective(frames, y) [n] (> 0: success), one query per iteration."""
    n, c, h, w = x.shape
    stripes = eps * (torch.randint(0, 2, (n, c, 1, w), device=x.device) * 2 - 1)
    best = (x + stripes).clamp(0, 255)
    best_obj = objective(best.round(), y)
    for i in range(1, queries):
        active = (best_obj <= 0).nonzero().squeeze(1)
        if not len(active):
            break
        xs = x[active]
        p = p_init / 2 ** sum(int(i / queries * 10_000) > b for b in _HALVINGS)
        window = random_square(xs, min(max(round(math.sqrt(p * h * w)), 1), h - 1))
        signs = eps * (torch.randint(0, 2, (len(active), c, 1, 1), device=x.device) * 2 - 1)
        candidate = torch.where(window, (xs + signs).clamp(0, 255), best[active])
        obj = objective(candidate.round(), y[active])
        better = obj > best_obj[active]
        best[active[better]], best_obj[active[better]] = candidate[better], obj[better]
    return best
