"""Scoring a detector: detectability (footnote 3), ROC, AUROC, TPR at a fixed FPR, threshold calibration.

Scores are detector logits (z_adv - z_clean); p_adv = sigmoid(logit). Thresholds handed to
operators are on p_adv, the quantity the exported graph outputs.
"""
from __future__ import annotations

from typing import Callable, Union

import numpy as np
import torch

from trainer.detect.data import shuffled_union

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
Scores = Union[torch.Tensor, np.ndarray]  # 1-D, on the CPU


@torch.no_grad()
def scores(score_fn: ScoreFn, images: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """Detector logits of `images` (uint8 or float 0..255, any device) as a float64 CPU tensor."""
    out = [score_fn(images[i : i + batch_size].to(device).float()).double().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


@torch.no_grad()
def detectability(score_fn: ScoreFn, clean: torch.Tensor, adversarial: torch.Tensor, batch_size: int,
                  device: torch.device, seed: int = 0) -> float:
    """Detector accuracy on the shuffled union of `clean` (label 0) and their `adversarial` twins (label 1).

    Exactly footnote 3: one joint test set twice the size of the originals, shuffled, each
    image classified on its own at p_adv > 0.5 (logit > 0).
    """
    correct = 0
    for x, is_adv in shuffled_union(clean, adversarial, batch_size, torch.Generator().manual_seed(seed)):
        pred = score_fn(x.to(device)) > 0
        correct += (pred == is_adv.to(device)).sum().item()
    return correct / max(2 * len(clean), 1)


def roc(clean_scores: Scores, adv_scores: Scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) for the rule `score > threshold`, from (0, 0) to (1, 1); ties share a point."""
    s = np.concatenate([np.asarray(clean_scores, np.float64), np.asarray(adv_scores, np.float64)])
    y = np.concatenate([np.zeros(len(clean_scores)), np.ones(len(adv_scores))])
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    # The last index of every run of equal scores: a threshold cannot separate tied images.
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(y)[last]
    fp = np.cumsum(1 - y)[last]
    tpr = np.r_[0.0, tp / max(len(adv_scores), 1)]
    fpr = np.r_[0.0, fp / max(len(clean_scores), 1)]
    thresholds = np.r_[np.inf, s[last]]
    # Each point above is reached with `score >= s`; the same counts hold for `score > next lower score`.
    return fpr, tpr, thresholds


def auroc(clean_scores: Scores, adv_scores: Scores) -> float:
    """Area under the ROC curve of adversarial (positive) vs clean scores: trapezoids, so ties count half,
    which makes it the rate at which an adversarial score beats a clean one."""
    fpr, tpr, _ = roc(clean_scores, adv_scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """Highest true-positive rate of any ROC point whose false-positive rate is at most `target`."""
    return float(tpr[fpr <= target + 1e-12].max())


def calibrate_threshold(clean_scores: torch.Tensor, fpr: float) -> float:
    """The p_adv threshold t such that at most a fraction `fpr` of `clean_scores` has p_adv >= t.

    With k = floor(fpr * n), t lies midway between the k-th largest clean p_adv and the next smaller
    distinct one: exactly k images reach it unless scores tie there, in which case fewer do (never
    more). Midway, not at a score, so the agent's rule (p_adv > t, on float32 p_adv) and the trainer's
    (p_adv >= t, float64) put every calibration image on the same side.
    """
    p = torch.sigmoid(clean_scores.double()).sort(descending=True).values
    k = min(int(np.floor(fpr * len(p) + 1e-9)), len(p) - 1)
    above = p[:k][p[:k] > p[k]]  # the k largest, less any that tie with the (k+1)-th
    mid = (p[k] + (above[-1] if len(above) else torch.tensor(1.0, dtype=p.dtype))) / 2
    return float(torch.maximum(mid, torch.nextafter(p[k], torch.tensor(2.0, dtype=p.dtype))))  # adjacent doubles: mid is one


def calibrated_threshold(part_scores: list[torch.Tensor], fpr: float, rule: str) -> float:
    """The p_adv threshold at `fpr` over the calibration set's parts (clean, then each corruption and severity):
    `pooled` over their union, `each` the highest of the parts' own thresholds, so every part stays at or below `fpr`."""
    if rule == "pooled":
        return calibrate_threshold(torch.cat(part_scores), fpr)
    return max(calibrate_threshold(s, fpr) for s in part_scores)


def alert_rate(logits: torch.Tensor, threshold: float) -> float:
    """Fraction of images flagged (p_adv >= `threshold`, as the audit scores): the FPR on clean images, the TPR on adversarial ones."""
    return float((torch.sigmoid(logits.double()) >= threshold).double().mean())


def summary(clean_scores: torch.Tensor, adv_scores: torch.Tensor, fprs: list[float]) -> dict:
    """AUROC, TPR at each FPR in `fprs`, and the ROC curve itself, as JSON-ready primitives."""
    fpr, tpr, _ = roc(clean_scores, adv_scores)
    return {
        "auroc": auroc(clean_scores, adv_scores),
        "tpr_at_fpr": {str(f): tpr_at_fpr(fpr, tpr, f) for f in fprs},
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
    }
