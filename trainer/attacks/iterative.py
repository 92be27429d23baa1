"""The basic iterative methods, l_inf (Kurakin et al. 2016) and the paper's l_2 analogue (Sec. 3.1)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from trainer.attacks._ops import Norm, cross_entropy, direction, evaluating, input_grad, project


def iterate(x: torch.Tensor, step: Callable[[torch.Tensor], torch.Tensor], eps: float, alpha: float,
            steps: int, norm: Norm, start: torch.Tensor | None = None) -> torch.Tensor:
    """x_0 = start (default x); x_{n+1} = Project_eps,x(x_n + alpha * step(x_n)).

    The loop shared by the iterative, dynamic and adaptive adversaries; `step` returns the
    direction of one step (e.g. sgn of a gradient).
    """
    x_adv = x if start is None else start
    for _ in range(steps):
        x_adv = project(x_adv + alpha * step(x_adv), x, eps, norm)
    return x_adv


def iterative_linf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                   alpha: float = 1.0, steps: int = 10) -> torch.Tensor:
    """x_{n+1} = Clip_eps,x(x_n + alpha * sgn(grad_x J_cls(x_n, y_true))); the paper's alpha=1, 10 steps."""
    with evaluating(model):
        return iterate(x, lambda xn: input_grad(cross_entropy(model, y), xn).sign(), eps, alpha, steps, "linf")


def iterative_l2(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                 alpha: float = 20.0, steps: int = 10) -> torch.Tensor:
    """x_{n+1} = Project_eps,x(x_n + alpha * g / ||g||_2), g = grad_x J_cls(x_n, y_true); alpha=20 (Sec. 4.1)."""
    with evaluating(model):
        return iterate(x, lambda xn: direction(input_grad(cross_entropy(model, y), xn), "l2"), eps, alpha, steps, "l2")
