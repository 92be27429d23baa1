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

import numpy as np
import torch
import torch.nn.functional as F
from trainer.progress import progress_bar

from trainer.attacks import AttackSpec, dynamic
from trainer.audit.corruptions import corrupt_randomly
from trainer.config import CalibrationConfig, DetectorSpec
from trainer.detect.adaptive import adaptive_batches, adaptive_validation_set
from trainer.detect.data import shuffled_union
from trainer.detect.scenes import scenes
from trainer.detect.evaluate import alert_rate, calibrated_threshold, detectability, scores
from trainer.loop import state_copy, train_epochs
from trainer.models.detector import DetectedClassifier

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]  # (float images 0..255, float targets 0/1)


@dataclass
class TrainingData:
    """Images a detector learns from, on the training device.

    `train_adv` holds the precomputed twins of every training image by each static adversary
    (`adversary` and `positives`, or adaptive mode's `paper_adversary` and `positives`), `val_adv`
    one twin per validation image; None where twins are made on the fly. `val_negatives` are the
    validation images model selection scores as negatives: some corrupted when `negatives` says so.
    """

    train_x: torch.Tensor  # uint8 [N, C, H, W]
    train_y: torch.Tensor  # int64 [N], true classes (the adversary needs them)
    val_x: torch.Tensor
    val_y: torch.Tensor
    train_adv: Optional[torch.Tensor] = None  # [K, N, C, H, W], K static adversaries (K = 1 with `twins: one`)
    val_adv: Optional[torch.Tensor] = None  # [N, C, H, W]
    val_adversary: Optional[torch.Tensor] = None  # int64 [N]: which static adversary made each of val_adv
    val_negatives: Optional[torch.Tensor] = None  # uint8 [N, C, H, W]; None = val_x
    calibration: Optional[list[torch.Tensor]] = None  # uint8 [M, C, H, W] each: the calibration set's parts, for selection by `tpr`


def numpy_rng(gen: torch.Generator) -> np.random.Generator:
    """A NumPy generator drawn from `gen`, for the OpenCV corruptions."""
    return np.random.default_rng(int(torch.randint(2**62, (1,), generator=gen, device=gen.device)))


def benign_negatives(x: torch.Tensor, spec: DetectorSpec, rng: np.random.Generator) -> torch.Tensor:
    """uint8 images `x` with a share `spec.negative_share` replaced by copies under a random corruption of
    `spec.negatives` at a random severity, and a further share `spec.scene_share` by scenes made from them:
    what a camera shows without any attacker."""
    if not spec.benign:
        return x
    draw = rng.random(len(x))
    corrupted = spec.negative_share if spec.negatives else 0.0
    out = x.clone()
    if spec.negatives:
        pick = np.flatnonzero(draw < corrupted)
        weights = [spec.negative_weights.get(name, 1.0) for name in spec.negatives] if spec.negative_weights else None
        out[pick] = torch.from_numpy(corrupt_randomly(x[pick].cpu().numpy(), spec.negatives, rng, spec.negative_severities,
                                                      weights)).to(x.device)
    if spec.scene_share:
        pick = np.flatnonzero((draw >= corrupted) & (draw < corrupted + spec.scene_share))
        out[pick] = torch.from_numpy(scenes(x[pick].cpu().numpy(), rng)).to(x.device)
    return out


