"""The images detectors learn and are tested on: dataset splits on the device, and their cached adversarial twins."""
from __future__ import annotations

from typing import Literal, Optional

import torch

from trainer.attacks import AttackSpec, cached_attack

SplitName = Literal["train", "val", "test"]


def split_images(ctx, split: SplitName, limit: Optional[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `limit` uint8 images and labels of `split`, on the run's device."""
    part = getattr(ctx.dataset, split)
    n = len(part) if limit is None else min(limit, len(part))
    return part.images[:n].to(ctx.device), part.labels[:n].to(ctx.device)


def twins(ctx, adversary: AttackSpec, split: SplitName, limit: Optional[int], batch_size: int) -> torch.Tensor:
    """Adversarial twins of `split_images(ctx, split, limit)` under the static `adversary`.

    Cached under run_dir/attacks/ (keyed by attack, classifier and image contents) so that every
    detector and figure that needs the same set computes it once, and an interrupted run keeps
    the sets it finished.
    """
    x, y = split_images(ctx, split, limit)
    return cached_attack(ctx.run_dir / "attacks", adversary, ctx.classifier, x, y, split=f"{split}{len(x)}",
                         batch_size=batch_size, progress=True)
