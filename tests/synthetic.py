"""A small learnable image task, written in the real CIFAR-10 format, for tests that train.

Class k is a bright patch at one of ten positions on a noisy background, so a tiny
network learns it in seconds and attacks/detectors have real gradients to work with.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def learnable_images(n: int, size: int = 16, channels: int = 3, classes: int = 10, seed: int = 0):
    """uint8 images [n, channels, size, size] and int64 labels [n] of the patch task."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    images = rng.normal(90, 25, (n, channels, size, size))
    cell = size // 4  # a 4x4 grid of patch positions, class k uses cell k
    for i, k in enumerate(labels):
        r, c = divmod(int(k), 4)
        images[i, :, r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] += 120
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)


def smoothed(images: np.ndarray) -> np.ndarray:
    """uint8 images [N, C, H, W] under a 3x3 mean: a smooth background, from which a detector learns to tell a
    perturbation in a few hundred images (noise of sigma 25 hides one of eps 16 at that size)."""
    padded = np.pad(images.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    ones = np.pad(np.ones(images.shape[2:]), 1)
    h, w = images.shape[2:]
    window = lambda a: sum(a[..., i : i + h, j : j + w] for i in range(3) for j in range(3))  # noqa: E731
    return np.round(window(padded) / window(ones)).astype(np.uint8)  # count_include_pad=False at the borders


def write_learnable_cifar(root: Path, n_train: int = 600, n_test: int = 200, size: int = 32, seed: int = 0,
                          smooth: bool = False) -> Path:
    """The seven official CIFAR-10 python files holding the patch task (32x32, as the format requires)."""
    root.mkdir(parents=True, exist_ok=True)
    x, y = learnable_images(n_train + n_test, size, seed=seed)
    x = smoothed(x) if smooth else x
    flat = x.reshape(len(x), -1)
    per = n_train // 5
    for b in range(5):
        part = slice(b * per, (b + 1) * per)
        with open(root / f"data_batch_{b + 1}", "wb") as f:
            pickle.dump({b"data": flat[part], b"labels": y[part].tolist()}, f)
    with open(root / "test_batch", "wb") as f:
        pickle.dump({b"data": flat[n_train:], b"labels": y[n_train:].tolist()}, f)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"class{k}".encode() for k in range(10)]}, f)
    return root


def tiny_overrides(cifar_dir, run_dir, epochs=2):
    """--set overrides that make configs/cifar.yaml a seconds-long CPU run on the synthetic task."""
    return ["data.name=cifar10", f"data.root={cifar_dir}", "data.download=false", "data.val_size=100", "model.depth=8",
            f"train.epochs={epochs}", "train.batch_size=50",
            # flips and shifts would move the patch that defines the class
            "train.augment.crop_pad=0", "train.augment.flip=false", "train.lr_milestones=[100]", "train.lr=0.05",
            f"run_dir={run_dir}", "device=cpu",
            # the classifier stage only: the shipped config's detectors and experiments are for real runs
            "detectors=[]", "deploy=null", "experiments.enabled=false"]
