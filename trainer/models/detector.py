"""The adversary detection network of Fig. 1 (bottom) and its attachment to a classifier."""
from __future__ import annotations

import torch
from torch import nn

from trainer.models.resnet import conv_bn_relu
from trainer.models.tapped import TappedClassifier


class Detector(nn.Module):
    """conv96 -> MP -> conv192 -> MP -> conv192 -> 1x1 conv(2) -> GAP, returning one logit.

    `pools` says how many of the two max-pools to keep; the paper skips the second at AD(3)
    and both at AD(4), where the input is already downsampled. The logit is z_adv - z_clean
    of the paper's two-way softmax, so sigmoid(logit) is exactly its p_adv.
    """

    def __init__(self, in_channels: int, pools: int = 2):
        super().__init__()
        pool = lambda keep: nn.MaxPool2d(2) if keep else nn.Identity()  # noqa: E731
        self.body = nn.Sequential(
            conv_bn_relu(in_channels, 96), pool(pools >= 1),
            conv_bn_relu(96, 192), pool(pools >= 2),
            conv_bn_relu(192, 192),
            nn.Conv2d(192, 2, 1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = self.body(h)
        return z[:, 1] - z[:, 0]


def paper_pools(point: int) -> int:
    """Max-pools the paper keeps at AD(point): both up to AD(2), one at AD(3), none at AD(4)."""
    return {3: 1, 4: 0}.get(point, 2)


class DetectedClassifier(nn.Module):
    """A frozen classifier with a detector at AD(point); returns (class logits, adversarial logit).

    The trunk up to the attachment point is computed once and shared by both heads.
    """

    def __init__(self, classifier: TappedClassifier, detector: nn.Module, point: int):
        super().__init__()
        self.classifier, self.detector, self.point = classifier, detector, point

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.classifier.tap(x, self.point)
        return self.classifier.resume(h, self.point), self.detector(h)

    def detector_logit(self, x: torch.Tensor) -> torch.Tensor:
        """Adversarial logit only (what attacks on the detector differentiate)."""
        return self.detector(self.classifier.tap(x, self.point))
