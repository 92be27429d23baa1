"""The adversary detection networks (Fig. 1 and Sec. 4.2) and their attachment to a classifier."""
from __future__ import annotations

import torch
from torch import nn

from trainer.models.resnet import conv_bn_relu
from trainer.models.tapped import TappedClassifier


class TwoWayHead(nn.Module):
    """A `body` ending in a two-way map [N, 2] (clean, adversarial), returned as one logit z_adv - z_clean.

    That logit is all the paper's two-way softmax carries: sigmoid(logit) is exactly its p_adv.
    """

    body: nn.Module

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = self.body(h)
        return z[:, 1] - z[:, 0]


class Detector(TwoWayHead):
    """conv96 -> MP -> conv192 -> MP -> conv192 -> 1x1 conv(2) -> GAP, returning one logit.

    `pools` says how many of the two max-pools to keep; the paper skips the second at AD(3)
    and both at AD(4), where the input is already downsampled.
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


class ImageNetDetector(TwoWayHead):
    """Sec. 4.2's detector: five 3x3 conv196 (BN, ReLU) with a 2x2 max-pool after the first,
    then 1x1 conv(2) -> GAP, returning one logit.

    The paper's 1x1 convolution "maps onto the 10 classes", but the detector's softmax is over
    two (clean, adversarial), so it has 2 outputs here, as in Fig. 1.
    """

    def __init__(self, in_channels: int):
        super().__init__()
        width = 196  # feature maps of every 3x3 convolution (Sec. 4.2)
        self.body = nn.Sequential(
            conv_bn_relu(in_channels, width), nn.MaxPool2d(2),
            *[conv_bn_relu(width, width) for _ in range(4)],
            nn.Conv2d(width, 2, 1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )


class FrameDetector(TwoWayHead):
    """A plain CNN for the frame itself, AD(0): conv32, conv32, MP, conv64, conv64, MP, conv128, 1x1 conv(2), GAP.

    Beyond the paper. A robustly trained classifier learns to ignore small perturbations, so its
    features hold little of them (AD(2) flagged none at l_inf 4, docs/RESULTS.md); the frame holds
    all of them. Two convolutions at full resolution before any pooling keep the pixel-level pattern
    of a perturbation, which a strided stem lost (a stride-2 variant flagged 0.80 instead of 0.95 of
    PGD attempts at l_inf 4 in the same trial).
    """

    def __init__(self, in_channels: int, width: int | None = None):
        super().__init__()
        w = width or 32
        self.body = nn.Sequential(
            conv_bn_relu(in_channels, w), conv_bn_relu(w, w), nn.MaxPool2d(2),
            conv_bn_relu(w, 2 * w), conv_bn_relu(2 * w, 2 * w), nn.MaxPool2d(2),
            conv_bn_relu(2 * w, 4 * w),
            nn.Conv2d(4 * w, 2, 1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )


def paper_pools(point: int) -> int:
    """Max-pools the paper keeps at AD(point): both up to AD(2), one at AD(3), none at AD(4)."""
    return {3: 1, 4: 0}.get(point, 2)


# arch -> constructor(in_channels, point, width); the names are those of the detector config's `arch`, and
# only the frame detector takes a width: the paper's are the paper's.
ARCHS = {
    "fig1": lambda in_channels, point, width: Detector(in_channels, paper_pools(point)),  # pooling by attachment point
    "imagenet": lambda in_channels, point, width: ImageNetDetector(in_channels),  # the same layout at any point
    "frame": lambda in_channels, point, width: FrameDetector(in_channels, width),  # made for AD(0), the normalised frame
}


class Either(nn.Module):
    """Alarm when any member does: logit max_i (z_i - b_i), with b_i member i's own threshold logit.

    Beyond the paper. One detector trained on positives of opposite shapes settles between them: dense
    perturbations lift the background, object-confined ones leave it as it was, and a detector
    trained on the latter alone flagged none of the former (docs/RESULTS.md, "Candidates"). Each
    member is trained on its own positives and calibrated alone; shifted by b_i, each rings at logit
    0, and the OR is calibrated again as one detector with one threshold.
    """

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.register_buffer("offsets", torch.zeros(len(members)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return (torch.stack([m(h) for m in self.members], 1) - self.offsets).amax(1)


def build_detector(arch: str, in_channels: int, point: int, members: int = 1, width: int | None = None) -> nn.Module:
    """A fresh detector of `arch` (a key of ARCHS) for an activation with `in_channels` maps at AD(point), the frame
    detector `width` maps wide (None: its default); with `members` > 1, an `Either` of that many."""
    if arch not in ARCHS:
        raise ValueError(f"unknown detector arch {arch!r}; expected one of {', '.join(ARCHS)}")
    if members > 1:
        return Either([ARCHS[arch](in_channels, point, width) for _ in range(members)])
    return ARCHS[arch](in_channels, point, width)


class DetectedClassifier(nn.Module):
    """A frozen classifier with a detector at AD(point); returns (class logits, adversarial logit).

    The trunk up to the attachment point is computed once and shared by both heads.
    """

    def __init__(self, classifier: TappedClassifier, detector: nn.Module, point: int):
        super().__init__()
        self.classifier, self.detector, self.point = classifier, detector, point

    @classmethod
    def build(cls, classifier: TappedClassifier, arch: str, point: int, state_dict: dict | None = None,
              members: int = 1, width: int | None = None) -> "DetectedClassifier":
        """`classifier` with a detector of `arch` (an `Either` of `members` of them; the frame detector `width`
        maps wide) at AD(point), fresh or with `state_dict`'s weights, in eval mode on the classifier's device.

        Its weights are channels_last: oneDNN's CPU convolutions train the frame detector about 15% faster so
        (benchmarks/detector_throughput.py), and cuDNN's prefer it too.
        """
        detector = build_detector(arch, classifier.tap_channels[point], point, members, width)
        if state_dict is not None:
            detector.load_state_dict(state_dict)
        device = next(classifier.parameters()).device
        return cls(classifier, detector.to(device, memory_format=torch.channels_last).eval(), point)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.classifier.tap(x, self.point)
        return self.classifier.resume(h, self.point), self.detector(h)

    def detector_logit(self, x: torch.Tensor) -> torch.Tensor:
        """Adversarial logit only (what attacks on the detector differentiate)."""
        return self.detector(self.classifier.tap(x, self.point))
