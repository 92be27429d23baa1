"""Detector training loops: static (Sec. 3.2), dynamic adversary training (Sec. 3.3) and adaptive
adversary training (beyond the paper, trainer/detect/adaptive.py).

All run on the epoch loop the classifier uses (trainer/loop.py): Adam on the detector only, the classifier frozen in
eval mode (its BN statistics never move), model selection on validation detectability,
and a resumable checkpoint after every epoch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from trainer.progress import progress_bar

from trainer.attacks import AttackSpec, dynamic
from trainer.config import DetectorSpec
from trainer.detect.adaptive import adaptive_batches, adaptive_validation_set
from trainer.detect.evaluate import detectability
from trainer.loop import state_copy, train_epochs
from trainer.models.detector import DetectedClassifier

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]  # (float images 0..255, float targets 0/1)


@dataclass
class TrainingData:
    """Images a detector learns from, on the training device.

    `train_adv`/`val_adv` are the precomputed adversarial twins for static training and
    None for dynamic training, which makes them on the fly.
    """

    train_x: torch.Tensor  # uint8 [N, C, H, W]
    train_y: torch.Tensor  # int64 [N], true classes (the adversary needs them)
    val_x: torch.Tensor
    val_y: torch.Tensor
    train_adv: Optional[torch.Tensor] = None
    val_adv: Optional[torch.Tensor] = None


def static_batches(data: TrainingData, batch_size: int, gen: torch.Generator) -> Batches:
    """Mini-batches of the balanced binary data set: every original (0) and its adversarial twin (1), shuffled."""
    n = len(data.train_x)
    order = torch.randperm(2 * n, generator=gen, device=gen.device)
    for i in range(0, 2 * n, batch_size):
        idx = order[i : i + batch_size].to(data.train_x.device)
        is_adv = idx >= n
        j = idx % n
        x = torch.where(is_adv.view(-1, 1, 1, 1), data.train_adv[j].float(), data.train_x[j].float())
        yield x, is_adv.float()


def dynamic_attack(model: DetectedClassifier, adversary: AttackSpec, x: torch.Tensor, y: torch.Tensor,
                   sigma: torch.Tensor) -> torch.Tensor:
    """The dynamic adversary of Sec. 3.3 with per-image weights `sigma` [N] against `model`'s current detector.

    The attack runs the detector in eval mode (and restores its mode), so its forward passes
    do not move the BN statistics being trained.
    """
    return dynamic(model.classifier, model.detector_logit, x, y, **{**adversary.params(), "sigma": sigma}).detach()


def draw_sigmas(spec: DetectorSpec, n: int, gen: torch.Generator) -> torch.Tensor:
    """One sigma per image, uniform on `sigma_range`.

    Per image rather than per mini-batch: every batch then mixes adversaries that mostly fool
    the classifier with ones that mostly hide from the detector. With one sigma per batch the
    tiny-task detector needed twice the epochs to become robust (0.55 vs 0.70 mean detectability
    at sigma 0.3-0.7 after 12 epochs; both near 0.98 after 40).
    """
    lo, hi = spec.sigma_range
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=gen.device)


def dynamic_batches(model: DetectedClassifier, spec: DetectorSpec, data: TrainingData, gen: torch.Generator) -> Batches:
    """Mini-batches of originals where each image is replaced, with probability `modify_prob`, by the
    dynamic adversary's output for its own sigma (`draw_sigmas`)."""
    n = len(data.train_x)
    order = torch.randperm(n, generator=gen, device=gen.device).to(data.train_x.device)
    for i in range(0, n, spec.batch_size):
        idx = order[i : i + spec.batch_size]
        x, y = data.train_x[idx].float(), data.train_y[idx]
        modify = (torch.rand(len(idx), generator=gen, device=gen.device) < spec.modify_prob).to(x.device)
        sigma = draw_sigmas(spec, len(idx), gen).to(x.device)
        if modify.any():
            x = x.clone()
            x[modify] = dynamic_attack(model, spec.adversary, x[modify], y[modify], sigma[modify])
        yield x, modify.float()


