"""A ResNet-8 trained in about a second on a synthetic 10-class task, and a detector trained on it."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainer.attacks import iterative_linf
from trainer.models import DetectedClassifier, Detector, ResNet

CLASSES = 10


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # The CI box is 2 shared cores; one thread keeps timings steady and leaves room for others. Per module, so the
    # second thread comes back after this folder: at session scope every later test ran on one (the shared
    # detector fixture of tests/detect/test_stage.py took 148 s instead of 103 s).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8-valued float images [n, 3, 8, 8]: a faint class template under heavy noise (~94% learnable)."""
    templates = torch.rand(CLASSES, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 255
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    # Smooth (4x4, upsampled) noise: like natural images, it leaves high-frequency perturbations detectable.
    smooth = F.interpolate(torch.randn(n, 3, 4, 4, generator=g), scale_factor=2, mode="bilinear")
    x = 128 + 0.2 * (templates[y] - 128) + 60 * smooth + 3 * torch.randn(n, 3, 8, 8, generator=g)
    return x.clamp(0, 255).round(), y


@pytest.fixture(scope="session")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    """64 held-out images and labels."""
    return synthetic(64, seed=2)


@pytest.fixture(scope="session")
def classifier() -> ResNet:
    torch.manual_seed(0)
    x, y = synthetic(2048, seed=1)
    model = ResNet(depth=8, in_channels=3, num_classes=CLASSES)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(150):
        i = torch.randint(0, len(x), (64,))
        opt.zero_grad()
        F.cross_entropy(model(x[i]), y[i]).backward()
        opt.step()
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="session")
def detected(classifier) -> DetectedClassifier:
    """A detector at AD(2) trained (Sec. 3.2) to tell clean images from iterative l_inf ones (eps=8)."""
    torch.manual_seed(0)
    x, y = synthetic(512, seed=3)
    x_adv = iterative_linf(classifier, x, y, eps=8, alpha=2, steps=5)
    model = DetectedClassifier(classifier, Detector(classifier.tap_channels[2]), point=2)
    opt = torch.optim.Adam(model.detector.parameters(), 3e-3)
    for _ in range(150):
        i = torch.randint(0, len(x), (32,))
        logits = model.detector_logit(torch.cat([x[i], x_adv[i]]))
        target = torch.cat([torch.zeros(32), torch.ones(32)])
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(logits, target).backward()
        opt.step()
    return model.eval()
