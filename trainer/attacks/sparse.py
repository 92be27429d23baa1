"""PGD_0 (Croce and Hein 2019): at most k pixels changed, each by any amount within [0, 255]."""
from __future__ import annotations

import torch
from torch import nn

from trainer.attacks._ops import flat_norm, per_sample
from trainer.attacks.pgd import restarted_pgd

# The reference implementation's step, 120000/255 in 0..1 units, along the l_1-normalised gradient.
_ALPHA = 120_000.0


def sparse_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, pixels: int = 10, steps: int = 100,
               restarts: int = 5, alpha: float | None = None) -> torch.Tensor:
    """x_{n+1} = P_k(x_n + alpha g / ||g||_1), g = grad_x J_cls(x_n, y), P_k onto k changed pixels in the box.

    Croce and Hein 2019, "Sparse and imperceivable adversarial attacks", PGD_0 (l_0 distance, k =
    `pixels`; a pixel is all channels at one location): P_k is the Euclidean projection onto {x'
    differs from x at most at k locations, 0 <= x' <= 255} (`l0_box`). J_cls is the cross-entropy,
    evaluated at the rounded frame. Each of `restarts` runs starts at a random sparse perturbation
    (P_k of a uniform random image) and keeps its iterate of largest class margin; per image, the
    first run whose rounded frame is misclassified, else the best. x [N, C, H, W] in 0..255, y [N];
    `alpha` defaults to the paper's 120000 (0..255 units). Returns [N, C, H, W] in 0..255.
    """
    alpha = _ALPHA if alpha is None else alpha

    def threat(xs: torch.Tensor):
        def sparse(v: torch.Tensor) -> torch.Tensor:
            return l0_box(v, xs, pixels)

        return sparse(torch.rand_like(xs) * 255), sparse, None

    return restarted_pgd(model, x, y, steps, restarts, alpha,
                         lambda g: g / per_sample(flat_norm(g, 1).clamp_min(1e-12), g), threat)


def l0_box(v: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    """The image nearest v (l_2) that differs from x at most at k locations and lies in [0, 255].

    Croce and Hein 2019's projection: each location's change clipped to the box, kept at the k
    locations where keeping it brings the image closest to v, i.e. of largest
    sum_c (v - x)^2 - (v - clip(v))^2; x everywhere else (bitwise). v, x [N, C, H, W] -> [N, C, H, W].
    """
    clipped = v.clamp(0, 255)
    gain = ((v - x) ** 2 - (v - clipped) ** 2).sum(1).flatten(1)  # [N, H W]
    keep = torch.zeros_like(gain, dtype=torch.bool)
    keep.scatter_(1, gain.topk(min(k, gain.shape[1]), 1).indices, True)
    return torch.where(keep.view(len(x), 1, *x.shape[2:]), clipped, x)
