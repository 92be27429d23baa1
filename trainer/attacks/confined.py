"""PGD confined to the object (Madry et al. 2018 with a mask): the background is left exactly as it was."""
from __future__ import annotations

import torch
from torch import nn

from trainer.attacks._ops import Norm, direction, project, random_point
from trainer.attacks.pgd import restarted_pgd


def confined_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: Norm = "linf",
                 steps: int = 100, restarts: int = 5, alpha: float | None = None,
                 background: float = 0.0) -> torch.Tensor:
    """x' = x + M delta, delta ascending J_cls by `pgd`'s steps within the eps-ball, M = 1 on the object only.

    Madry et al. 2018's PGD (l_inf or l_2, see `pgd`) whose perturbation is multiplied by an object
    mask: M [N, 1, H, W] is 1 where any channel of x is brighter than `background`, 0 elsewhere, and
    x' equals x bitwise where M = 0. On Fashion-MNIST the object is the nonzero pixels (background
    0); with other data pass a level above the sensor's black level and noise (e.g. the camera's
    black level + 3 read-noise sigmas), and for real scenes a segmentation mask would take M's place.
    An image without object pixels (empty mask) is returned unchanged. The random start is `pgd`'s,
    masked. x [N, C, H, W] in 0..255, y [N]; `alpha` defaults to 2.5 eps / steps. Returns
    [N, C, H, W] in 0..255, within eps of x on the object.
    """
    alpha = 2.5 * eps / steps if alpha is None else alpha

    def threat(xs: torch.Tensor):
        on_object = object_mask(xs, background)

        def confine(v: torch.Tensor) -> torch.Tensor:
            return torch.where(on_object, v, xs)

        return confine(random_point(xs, eps, norm)), lambda v: project(confine(v), xs, eps, norm), confine

    return restarted_pgd(model, x, y, steps, restarts, alpha, lambda g: direction(g, norm), threat)


def object_mask(x: torch.Tensor, background: float) -> torch.Tensor:
    """M [N, 1, H, W] bool: the object, where any channel of x [N, C, H, W] is brighter than `background`."""
    return (x > background).any(1, keepdim=True)