def pick_twins(pool: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One twin per image [N, C, H, W] from a pool [K, N, C, H, W], the adversary drawn per image."""
    if len(pool) == 1:
        return pool[0]
    k = torch.randint(len(pool), (pool.shape[1],), generator=gen, device=gen.device).to(pool.device)
    return pool[k, torch.arange(pool.shape[1], device=pool.device)]


def static_batches(negatives: torch.Tensor, twins: torch.Tensor, batch_size: int, gen: torch.Generator) -> Batches:
    """Mini-batches of the balanced binary data set: every negative (0) and its adversarial twin (1), shuffled."""
    return ((x, is_adv.float()) for x, is_adv in shuffled_union(negatives, twins, batch_size, gen))


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
    negatives = data.val_x if data.val_negatives is None else data.val_negatives
    return detectability(model.detector_logit, negatives, adv, spec.eval_batch_size, data.val_x.device, seed)


def validation_tpr(model: DetectedClassifier, spec: DetectorSpec, data: TrainingData, calibration: CalibrationConfig) -> dict:
    """What the deployed alarm does on validation images: the threshold calibrated as `calibration` says on `data.calibration`,
    and the share of each static adversary's twins flagged at it (`val_tpr_<k>`, k indexing `adversary`, then
    `positives`); `val_tpr` is their mean."""
    fn, bs, device = model.detector_logit, spec.eval_batch_size, data.val_x.device
    threshold = calibrated_threshold([scores(fn, part, bs, device) for part in data.calibration], calibration.fpr, calibration.rule)
    adv = scores(fn, data.val_adv, bs, device)
    kinds = data.val_adversary.unique().tolist()
    tpr = {f"val_tpr_{k}": alert_rate(adv[(data.val_adversary == k).cpu()], threshold) for k in kinds}
    return {"val_tpr": sum(tpr.values()) / len(tpr), **tpr}


def train_detector(model: DetectedClassifier, spec: DetectorSpec, data: TrainingData, out_dir: Path, seed: int,
                   calibration: CalibrationConfig = CalibrationConfig(), log: Callable[[str], None] = print) -> dict:
    """Train `model.detector` as `spec` says; returns the best state_dict by the validation number `spec.select`
    (with `tpr`, at the threshold calibrated as `calibration` says on `data.calibration`).

    Runs on the shared epoch loop (trainer/loop.py): `out_dir/train_state.pt` after every epoch,
    so an interrupted run resumes at the next one, and a line per epoch in `out_dir/metrics.jsonl`.
    A detector hardened from another (`init_from`) competes with its starting point.
    """
    detector = model.detector
    device = data.train_x.device
    opt = torch.optim.Adam(detector.parameters(), lr=spec.lr, betas=tuple(spec.betas))
    states = {"optimizer": opt}
    per_epoch = -(-len(data.train_x) * (2 if spec.mode == "static" else 1) // spec.batch_size)
    if spec.lr_schedule == "onecycle":
        states["scheduler"] = torch.optim.lr_scheduler.OneCycleLR(opt, spec.lr, total_steps=spec.epochs * per_epoch)
    model.classifier.eval()
    select = "val_tpr" if spec.select == "tpr" else "val_detectability"

    def validate_all() -> dict:
        detector.eval()
        if spec.select == "tpr":
            return validation_tpr(model, spec, data, calibration)
        return {"val_detectability": validation_detectability(model, spec, data, seed)}

    def run_epoch(epoch: int, gen: torch.Generator) -> dict:
        # Drawn only when used: detectors without negatives see the batches they always saw.
        negatives = benign_negatives(data.train_x, spec, numpy_rng(gen)) if spec.benign else data.train_x
        twins = None if data.train_adv is None else pick_twins(data.train_adv, gen)
        batches = {"static": lambda: static_batches(negatives, twins, spec.batch_size, gen),
                   "dynamic": lambda: dynamic_batches(model, spec, data, gen),
                   "adaptive": lambda: adaptive_batches(model, spec, data, negatives, twins, gen, epoch)}[spec.mode]()
        # Adaptive training keeps BN in eval mode, so its attack and its step see the same network (see adaptive.py).
        detector.train(spec.mode != "adaptive")
        loss_sum, correct, seen = 0.0, 0, 0
        for x, target in progress_bar(batches, total=per_epoch, desc=f"{spec.name} epoch {epoch + 1}/{spec.epochs}", leave=False):
            logit = model.detector_logit(x)
            loss = F.binary_cross_entropy_with_logits(logit, target)
            # Zeroed here, not before the batch: a dynamic attack may have left gradients on the detector.
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if "scheduler" in states:
                states["scheduler"].step()
            loss_sum += loss.item() * len(x)
            correct += ((logit.detach() > 0) == (target > 0.5)).sum().item()
            seen += len(x)
        return {"train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1), **validate_all()}

    best = train_epochs(detector, states, run_epoch, epochs=spec.epochs, seed=seed, device=device,
                        select=select, state_path=out_dir / "train_state.pt",
                        metrics_path=out_dir / "metrics.jsonl", label=f"detector {spec.name}",
                        baseline=(lambda: validate_all()[select]) if spec.init_from is not None else None, log=log)
    detector.eval()
    return {"state_dict": state_copy(detector), select: best}
