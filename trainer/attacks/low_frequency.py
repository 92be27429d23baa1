"""PGD in a low-frequency subspace (Guo et al. 2018; Sharma, Ding and Brubaker 2019): smooth, like uneven light."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainer.attacks._ops import Norm, direction, flat_norm, per_sample
from trainer.attacks.pgd import restarted_pgd


def low_frequency_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: Norm = "linf",
                      grid: int = 4, steps: int = 100, restarts: int = 5, alpha: float | None = None) -> torch.Tensor:
    """x' = clip_[0, 255](x + Up(v)), v [N, C, grid, grid] ascending J_cls by PGD steps with ||Up(v)|| <= eps.

    Guo et al. 2018, "Low frequency adversarial perturbation", and Sharma, Ding and Brubaker 2019,
    "On the effectiveness of low frequency perturbations": PGD (Madry et al. 2018, see `pgd`) on the
    coarse array v instead of the pixels. Up is bilinear upsampling to the frame with aligned
    corners, so the grid's nodes are pixels of the frame and |Up(v)|_inf <= |v|_inf: the
    perturbation has no energy above the grid's frequency and looks like uneven light or a shadow.
    l_inf: v_{n+1} = clip_eps(v_n + alpha sgn(grad_v J_cls)); l_2: steps along grad_v J_cls scaled so
    that ||Up(step)||_2 = alpha, and v rescaled so that ||Up(v)||_2 <= eps. v starts uniform in the
    box (l_inf) or at a random direction and uniform radius of the ball (l_2). J_cls is evaluated
    at the rounded frame. `grid` is capped at the frame's side (where Up is the identity: `pgd`).
    x [N, C, H, W] in 0..255, y [N]; `alpha` defaults to 2.5 eps / steps. Returns [N, C, H, W] in
    0..255 within eps of x.
    """
    alpha = 2.5 * eps / steps if alpha is None else alpha
    n, c, h, w = x.shape
    side = min(grid, h, w)

    def up(v: torch.Tensor) -> torch.Tensor:
        return F.interpolate(v, size=(h, w), mode="bilinear", align_corners=True)

    def scaled(v: torch.Tensor, radius: torch.Tensor | float) -> torch.Tensor:
        """v rescaled so that ||Up(v)||_2 = radius."""
        return v * per_sample(radius / flat_norm(up(v), 2).clamp_min(1e-12), v)

    def unit(g: torch.Tensor) -> torch.Tensor:
        return direction(g, "linf") if norm == "linf" else scaled(g, 1.0)

    def fit(v: torch.Tensor) -> torch.Tensor:
        """v projected so that Up(v) lies in the eps-ball."""
        if norm == "linf":
            return v.clamp(-eps, eps)
        return v * per_sample(eps / flat_norm(up(v), 2).clamp_min(eps), v)

    def threat(xs: torch.Tensor):
        shape = (len(xs), c, side, side)
        if norm == "linf":
            start = (torch.rand(shape, device=x.device) * 2 - 1) * eps
        else:
            start = scaled(torch.randn(shape, device=x.device), torch.rand(len(xs), device=x.device) * eps)
        return start, fit, lambda v: (xs + up(v)).clamp(0, 255)

    return restarted_pgd(model, x, y, steps, restarts, alpha, unit, threat)
