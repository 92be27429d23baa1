"""Benign corruptions a vehicle camera sees (noise, blur, compression, low light, low contrast, haze, the sensor itself),
3 severities each.

In the spirit of Hendrycks & Dietterich 2019 (ImageNet-C), written with NumPy/OpenCV on uint8
frames. The detector should not alarm on any of them: the audit reports its FPR under each.
Sizes are in pixels of the model's input.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import cv2
import numpy as np

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]  # (uint8 [H, W, C] RGB, severity 0..2, rng)
SEVERITIES = 3


def _per_channel(fn: Callable[[np.ndarray], np.ndarray], img: np.ndarray) -> np.ndarray:
    # OpenCV drops a trailing channel axis of 1; keep [H, W, C].
    return fn(img).reshape(img.shape)


def gaussian_noise(img: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise: additive N(0, sigma^2), sigma 8 / 16 / 32 grey levels."""
    return img + rng.normal(0, (8, 16, 32)[s], img.shape)


def defocus_blur(img: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    """An out-of-focus lens: mean over a disk of radius 1 / 2 / 3 pixels."""
    r = s + 1
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)).astype(np.float32)
    return _per_channel(lambda a: cv2.filter2D(a, -1, disk / disk.sum(), borderType=cv2.BORDER_REFLECT), img.astype(np.float32))


def motion_blur(img: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    """Camera or object motion: mean along a line of 3 / 5 / 9 pixels at a random angle."""
    n = (3, 5, 9)[s]
    line = np.zeros((n, n), np.float32)
    line[n // 2, :] = 1
    turn = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
    kernel = cv2.warpAffine(line, turn, (n, n))
    return _per_channel(lambda a: cv2.filter2D(a, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT), img.astype(np.float32))


def jpeg(img: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    """Lossy compression of a stream: JPEG at quality 50 / 30 / 10."""
    bgr = img if img.shape[2] == 1 else img[:, :, ::-1]  # OpenCV encodes BGR
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, (50, 30, 10)[s]])
    out = cv2.imdecode(data, cv2.IMREAD_UNCHANGED).reshape(img.shape)
    return out if img.shape[2] == 1 else out[:, :, ::-1]


def brightness(img: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    """Low light: intensities scaled by 0.7 / 0.5 / 0.3."""
    return img * (0.7, 0.5, 0.3)[s]


def contrast(img: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    """Flat light: deviations from the image mean scaled by 0.6 / 0.4 / 0.2."""
    mean = img.mean(axis=(0, 1), keepdims=True)
    return mean + (img - mean) * (0.6, 0.4, 0.2)[s]


def haze(img: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    """Fog: I = J t + A (1 - t) with airlight A = 230 and a smooth random transmission t around 0.8 / 0.6 / 0.4."""
    h, w = img.shape[:2]
    field = cv2.resize(rng.uniform(-0.1, 0.1, (4, 4)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    t = np.clip((0.8, 0.6, 0.4)[s] + field, 0.05, 1.0)[:, :, None]
    return img * t + 230 * (1 - t)


def camera(img: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    """A real sensor: black level b = 4 / 8 / 16 grey levels (the signal compressed into b..255), shot noise of
    variance 0.05 / 0.1 / 0.2 x the signal, and read noise of sigma 1 / 2 / 3.

    No camera delivers an exact-zero background, so a data set whose background is exactly 0 (Fashion-MNIST)
    lets a detector call any lifted background an attack: frames through this model must not alarm.
    """
    black, shot, read = (4, 8, 16)[s], (0.05, 0.1, 0.2)[s], (1, 2, 3)[s]
    signal = black + img * (1 - black / 255)
    return signal + rng.normal(0, 1, img.shape) * np.sqrt(shot * signal + read**2)


# The brightest a background pixel gets through `camera` at its worst (black level 16 + 4 sigma of its noise):
# attacks confined to the object take the pixels above it for the object on such frames.
CAMERA_DARK = 16 + 4 * np.sqrt(0.2 * 16 + 3**2)

CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise, "defocus_blur": defocus_blur, "motion_blur": motion_blur, "jpeg": jpeg,
    "brightness": brightness, "contrast": contrast, "haze": haze, "camera": camera,
}


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """`images` uint8 [N, C, H, W] (RGB or grey) under corruption `name` at `severity` (0..2), as uint8 [N, C, H, W]."""
    rng = np.random.default_rng(seed)
    out = [_apply(CORRUPTIONS[name], img, severity, rng) for img in images]
    return np.stack(out).transpose(0, 3, 1, 2)


def _apply(fn: Corruption, img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """One uint8 [C, H, W] image under `fn` -> uint8 [H, W, C]."""
    return np.clip(np.rint(fn(img.transpose(1, 2, 0), severity, rng)), 0, 255).astype(np.uint8)


def corrupt_randomly(images: np.ndarray, names: list[str], rng: np.random.Generator,
                     severities: Sequence[int] = tuple(range(1, SEVERITIES + 1)),
                     weights: Optional[Sequence[float]] = None) -> np.ndarray:
    """`images` uint8 [N, C, H, W], each under a corruption drawn from `names` (uniformly, or in proportion to
    `weights`) at a severity drawn from `severities` (1-based): the benign variety a detector learns as negatives."""
    if weights is None:
        kinds = rng.integers(len(names), size=len(images))
    else:
        kinds = rng.choice(len(names), size=len(images), p=np.asarray(weights) / np.sum(weights))
    drawn = np.asarray(severities)[rng.integers(len(severities), size=len(images))] - 1
    out = [_apply(CORRUPTIONS[names[k]], img, int(s), rng) for img, k, s in zip(images, kinds, drawn)]
    return np.stack(out).transpose(0, 3, 1, 2) if out else images.copy()


def through_camera(images: np.ndarray, seed: int) -> np.ndarray:
    """uint8 `images` [N, C, H, W] as a camera delivers them (`camera`), its severity drawn per image from 1..3."""
    return corrupt_randomly(images, ["camera"], np.random.default_rng(seed), range(1, SEVERITIES + 1))
