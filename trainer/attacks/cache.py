"""Adversarial sets cached in the run directory, so later stages do not recompute them."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from trainer import stamped
from trainer.attacks._ops import module_of
from trainer.attacks.registry import AttackSpec, attack_key, run_attack


def fingerprint(*parts: nn.Module | torch.Tensor | None) -> str:
    """12 hex digits identifying the weights of the modules and the contents of the tensors given."""
    h = hashlib.blake2b(digest_size=6)
    for part in parts:
        tensors = part.state_dict().items() if isinstance(part, nn.Module) else [("", part)] if part is not None else []
        for name, t in tensors:
            t = t.detach().cpu().contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def cached_attack(cache_dir: str | Path, spec: AttackSpec, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  detector_logit: Callable[[torch.Tensor], torch.Tensor] | None = None, split: str = "data",
                  batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """`run_attack`, stored as `cache_dir/<split>-<attack key>-<fingerprint>.pt` and reused when present.

    The fingerprint covers the classifier's and the detector's weights (when `detector_logit` is
    a module or a bound method of one) and the images and labels, so a retrained model or other
    data never reuses a stale set. Sets are float32 (DeepFool's changes are below one grey level).
    """
    fp = fingerprint(model, module_of(detector_logit) if detector_logit is not None else None, x, y)
    path = Path(cache_dir) / f"{split}-{attack_key(spec)}-{fp}.pt"  # the name is the stamp
    compute = lambda: run_attack(spec, model, x, y, detector_logit, batch_size, progress).cpu()  # noqa: E731
    return stamped.cached(path, None, compute, device=x.device).to(x.device)
