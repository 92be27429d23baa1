"""Familiarity: does a frame look like the images the classifier learned? Scored at the detector's tap or a later one.

p_adv means nothing on inputs unlike the training data (real road footage through a
Fashion-MNIST model scores far above the alert threshold). Following Lee et al., "A Simple
Unified Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks"
(NeurIPS 2018), the activation at AD(point), averaged over a GRID x GRID grid of cells (where
spatial layout is what sets footage apart from the training images: a global average found
almost none of Megamind.avi's frames unfamiliar, the grid 20%), is modelled by one Gaussian
per class with a shared covariance, fitted on clean training images (with `familiar_attempts`, also on
their attacked twins: the gate must not call a perturbed frame unfamiliar, or the alarm never judges it). An image's
unfamiliarity is its squared Mahalanobis distance to the nearest class mean; the threshold
is calibrated on clean validation images so that a fraction `FPR` of them lies above it.
The module runs in the exported graph on the same tap the detector reads; the detector stage
(`trainer.detect.stage.ensure_familiarity`) fits it for a run.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.tapped import TappedClassifier

FPR = 0.01  # share of clean validation images called unfamiliar
GRID = 4  # cells per side the tap activation is averaged over (1 where its size is not a multiple)
RIDGE = 1e-6  # added to the covariance's diagonal (relative to its mean variance) so it inverts


def pool(h: torch.Tensor, cell: tuple[int, int]) -> torch.Tensor:
    """Activation [N, C, H, W] averaged over cells of `cell` pixels -> [N, C * cells]."""
    return F.avg_pool2d(h, cell).flatten(1)


class Unfamiliarity(nn.Module):
    """Activation [N, C, H, W] at the tap -> squared Mahalanobis distance [N] of its pooled cells to the nearest class mean."""

    def __init__(self, means: torch.Tensor, precision: torch.Tensor, cell: tuple[int, int] = (1, 1)):
        super().__init__()
        self.cell = tuple(int(c) for c in cell)  # fixed at fit time: the exported graph pools with constants
        self.register_buffer("means", means.float())  # [K, D]
        self.register_buffer("precision", precision.float())  # [D, D], the inverse shared covariance

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        d = pool(h, self.cell).unsqueeze(1) - self.means  # [N, K, D]; differences, not expanded squares, in fp32
        return ((d @ self.precision) * d).sum(dim=2).min(dim=1).values


class Gate(nn.Module):
    """The agent's familiarity gate on a run's classifier: uint8 or float 0..255 frames [N, C, H, W] -> bool [N],
    True where the frame is unfamiliar, so the agent does not judge its p_adv."""

    def __init__(self, classifier: TappedClassifier, fitted: dict):
        super().__init__()
        self.classifier, self.point, self.threshold = classifier, int(fitted["point"]), float(fitted["threshold"])
        self.score = Unfamiliarity(fitted["means"], fitted["precision"], fitted["cell"])

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.score(self.classifier.tap(frames.float(), self.point)) > self.threshold


def cell_for(height: int, width: int) -> tuple[int, int]:
    """Cells of a GRID x GRID grid where the tap's size divides into it, else the whole map (a global average)."""
    return (height // GRID, width // GRID) if height % GRID == 0 and width % GRID == 0 else (height, width)


@torch.no_grad()
def pooled_features(classifier: TappedClassifier, point: int, images: torch.Tensor, batch_size: int,
                    device: torch.device, cell: tuple[int, int]) -> torch.Tensor:
    """AD(point) activations of uint8 or float 0..255 images, averaged over cells: [N, D] float64 on the CPU."""
    out = [pool(classifier.tap(images[i:i + batch_size].to(device).float(), point), cell).double().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out)


def calibrate(scores: torch.Tensor, fpr: float) -> float:
    """The threshold t with at most a fraction `fpr` of `scores` above it (the (floor(fpr*n)+1)-th largest)."""
    s = scores.double().sort(descending=True).values
    return float(s[min(int(np.floor(fpr * len(s) + 1e-9)), len(s) - 1)])


@torch.no_grad()
def fit(classifier: TappedClassifier, point: int, train_x: torch.Tensor, train_y: torch.Tensor,
        val_x: torch.Tensor, batch_size: int, device: torch.device, fpr: float = FPR) -> dict:
    """Class means and shared precision at AD(point) from training images (clean, and with `familiar_attempts`
    their attacked twins too), threshold from clean validation images.

    Returns a checkpoint dict: `means`, `precision`, `threshold`, `fpr`, `point`, image counts and
    the validation rate the threshold gives (at most `fpr`).
    """
    with torch.no_grad():
        tap_size = classifier.tap(train_x[:1].to(device).float(), point).shape[2:]
    cell = cell_for(*tap_size)
    feats = pooled_features(classifier, point, train_x, batch_size, device, cell)
    labels = train_y.cpu()
    classes = torch.unique(labels)
    means = torch.stack([feats[labels == k].mean(0) for k in classes])
    centred = feats - means[torch.searchsorted(classes, labels)]
    cov = centred.T @ centred / len(feats)
    cov += RIDGE * cov.diagonal().mean() * torch.eye(len(cov), dtype=cov.dtype)
    module = Unfamiliarity(means, torch.linalg.inv(cov))  # on pooled features as [N, D, 1, 1] maps
    val_scores = module(pooled_features(classifier, point, val_x, batch_size, device, cell)[:, :, None, None].float())
    threshold = calibrate(val_scores, fpr)
    return {"score": "mahalanobis", "point": point, "cell": list(cell), "means": module.means, "precision": module.precision,
            "threshold": threshold, "fpr": fpr, "val_rate": float((val_scores > threshold).double().mean()),
            "train_images": len(feats), "val_images": len(val_x)}
