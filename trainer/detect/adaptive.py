"""Adaptive adversary training of a detector (beyond the paper): min over the detector, max over the attacker.

The paper's dynamic training (Sec. 3.3) follows a fixed mix of two signed gradients. Here the
inner attacker is the adaptive white-box attack (trainer/attacks/adaptive.py), which optimises
the deployed decision itself (misclassify AND p_adv below threshold) against the detector as it
is at that step, from a random start, as Madry et al. (2018) do for classifiers and RADAR (2024)
for detectors. Every batch mixes clean images, the paper's adversary and adaptive adversaries.

Each adaptive adversary draws its own l_inf budget from `eps_range`, reaching well past the
target eps, so that p_adv is taught to rise, not fall, as a perturbation grows; an optional
curriculum (`eps_ramp_epochs`) widens the range over the first epochs.

BatchNorm: the detector's BN layers stay in eval mode for the whole training (their statistics
are those of the `init_from` detector it starts from, their affine weights still learn). The
attack and the training step therefore see one and the same function, which is also the one
that is deployed; with batch statistics in the step, the attack would optimise against a
different network than the one the gradient step updates.
"""
from __future__ import annotations

from typing import Iterator

import torch

from trainer.attacks import adaptive, dynamic
from trainer.config import DetectorSpec
from trainer.models.detector import DetectedClassifier
from trainer.models.fold import folded

def eps_bounds(spec: DetectorSpec, epoch: int) -> tuple[float, float]:
    """The range adaptive budgets are drawn from in `epoch` (0-based): `eps_range`, its upper end ramped
    linearly from the lower one over the first `eps_ramp_epochs` epochs."""
    lo, hi = spec.eps_range or (spec.adversary.eps, spec.adversary.eps)
    if spec.eps_ramp_epochs:
        hi = lo + (hi - lo) * min(1.0, (epoch + 1) / spec.eps_ramp_epochs)
    return lo, hi


def adaptive_adversaries(model: DetectedClassifier, spec: DetectorSpec, x: torch.Tensor, y: torch.Tensor,
                         eps: torch.Tensor) -> torch.Tensor:
    """The adaptive attack on `model` as it is now, with per-image budgets `eps` [N] and a random start,
    rounded to uint8 values as a camera would deliver them.

    It differentiates through a BN-folded copy: the detector is in eval mode throughout training,
    so the copy computes exactly the function being trained.
    """
    (net,) = folded(model)
    params = {k: v for k, v in spec.adversary.params().items() if k != "eps"}
    adv = adaptive(net.classifier, net.detector_logit, x, y, eps=eps, random_start=True, **params)
    return adv.round().clamp(0, 255)


def paper_adversaries(model: DetectedClassifier, spec: DetectorSpec, data, twins: torch.Tensor | None,
                      idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Twins of training images `idx` by the paper's adversary `spec.paper_adversary`: this epoch's
    precomputed (cached) `twins` of a static adversary (and `positives`), or the dynamic one with a
    sigma per image from `sigma_range` against the current detector."""
    if spec.paper_adversary.name != "dynamic":
        return twins[idx].float()
    lo, hi = spec.sigma_range
    x, y = data.train_x[idx].float(), data.train_y[idx]
    sigma = (lo + (hi - lo) * torch.rand(len(x), generator=gen, device=gen.device)).to(x.device)
    (net,) = folded(model)
    return dynamic(net.classifier, net.detector_logit, x, y, sigma=sigma, **spec.paper_adversary.params()).detach()


def adaptive_batches(model: DetectedClassifier, spec: DetectorSpec, data, negatives: torch.Tensor,
                     twins: torch.Tensor | None, gen: torch.Generator, epoch: int
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of `batch_size` negatives (target 0: the originals, or this epoch's corrupted copies of
    them, `negatives`) and an adversarial twin of each original (target 1).

    A twin is the paper's adversary's with probability `paper_share`, else the adaptive one's
    with its own budget from `eps_bounds`. Pairs rather than a random half replaced (as in
    dynamic mode): each costly attack comes with its own clean image, whose difference is what
    the detector has to learn.
    """
    n = len(data.train_x)
    lo, hi = eps_bounds(spec, epoch)
    order = torch.randperm(n, generator=gen, device=gen.device).to(data.train_x.device)
    for i in range(0, n, spec.batch_size):
        idx = order[i : i + spec.batch_size]
        x, y = data.train_x[idx].float(), data.train_y[idx]
        paper = (torch.rand(len(idx), generator=gen, device=gen.device) < spec.paper_share).to(x.device)
        if spec.paper_adversary is None:
            paper[:] = False
        eps = (lo + (hi - lo) * torch.rand(len(idx), generator=gen, device=gen.device)).to(x.device)
        adv = torch.empty_like(x)
        if paper.any():
            adv[paper] = paper_adversaries(model, spec, data, twins, idx[paper], gen)
        if (~paper).any():
            adv[~paper] = adaptive_adversaries(model, spec, x[~paper], y[~paper], eps[~paper])
        yield torch.cat([negatives[idx].float(), adv]), torch.cat([torch.zeros(len(x)), torch.ones(len(x))]).to(x.device)


def adaptive_validation_set(model: DetectedClassifier, spec: DetectorSpec, x: torch.Tensor, y: torch.Tensor,
                            seed: int) -> torch.Tensor:
    """Adaptive twins of every image in `x` at the target budget `adversary.eps` against the current
    detector, random starts from a fixed seed so that every epoch faces comparable ones."""
    eps = torch.full((len(x),), float(spec.adversary.eps), device=x.device)
    bs = spec.eval_batch_size
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)
        out = [adaptive_adversaries(model, spec, x[i : i + bs].float(), y[i : i + bs], eps[i : i + bs])
               for i in range(0, len(x), bs)]
    return torch.cat(out)
