"""Image folders: `root/{train,val,test}/<class>/<image>`, decoded with OpenCV."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from trainer.progress import progress_bar

from .dataset import DataError, Split

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
# Folders list images class by class; a fixed permutation mixes the classes so that the
# validation tail and `train_limit`/`test_limit` prefixes hold every class, run after run.
_SHUFFLE_SEED = 0


def load_folder(root: Path, image_size: int, channels: int) -> tuple[list[str], Split, Split | None, Split]:
    """Read `root/train`, `root/test` and, when present, `root/val`: (classes, train, val or None, test).

    Classes are the sorted folder names under `root/train`. Images are decoded as grey
    (`channels` 1) or RGB (3) and resized to `image_size` square with `cv2.INTER_AREA`.
    """
    for part in ("train", "test"):
        if not (root / part).is_dir():
            raise DataError(f"{root} has no {part}/ folder; expected {root}/{{train,test}}/<class>/<image>")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root / 'train'} has no class folders; expected {root}/train/<class>/<image>")
    val = _read_split(root / "val", classes, image_size, channels) if (root / "val").is_dir() else None
    return (
        classes,
        _read_split(root / "train", classes, image_size, channels),
        val,
        _read_split(root / "test", classes, image_size, channels),
    )


def _read_split(folder: Path, classes: list[str], image_size: int, channels: int) -> Split:
    samples = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name not in classes:
            train = folder.parent / "train"
            raise DataError(f"{sub}: class {sub.name!r} has no folder in {train}; add it there or remove it")
        label = classes.index(sub.name)
        samples += [(path, label) for path in sorted(sub.iterdir()) if path.suffix.lower() in EXTENSIONS]
    if not samples:
        raise DataError(f"{folder} holds no images ({', '.join(sorted(EXTENSIONS))}) in its class folders")
    order = np.random.default_rng(_SHUFFLE_SEED).permutation(len(samples))
    samples = [samples[i] for i in order]
    images = np.empty((len(samples), channels, image_size, image_size), np.uint8)
    for i, (path, _) in enumerate(progress_bar(samples, desc=f"decode {folder.name}", unit="img", leave=False)):
        images[i] = _decode(path, image_size, channels)
    labels = np.array([label for _, label in samples], np.int64)
    return Split(torch.from_numpy(images), torch.from_numpy(labels))


def _decode(path: Path, image_size: int, channels: int) -> np.ndarray:
    """One image as uint8 [C, size, size], RGB when `channels` is 3."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot decode image {path}; replace or delete it")
    if image.shape[:2] != (image_size, image_size):
        image = cv2.resize(image, (image_size, image_size), interpolation=cv2.INTER_AREA)
    if channels == 1:
        return image[None]
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)
