"""Helpers every attack shares: model mode, input gradients, step directions, projections.

Images are float tensors [N, C, H, W] in the paper's 0..255 units; budgets are in the same units.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Literal

import torch
import torch.nn.functional as F
from torch import nn

Norm = Literal["l2", "linf"]


def module_of(net: Callable) -> nn.Module | None:
    """The module behind `net`: itself, or the owner of a bound method such as `DetectedClassifier.detector_logit`."""
    if isinstance(net, nn.Module):
        return net
    owner = getattr(net, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


@contextmanager
def evaluating(*nets: Callable) -> Iterator[None]:
    """Runs the block with every module behind `nets` in eval mode, then restores each submodule's own mode.

    Attacks must see the deployed function (BN running statistics, no dropout) and must not
    update BN statistics. Modes are restored per submodule because a caller may train a
    detector on top of a frozen classifier, where the two halves are in different modes.
    """
    modules = [m for net in nets if (root := module_of(net)) is not None for m in root.modules()]
    modes = [(m, m.training) for m in modules]
    for m in modules:
        m.training = False
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def model_device(model: nn.Module) -> torch.device | None:
    """Where the model's weights live (None for a model without any)."""
    t = next(model.parameters(), None)
    if t is None:
        t = next(model.buffers(), None)
    return None if t is None else t.device


def per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshapes a per-sample vector [N] to broadcast against images [N, ...]."""
    return v.view(-1, *[1] * (like.dim() - 1))


def flat_norm(t: torch.Tensor, p: float) -> torch.Tensor:
    """Per-sample l_p norm of [N, ...] -> [N]."""
    return t.flatten(1).norm(p=p, dim=1)


def input_grad(loss: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Gradient of a per-sample loss [N] w.r.t. the images only.

    Summing over the batch gives each sample its own gradient since, in eval mode, samples do
    not interact. `autograd.grad` with `x` as the only input leaves parameters' `.grad` alone
    and skips their gradient computation; grad is enabled so attacks also run under no_grad.
    """
    return value_and_grad(loss, x)[1]


def value_and_grad(loss: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A per-sample loss [N] and its gradient w.r.t. the images, from one forward pass (see `input_grad`)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        value = loss(x)
        return value.detach(), torch.autograd.grad(value.sum(), x)[0]


def cross_entropy(model: Callable, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """J_cls(x, y) of Sec. 3.1 as a per-sample loss of the images."""
    return lambda x: F.cross_entropy(model(x), y, reduction="none")


def class_margin(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """max_{k!=y} z_k - z_y per sample, from logits [N, K]: > 0 exactly when the image is misclassified."""
    return z.scatter(1, y[:, None], -torch.inf).amax(1) - z.gather(1, y[:, None]).squeeze(1)


def direction(g: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Unit step of steepest ascent of a linear function with gradient g under `norm`.

    l_inf: sgn(g); l_2: g / ||g||_2 (zero where g is zero).
    """
    if norm == "linf":
        return g.sign()
    return g / per_sample(flat_norm(g, 2).clamp_min(1e-12), g)


def dual_norm(g: torch.Tensor, norm: Norm) -> torch.Tensor:
    """||g||_q with 1/p + 1/q = 1: the rate at which a unit `norm` step can change a linear function."""
    return flat_norm(g, 1 if norm == "linf" else 2)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    """Clip_eps (l_inf box) or Project_eps (l_2 ball) around x, then clip to valid pixels [0, 255].

    Clipping to [0, 255] only moves each pixel towards x (which is inside [0, 255]), so the
    result stays inside the eps-ball.
    """
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * per_sample(eps / flat_norm(delta, 2).clamp_min(eps), delta)
    return (x + delta).clamp(0, 255)


def random_point(x: torch.Tensor, eps: float | torch.Tensor, norm: Norm) -> torch.Tensor:
    """A uniform random point of the l_inf box around x, or one at a random direction and uniform radius
    of the l_2 ball (Madry et al. 2018's random start), clipped to valid pixels. `eps` may be a
    per-sample tensor shaped to broadcast against x (l_inf)."""
    if norm == "linf":
        delta = (torch.rand_like(x) * 2 - 1) * eps
    else:
        delta = direction(torch.randn_like(x), "l2") * per_sample(torch.rand(len(x), device=x.device), x) * eps
    return project(x + delta, x, eps, norm)


def rounded(x: torch.Tensor) -> torch.Tensor:
    """The uint8 frame a camera delivers for x (values of round(x)), with the identity's gradient.

    Straight-through rounding (BPDA, Athalye et al. 2018): attacks that judge success on the
    deployed, rounded frame differentiate there too, while their small steps still accumulate.
    """
    return x + (x.round() - x).detach()


def random_square(x: torch.Tensor, side: int) -> torch.Tensor:
    """A side x side window at a uniform random position in each image: bool mask [N, 1, H, W]."""
    n, _, h, w = x.shape
    top = torch.randint(0, h - side + 1, (n, 1, 1, 1), device=x.device)
    left = torch.randint(0, w - side + 1, (n, 1, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
    return (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
