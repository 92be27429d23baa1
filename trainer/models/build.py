"""Building classifiers from configs (trainer.rundir loads trained ones from a run directory)."""
from __future__ import annotations

from trainer.config import ModelConfig
from trainer.models.resnet import ResNet
from trainer.models.tapped import TappedClassifier


def build_classifier(cfg: ModelConfig, in_channels: int, num_classes: int) -> TappedClassifier:
    """A freshly initialised classifier for `cfg`."""
    if cfg.arch == "resnet":
        return ResNet(cfg.depth, in_channels, num_classes)
    from trainer.models.vgg import build_vgg16  # only the ImageNet setup needs it

    return build_vgg16(cfg, num_classes)
