"""Building classifiers and detectors from configs and checkpoints."""
from __future__ import annotations

from pathlib import Path

import torch

from trainer import checkpoint
from trainer.config import ModelConfig
from trainer.models.detector import DetectedClassifier, build_detector
from trainer.models.resnet import ResNet
from trainer.models.tapped import TappedClassifier


def build_classifier(cfg: ModelConfig, in_channels: int, num_classes: int) -> TappedClassifier:
    """A freshly initialised classifier for `cfg`."""
    if cfg.arch == "resnet":
        return ResNet(cfg.depth, in_channels, num_classes)
    from trainer.models.vgg import build_vgg16  # only the ImageNet setup needs it

    return build_vgg16(cfg, num_classes)


def load_classifier(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[TappedClassifier, dict]:
    """The best classifier of a run, in eval mode, and its checkpoint metadata."""
    ckpt = checkpoint.load(Path(run_dir) / "classifier.pt", device)
    model = build_classifier(ModelConfig(**ckpt["model_config"]), ckpt["in_channels"], ckpt["num_classes"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), ckpt


def load_detected_classifier(run_dir: str | Path, detector_name: str, device: str | torch.device = "cpu"
                             ) -> tuple[DetectedClassifier, dict, dict]:
    """Classifier + trained detector `detector_name` of a run, in eval mode, with both checkpoints' metadata."""
    classifier, cls_ckpt = load_classifier(run_dir, device)
    det_ckpt = checkpoint.load(Path(run_dir) / "detectors" / detector_name / "detector.pt", device)
    # Checkpoints from before the `arch` key hold Fig. 1's detector.
    detector = build_detector(det_ckpt.get("arch", "fig1"), det_ckpt["in_channels"], det_ckpt["point"])
    detector.load_state_dict(det_ckpt["state_dict"])
    model = DetectedClassifier(classifier, detector, det_ckpt["point"]).to(device).eval()
    return model, cls_ckpt, det_ckpt
