"""Scoring attacked images as the deployed agent would see them: rounded to uint8, alert at p_adv >= threshold."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from trainer.attacks._ops import Norm, flat_norm
from trainer.models.detector import DetectedClassifier


@dataclass
class Outcome:
    """Per image [N] (CPU): what the classifier and detector did with one attack's output."""

    misclassified: torch.Tensor  # bool
    flagged: torch.Tensor  # bool: p_adv >= threshold
    size: torch.Tensor  # float: perturbation size in the audit's norm, before rounding (what the attacker chose)

    def fooled(self, eps: float | None = None) -> torch.Tensor:
        """Misclassified and (for a budget `eps`) within it, per image."""
        # Relative slack for the float error of projections; rounding is the camera's doing, not the attacker's.
        return self.misclassified if eps is None else self.misclassified & (self.size <= eps * (1 + 1e-5))

    def undetected(self, eps: float | None = None) -> torch.Tensor:
        """Fooled (within `eps`) AND not flagged: the attacker's win, per image."""
        return self.fooled(eps) & ~self.flagged


def quantise(images: torch.Tensor) -> torch.Tensor:
    """What a camera delivers: the nearest uint8 frame."""
    return images.float().round().clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def outcome(model: DetectedClassifier, threshold: float, x: torch.Tensor, adv: torch.Tensor, y: torch.Tensor,
            norm: Norm, batch_size: int) -> Outcome:
    """Score `adv` (float or uint8, 0..255), the attacked versions of `x` with labels `y`, after rounding to uint8."""
    mis, flag = [], []
    for i in range(0, len(adv), batch_size):
        logits, d = model(quantise(adv[i : i + batch_size]).float())
        mis.append((logits.argmax(1) != y[i : i + batch_size]).cpu())
        flag.append((torch.sigmoid(d) >= threshold).cpu())
    size = flat_norm((adv.float() - x.float()).cpu(), float("inf") if norm == "linf" else 2)
    return Outcome(torch.cat(mis), torch.cat(flag), size)


def rate(mask: torch.Tensor, among: torch.Tensor | None = None) -> float | None:
    """Fraction of `among` (default: all) where `mask` holds; None when there is nothing to count."""
    if among is not None:
        mask = mask[among]
    return mask.double().mean().item() if len(mask) else None