def dynamic_validation_set(model: DetectedClassifier, spec: DetectorSpec, x: torch.Tensor, y: torch.Tensor,
                           seed: int) -> torch.Tensor:
    """Adversarial twins of every image in `x` from the dynamic adversary against the current detector,
    with sigmas from a fixed seed, so every epoch faces the same ones."""
    sigma = draw_sigmas(spec, len(x), torch.Generator().manual_seed(seed)).to(x.device)
    out = []
    for i in range(0, len(x), spec.batch_size):
        j = slice(i, i + spec.batch_size)
        out.append(dynamic_attack(model, spec.adversary, x[j].float(), y[j], sigma[j]))
    return torch.cat(out)


def attacked_set(model: DetectedClassifier, spec: DetectorSpec, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
    """Twins of `x` from the on-the-fly adversary of a dynamic or adaptive `spec` against the current detector."""
    made = dynamic_validation_set if spec.mode == "dynamic" else adaptive_validation_set
    return made(model, spec, x, y, seed)


def validation_detectability(model: DetectedClassifier, spec: DetectorSpec, data: TrainingData, seed: int) -> float:
    """Detectability on the validation images: against the precomputed twins (static) or a fresh attack."""
    adv = data.val_adv if spec.mode == "static" else attacked_set(model, spec, data.val_x, data.val_y, seed)
    device = data.val_x.device
    return detectability(model.detector_logit, data.val_x, adv, spec.eval_batch_size, device, seed)


def train_detector(model: DetectedClassifier, spec: DetectorSpec, data: TrainingData, out_dir: Path, seed: int,
                   log: Callable[[str], None] = print) -> dict:
    """Train `model.detector` as `spec` says; returns the best state_dict by validation detectability.

    Runs on the shared epoch loop (trainer/loop.py): `out_dir/train_state.pt` after every epoch,
    so an interrupted run resumes at the next one, and a line per epoch in `out_dir/metrics.jsonl`.
    A detector hardened from another (`init_from`) competes with its starting point.
    """
    detector = model.detector
    device = data.train_x.device
    opt = torch.optim.Adam(detector.parameters(), lr=spec.lr, betas=tuple(spec.betas))
    model.classifier.eval()

    def validate() -> float:
        detector.eval()
        return validation_detectability(model, spec, data, seed)

    def run_epoch(epoch: int, gen: torch.Generator) -> dict:
        batches = {"static": lambda: static_batches(data, spec.batch_size, gen),
                   "dynamic": lambda: dynamic_batches(model, spec, data, gen),
                   "adaptive": lambda: adaptive_batches(model, spec, data, gen, epoch)}[spec.mode]()
        total = -(-len(data.train_x) * (2 if spec.mode == "static" else 1) // spec.batch_size)
        # Adaptive training keeps BN in eval mode, so its attack and its step see the same network (see adaptive.py).
        detector.train(spec.mode != "adaptive")
        loss_sum, correct, seen = 0.0, 0, 0
        for x, target in progress_bar(batches, total=total, desc=f"{spec.name} epoch {epoch + 1}/{spec.epochs}", leave=False):
            logit = model.detector_logit(x)
            loss = F.binary_cross_entropy_with_logits(logit, target)
            # Zeroed here, not before the batch: a dynamic attack may have left gradients on the detector.
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(x)
            correct += ((logit.detach() > 0) == (target > 0.5)).sum().item()
            seen += len(x)
        return {"train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1), "val_detectability": validate()}

    best = train_epochs(detector, {"optimizer": opt}, run_epoch, epochs=spec.epochs, seed=seed, device=device,
                        select="val_detectability", state_path=out_dir / "train_state.pt",
                        metrics_path=out_dir / "metrics.jsonl", label=f"detector {spec.name}",
                        baseline=validate if spec.init_from is not None else None, log=log)
    detector.eval()
    return {"state_dict": state_copy(detector), "val_detectability": best}
