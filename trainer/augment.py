"""Batched image augmentation on the device holding the data (no DataLoader round-trips)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from trainer.audit.corruptions import through_camera


def random_crop_flip(x: torch.Tensor, pad: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random `pad`-pixel translations (zero padding) and horizontal flips of a [N,C,H,W] batch."""
    n, c, h, w = x.shape
    dev = x.device
    if pad:
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=gen.device).to(dev)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=gen.device).to(dev)
        rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]
        x = padded[torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None], rows, cols]
    if flip:
        mask = (torch.rand(n, generator=gen, device=gen.device) < 0.5).to(dev)[:, None, None, None]
        x = torch.where(mask, x.flip(3), x)
    return x


def through_camera_share(x: torch.Tensor, share: float, gen: torch.Generator) -> torch.Tensor:
    """uint8 [N,C,H,W] batch `x` with a random `share` of its images through the camera model (`through_camera`,
    a NumPy model, so those images visit the CPU), on x's device."""
    pick = (torch.rand(len(x), generator=gen, device=gen.device) < share).to(x.device)
    if not share or not pick.any():
        return x
    seed = int(torch.randint(2**31, (1,), generator=gen, device=gen.device))
    out = x.clone()
    out[pick] = torch.from_numpy(through_camera(x[pick].cpu().numpy(), seed)).to(x.device)
    return out
