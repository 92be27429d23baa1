"""Adversarial training of the classifier: each batch's training images, and the guard that picks the epoch kept.

The training attack runs on a BN-folded eval-mode copy of the model as it is at that batch
(trainer/models/fold.py): the function the attack differentiates is the deployed one, computed
with fewer operations, and its forward passes leave the BN statistics being trained alone.
"""
from __future__ import annotations

import torch
from torch import nn

from trainer.attacks import pgd
from trainer.attacks.confined import object_mask
from trainer.attacks.training import fgsm_random_start, n_fgsm
from trainer.config import AdversarialTraining
from trainer.models.fold import folded


def training_images(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: AdversarialTraining) -> torch.Tensor:
    """The batch `x` [N, C, H, W] (float 0..255) with all but its first `clean_share` images replaced by
    the training attack's outputs against `model` as it is now; with `confined`, the first `confined.share`
    of those by object-confined FGSM-RS at `confined.eps`."""
    keep = int(cfg.clean_share * len(x))
    (net,) = folded(model)
    xs, ys = x[keep:], y[keep:]
    if cfg.method == "pgd":
        adv = pgd(net, xs, ys, cfg.eps, steps=cfg.steps, restarts=1, alpha=cfg.alpha)
    elif cfg.method == "fgsm_rs":
        c = cfg.confined
        k = 0 if c is None else int(c.share * len(xs))  # the batch is shuffled: its first k are as random as any
        adv = fgsm_random_start(net, xs[k:], ys[k:], cfg.eps, cfg.alpha)
        if k:
            confined = fgsm_random_start(net, xs[:k], ys[:k], c.eps, mask=object_mask(xs[:k], c.background))
            adv = torch.cat([confined, adv])
    else:
        adv = n_fgsm(net, xs, ys, cfg.eps, cfg.alpha)
    return torch.cat([x[:keep], adv.detach()])


def pgd_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, steps: int,
                 batch_size: int = 500) -> float:
    """Accuracy of `model` on uint8-rounded PGD outputs (one random start, `steps` steps, l_inf `eps`)
    for uint8 or float images moved batch by batch to the model's device."""
    (net,) = folded(model)
    device = next(net.parameters()).device
    correct = 0
    for i in range(0, len(images), batch_size):
        x, y = images[i : i + batch_size].to(device).float(), labels[i : i + batch_size].to(device)
        adv = pgd(net, x, y, eps, steps=steps, restarts=1).round()
        with torch.no_grad():
            correct += (net(adv).argmax(1) == y).sum().item()
    return correct / max(len(images), 1)
