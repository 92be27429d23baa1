"""Carlini & Wagner's attacks: L2 (2017b, "Towards evaluating the robustness of neural networks") and the
detector as an extra class (2017a, "Adversarial examples are not easily detected")."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from trainer.attacks._ops import (
    Norm, class_margin, direction, evaluating, per_sample, project, random_point, rounded, value_and_grad,
)
from trainer.attacks.search import ascend, best_of_restarts


def undetected_margin(z: torch.Tensor, d: torch.Tensor, y: torch.Tensor, t: float) -> torch.Tensor:
    """max_{j not in {y, K+1}} G_j - max(G_y, G_{K+1}) over C&W's augmented logits G [N, K+1]; [N].

    z: class logits [N, K]; d: detector logits [N]; t = logit(threshold). G = (z_1..z_K, G_{K+1}),
    G_{K+1} = max_j z_j + d - t: the detector's class wins exactly when p_adv >= threshold. C&W
    write G_{K+1} = (d + 1) max_j z_j for threshold 1/2, which flips sign when max_j z_j < 0; the
    additive form decides the same argmax for every z. The margin is > 0 exactly when the image is
    misclassified AND undetected; it equals min(max_{j!=y} z_j - z_y, t - d) once misclassified.
    """
    z_y = z.gather(1, y[:, None]).squeeze(1)
    z_other = z_y + class_margin(z, y)  # max_{j!=y} z_j
    return z_other - torch.maximum(z_y, z.amax(1) + d - t)


def cw_detector_logit(model: nn.Module, detector_logit: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                      y: torch.Tensor, eps: float, threshold: float, norm: Norm = "linf", steps: int = 200,
                      restarts: int = 5, alpha: float | None = None, confidence: float = 0.0) -> torch.Tensor:
    """PGD on C&W's combined loss min(undetected_margin(G(x'), y), confidence) in the eps-ball (l_inf or l_2).

    Carlini & Wagner 2017a, Sec. 4 (repo carlini/nn_breaking_detection): the classifier and the
    detector become one K+1-class network G, and an image fools both when G's argmax is neither y
    nor the detector's class (see `undetected_margin`). Their objective is optimised here within the
    budget, as the security evaluation needs, by PGD (Madry et al. 2018) from a random start in each
    of `restarts` runs; gradients are taken at the rounded frame (`rounded`), and each run keeps its
    best iterate. x [N, C, H, W] in 0..255, y [N]; `threshold`: the deployed p_adv threshold; `alpha`
    defaults to 2.5 eps / steps. Returns, per image, the first run that succeeds, else the best.
    """
    alpha = 2.5 * eps / steps if alpha is None else alpha
    t = math.log(threshold / (1 - threshold))

    def run(idx: torch.Tensor, restart: int):
        xs, ys = x[idx], y[idx]

        def margin(v: torch.Tensor) -> torch.Tensor:
            frame = rounded(v)
            return undetected_margin(model(frame), detector_logit(frame), ys, t)

        def step(v: torch.Tensor):
            m, g = value_and_grad(margin, v)
            return direction(g, norm) * per_sample(m < confidence, v), m  # the clamp's gradient

        x_run, obj = ascend(random_point(xs, eps, norm), step, alpha, steps, lambda v: project(v, xs, eps, norm))
        return x_run, obj > 0, obj

    with evaluating(model, detector_logit):
        return best_of_restarts(x, restarts, run)


def carlini_wagner_l2(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 100, binary_steps: int = 6,
                      c: float = 1e-2, lr: float = 1e-2, confidence: float = 0.0) -> torch.Tensor:
    """min_w ||x' - x||_2^2 + c max(z_y(x') - max_{j!=y} z_j(x'), -confidence), x' = 255 (tanh(w) + 1) / 2.

    Carlini & Wagner 2017b, the L2 attack: the tanh change of variables keeps x' in the pixel box,
    Adam (`lr`) takes `steps` steps from w = atanh(x) for each of `binary_steps` values of c, which
    a per-image binary search sets: from `c`, times 10 until the attack succeeds, then bisection.
    The distance is in [0, 1] pixel units, as in the paper, so c has the paper's scale; logits are
    those of the rounded frame (`rounded`). x [N, C, H, W] in 0..255, y [N]. Returns, per image,
    the smallest-l_2 x' whose rounded frame is misclassified, else x itself (no adversarial found).
    """
    const = torch.full((len(x),), c, device=x.device)
    lower, upper = torch.zeros_like(const), torch.full_like(const, torch.inf)
    best, best_l2 = x.clone(), torch.full_like(const, torch.inf)
    w_x = torch.atanh((x / 127.5 - 1).clamp(-1 + 1e-6, 1 - 1e-6))
    with evaluating(model):
        for _ in range(binary_steps):
            w = w_x.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=lr)
            found = torch.zeros_like(const, dtype=torch.bool)
            for _ in range(steps):
                with torch.enable_grad():
                    x_adv = 127.5 * (torch.tanh(w) + 1)
                    margin = class_margin(model(rounded(x_adv)), y)
                    l2 = ((x_adv - x) / 255).flatten(1).norm(dim=1)
                    loss = l2.square() + const * (-margin).clamp(min=-confidence)
                    w.grad, = torch.autograd.grad(loss.sum(), w)
                opt.step()
                better = (margin > 0) & (l2 < best_l2)
                best[better], best_l2[better] = x_adv[better].detach(), l2[better].detach()
                found |= margin > 0
            upper = torch.where(found, torch.minimum(upper, const), upper)
            lower = torch.where(found, lower, torch.maximum(lower, const))
            const = torch.where(upper < torch.inf, (lower + upper) / 2, const * 10)
    return best
