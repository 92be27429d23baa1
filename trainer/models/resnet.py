"""The CIFAR ResNet of the paper's Fig. 1 (He et al. 2016), with attachment points."""
from __future__ import annotations

from torch import nn

from trainer.models.tapped import Normalize, TappedClassifier


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class ResidualBlock(nn.Module):
    """Two 3x3 conv+BN layers; strided conv downsamples, a 1x1 conv projects the shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet(TappedClassifier):
    """ResNet-(6n+2): conv16, then 3 stages of n blocks with 16/32/64 maps, GAP, dense.

    AD(0) = normalised input, AD(1) = after the first conv, AD(2..4) = after each stage.
    Takes images in 0..255; normalisation is part of the model.
    """

    def __init__(self, depth: int = 32, in_channels: int = 3, num_classes: int = 10,
                 mean: list[float] | None = None, std: list[float] | None = None):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        mean = mean or [127.5] * in_channels
        std = std or [64.0] * in_channels

        def stage(c_in, c_out, stride):
            return nn.Sequential(ResidualBlock(c_in, c_out, stride), *[ResidualBlock(c_out, c_out, 1) for _ in range(n - 1)])

        self.trunk = nn.ModuleList([
            Normalize(mean, std),
            conv_bn_relu(in_channels, 16),
            stage(16, 16, 1),
            stage(16, 32, 2),
            stage(32, 64, 2),
        ])
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))
        self.tap_channels = [in_channels, 16, 16, 32, 64]
        self.tap_strides = [1, 1, 1, 2, 4]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
