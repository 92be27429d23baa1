"""Familiarity: does a frame look like the images the classifier learned? Scored at the detector's tap.

p_adv means nothing on inputs unlike the training data (real road footage through a
Fashion-MNIST model scores far above the alert threshold). Following Lee et al., "A Simple
Unified Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks"
(NeurIPS 2018), the activation at AD(point), averaged over space, is modelled by one
Gaussian per class with a shared covariance, fitted on clean training images. An image's
unfamiliarity is its squared Mahalanobis distance to the nearest class mean; the threshold
is calibrated on clean validation images so that a fraction `FPR` of them lies above it.
The module runs in the exported graph on the same tap the detector reads.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainer.models.tapped import TappedClassifier

FPR = 0.01  # share of clean validation images called unfamiliar
RIDGE = 1e-6  # added to the covariance's diagonal (relative to its mean variance) so it inverts


class Unfamiliarity(nn.Module):
    """Activation [N, C, H, W] at the tap -> squared Mahalanobis distance [N] to the nearest class mean."""

    def __init__(self, means: torch.Tensor, precision: torch.Tensor):
        super().__init__()
        self.register_buffer("means", means.float())  # [K, C]
        self.register_buffer("precision", precision.float())  # [C, C], the inverse shared covariance

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        d = h.mean(dim=(2, 3)).unsqueeze(1) - self.means  # [N, K, C]; differences, not expanded squares, in fp32
        return ((d @ self.precision) * d).sum(dim=2).min(dim=1).values


@torch.no_grad()
def pooled_features(classifier: TappedClassifier, point: int, images: torch.Tensor, batch_size: int,
                    device: torch.device) -> torch.Tensor:
    """Spatially averaged AD(point) activations [N, C] (float64, CPU) of uint8 or float 0..255 images."""
    out = [classifier.tap(images[i:i + batch_size].to(device).float(), point).mean(dim=(2, 3)).double().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out)


def calibrate(scores: torch.Tensor, fpr: float) -> float:
    """The threshold t with at most a fraction `fpr` of `scores` above it (the (floor(fpr*n)+1)-th largest)."""
    s = scores.double().sort(descending=True).values
    return float(s[min(int(np.floor(fpr * len(s) + 1e-9)), len(s) - 1)])


@torch.no_grad()
def fit(classifier: TappedClassifier, point: int, train_x: torch.Tensor, train_y: torch.Tensor,
        val_x: torch.Tensor, batch_size: int, device: torch.device, fpr: float = FPR) -> dict:
    """Class means and shared precision at AD(point) from clean training images, threshold from clean validation images.

    Returns a checkpoint dict: `means`, `precision`, `threshold`, `fpr`, `point`, image counts and
    the validation rate the threshold gives (at most `fpr`).
    """
    feats = pooled_features(classifier, point, train_x, batch_size, device)
    labels = train_y.cpu()
    classes = torch.unique(labels)
    means = torch.stack([feats[labels == k].mean(0) for k in classes])
    centred = feats - means[torch.searchsorted(classes, labels)]
    cov = centred.T @ centred / len(feats)
    cov += RIDGE * cov.diagonal().mean() * torch.eye(len(cov), dtype=cov.dtype)
    module = Unfamiliarity(means, torch.linalg.inv(cov))
    val_scores = module(pooled_features(classifier, point, val_x, batch_size, device)[:, :, None, None].float())
    threshold = calibrate(val_scores, fpr)
    return {"score": "mahalanobis", "point": point, "means": module.means, "precision": module.precision,
            "threshold": threshold, "fpr": fpr, "val_rate": float((val_scores > threshold).double().mean()),
            "train_images": len(feats), "val_images": len(val_x)}


def ensure(ctx, spec, classifier_sha256: str) -> dict:
    """RUN/detectors/<spec.name>/familiarity.pt, fitted unless done for this classifier, tap and image sets."""
    from trainer import checkpoint
    from trainer.detect.data import split_images

    path = ctx.run_dir / "detectors" / spec.name / "familiarity.pt"
    stamp = {"classifier_sha256": classifier_sha256, "point": spec.point, "train_limit": spec.train_limit,
             "val_limit": spec.val_limit, "fpr": FPR}
    if path.exists():
        done = checkpoint.load(path)
        if {k: done.get(k) for k in stamp} == stamp:
            return done
    train_x, train_y = split_images(ctx, "train", spec.train_limit)
    val_x, _ = split_images(ctx, "val", spec.val_limit)
    result = {**fit(ctx.classifier, spec.point, train_x, train_y, val_x, spec.eval_batch_size, ctx.device), **stamp}
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save(result, path)
    return result
