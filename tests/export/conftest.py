"""Run directories laid out as trainer.rundir says, with a tiny random ResNet-8 at 16x16.

Weights and BatchNorm statistics are random (not trained) but non-trivial, so BN folding and
the channel-order handling of the export are really exercised; thresholds are calibrated on
the fixture's own clean images the way the trainer calibrates them.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer import checkpoint
from trainer.models import DetectedClassifier, ResNet, build_detector
from trainer.rundir import RunDir

SIZE, CLASSES, EVAL_IMAGES = 16, 4, 48


def _randomise_bn(model: torch.nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.2, generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)
            m.weight.data.uniform_(0.5, 1.5, generator=gen)
            m.bias.data.normal_(0, 0.2, generator=gen)


def write_run(root: Path, channels: int = 3, detectors: tuple[str, ...] = ("ifgsm",), point: int = 2,
              eval_images: bool = True, seed: int = 0, arch: str = "fig1", members: int = 1,
              width: int | None = None) -> Path:
    """Write RUN/classifier.pt, RUN/config.yaml and RUN/detectors/<name>/{detector,eval}.pt."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    classifier = ResNet(8, channels, CLASSES)
    _randomise_bn(classifier, gen)
    files = RunDir(root)
    checkpoint.save({
        "model_config": {"arch": "resnet", "depth": 8, "weights": None, "class_indices": None},
        "in_channels": channels, "num_classes": CLASSES, "classes": ["t-shirt", "trouser", "bag", "boot"],
        "input_size": [SIZE, SIZE], "dataset": "fashion-mnist" if channels == 1 else "cifar10",
        "state_dict": classifier.state_dict(), "epoch": 3, "val_acc": 0.5, "test_acc": 0.51,
    }, files.classifier)
    files.config.write_text("run_dir: runs/fixture\nmodel:\n  arch: resnet\n  depth: 8\n")
    for name in detectors:
        detector = build_detector(arch, classifier.tap_channels[point], point, members, width)
        _randomise_bn(detector, gen)
        if members > 1:  # an Either: its members' own threshold logits
            detector.offsets.normal_(0, 1, generator=gen)
        model = DetectedClassifier(classifier, detector, point).eval()
        clean = torch.randint(0, 256, (EVAL_IMAGES, channels, SIZE, SIZE), generator=gen, dtype=torch.uint8)
        noise = 2.0 * torch.randint(0, 2, clean.shape, generator=gen).float().mul(2).sub(1)
        adversarial = (clean.float() + noise).clamp(0, 255)  # float, as attacks produce them
        with torch.no_grad():
            p_clean = torch.sigmoid(model(clean.float())[1])
        thresholds = [{"fpr": fpr, "threshold": float(p_clean.quantile(1 - fpr))} for fpr in (0.01, 0.05)]
        checkpoint.save({
            "name": name, "point": point, "arch": arch, "members": members, "width": width,
            "in_channels": classifier.tap_channels[point],
            "adversary": {"name": "iterative_linf", "eps": 2}, "mode": "static", "state_dict": detector.state_dict(),
            "thresholds": thresholds, "threshold": thresholds[0]["threshold"], "threshold_fpr": 0.01,
            "detectability": 0.93, "auroc": 0.97,
        }, files.detector(name))
        if eval_images:
            labels = torch.randint(0, CLASSES, (EVAL_IMAGES,), generator=gen)
            checkpoint.save({"clean": clean, "adversarial": adversarial, "labels": labels}, files.eval_images(name))
    return root


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """A colour run with one detector at AD(2) and held-out images."""
    return write_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="session")
def exported(run_dir, tmp_path_factory) -> tuple[Path, list[str]]:
    """The fp32 export of `run_dir` (done once; tests that modify it work on a copy)."""
    from export.pipeline import export_onnx

    return export_onnx(run_dir, out=tmp_path_factory.mktemp("out") / "model.onnx")


@pytest.fixture(scope="session")
def make_run():
    """`write_run` for tests that need a run directory of their own."""
    return write_run
