"""The images detectors learn and are tested on: dataset splits on the device, and their cached adversarial twins."""
from __future__ import annotations

from typing import Iterator, Literal, Optional

import torch

from trainer.attacks import AttackSpec, cached_attack

SplitName = Literal["train", "val", "test"]


def split_images(ctx, split: SplitName, limit: Optional[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `limit` uint8 images and labels of `split`, on the run's device."""
    part = getattr(ctx.dataset, split)
    n = len(part) if limit is None else min(limit, len(part))
    return part.images[:n].to(ctx.device), part.labels[:n].to(ctx.device)


def shuffled_union(clean: torch.Tensor, adversarial: torch.Tensor, batch_size: int, gen: torch.Generator
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of the shuffled union of `clean` images (label False) and their `adversarial` twins (True).

    The union is twice the size of the originals, each image seen once (footnote 3's test set,
    and static training's data set). Images are float 0..255 on `clean`'s device; the order is
    drawn from `gen` on its own device.
    """
    n = len(clean)
    order = torch.randperm(2 * n, generator=gen, device=gen.device)
    for i in range(0, 2 * n, batch_size):
        idx = order[i : i + batch_size].to(clean.device)
        is_adv = idx >= n
        j = idx % n
        yield torch.where(is_adv.view(-1, 1, 1, 1), adversarial[j].to(clean.device).float(), clean[j].float()), is_adv


def twins(ctx, adversary: AttackSpec, split: SplitName, limit: Optional[int], batch_size: int) -> torch.Tensor:
    """Adversarial twins of `split_images(ctx, split, limit)` under the static `adversary`.

    Cached under run_dir/attacks/ (keyed by attack, classifier and image contents) so that every
    detector and figure that needs the same set computes it once, and an interrupted run keeps
    the sets it finished.
    """
    x, y = split_images(ctx, split, limit)
    return cached_attack(ctx.files.attacks, adversary, ctx.classifier, x, y, split=f"{split}{len(x)}",
                         batch_size=batch_size, progress=True)
