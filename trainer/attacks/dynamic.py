"""The dynamic adversary of Sec. 3.3: fools the classifier and its detector at once."""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainer.attacks._ops import cross_entropy, evaluating, input_grad, per_sample
from trainer.attacks.iterative import iterate


def dynamic(model: nn.Module, detector_logit: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
            y: torch.Tensor, eps: float, sigma: float | torch.Tensor | None = None, alpha: float = 0.25,
            steps: int | None = None) -> torch.Tensor:
    """x_{n+1} = Clip_eps,x(x_n + alpha * ((1-sigma) sgn(grad J_cls(x_n, y)) + sigma sgn(grad J_det(x_n, 1)))).

    `detector_logit` maps images to the adversarial logit (p_adv = sigmoid); pass a module or a
    bound method of one (e.g. `DetectedClassifier.detector_logit`) so it runs in eval mode.
    `steps` defaults to ceil(eps/alpha) + 4: enough to reach the edge of the eps-box where the
    two signs agree, plus Kurakin et al.'s four extra steps; pixels where they disagree move by
    only |1 - 2 sigma| alpha per step. With sigma = 0 this is exactly `iterative_linf`. `sigma`
    may also be a tensor [N] giving each sample its own weight; None draws each sample's from
    U[0, 1], the adversary that dynamic training faces (Sec. 3.3).
    """
    steps = math.ceil(eps / alpha) + 4 if steps is None else steps
    if sigma is None:
        sigma = torch.rand(len(x), device=x.device)
    classifier_only = not torch.is_tensor(sigma) and sigma == 0
    if torch.is_tensor(sigma):
        sigma = per_sample(sigma.to(x), x)
    # J_det(x, 1) = -log p_adv = softplus(-logit) is the detector's cross-entropy for the label
    # "adversarial". Ascending it, like J_cls, lowers p_adv: the perturbation hides from the detector.
    j_det = lambda xn: F.softplus(-detector_logit(xn))  # noqa: E731

    def step(xn: torch.Tensor) -> torch.Tensor:
        s = (1 - sigma) * input_grad(cross_entropy(model, y), xn).sign()
        return s if classifier_only else s + sigma * input_grad(j_det, xn).sign()

    with evaluating(model, detector_logit):
        return iterate(x, step, eps, alpha, steps, "linf")
