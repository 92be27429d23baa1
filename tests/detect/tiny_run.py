"""A tiny trained run (16x16 grey patch task, ResNet-8) that detector and experiment tests build on.

Imported as `detect.tiny_run` (tests/ is on the path); each conftest turns it into fixtures.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from synthetic import learnable_images, smoothed

from trainer import checkpoint
from trainer.config import Config
from trainer.data import Dataset, Split
from trainer.models import ResNet
from trainer.rundir import load_classifier
from trainer.rundir import RunContext


def _split(n: int, seed: int) -> Split:
    x, y = learnable_images(n, size=16, channels=1, seed=seed)
    return Split(torch.from_numpy(smoothed(x)), torch.from_numpy(y))


def tiny_dataset() -> Dataset:
    """400 train / 200 val / 200 test images of the patch task, 16x16 grey."""
    return Dataset("tiny", [f"c{k}" for k in range(10)], _split(400, 1), _split(200, 2), _split(200, 3))


def train_classifier_file(tiny_dataset: Dataset, folder: Path) -> Path:
    """classifier.pt of a ResNet-8 trained for a few seconds on the tiny task (well above chance)."""
    torch.manual_seed(0)
    model = ResNet(8, 1, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = tiny_dataset.train.images.float(), tiny_dataset.train.labels
    for _ in range(4):
        for i in range(0, len(x), 50):
            opt.zero_grad()
            F.cross_entropy(model(x[i : i + 50]), y[i : i + 50]).backward()
            opt.step()
    path = folder / "classifier.pt"
    checkpoint.save({"model_config": {"arch": "resnet", "depth": 8}, "in_channels": 1, "num_classes": 10,
                     "classes": tiny_dataset.classes, "input_size": [16, 16], "dataset": "tiny",
                     "state_dict": model.state_dict(), "epoch": 4, "val_acc": 0.0, "test_acc": 0.0}, path)
    return path


def make_ctx(run_dir: Path, classifier_file: Path, dataset: Dataset, cfg: dict) -> RunContext:
    """A RunContext over `run_dir` holding a copy of the tiny classifier, for config tree `cfg`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "classifier.pt").write_bytes(classifier_file.read_bytes())
    classifier, ckpt = load_classifier(run_dir)
    classifier.requires_grad_(False)
    return RunContext(Config.model_validate({"run_dir": str(run_dir), "device": "cpu", **cfg}), run_dir,
                      torch.device("cpu"), dataset, classifier, ckpt, True)


# Small, fast training settings shared by the tests (6 epochs of 200 pairs take a few seconds).
TRAIN = {"epochs": 6, "batch_size": 32, "lr": 3e-3, "train_limit": 200, "val_limit": 100, "test_limit": 100,
         "eval_batch_size": 200}
