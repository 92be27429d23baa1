"""Scenes that are not the data set's objects, made from its own images: negatives against the "unfamiliar means
attacked" shortcut.

A frame detector that only ever saw centred objects on a black background, clean or corrupted, learns that a frame
without one is a perturbation: the first frame alarm flagged 30-70% of the frames of a real video (opencv-doc's
Megamind.avi). In the spirit of outlier exposure (Hendrycks et al., ICLR 2019), each scene is built from training
images only, never from footage, so the footage stays a held-out test: zoomed in until the object's texture fills
the frame, blended with another image's zoom, dimmed and lit by a smooth random field, as a camera sees surfaces,
shadows and uneven light; or whole, in front of a dim textured background. What none of them carries is the attack's fine-grained, image-specific pattern.
"""
from __future__ import annotations

import cv2
import numpy as np


def scenes(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 [N, C, H, W] -> uint8 [N, C, H, W], scene n built from images n and a random partner, all drawn from `rng`.

    Half are surfaces filling the frame: image n's zoom (a random square crop of 1/3 to all of the side, resized
    back) with the partner's zoom blended in at a weight of 0 to 0.5, scaled by a gain of 0.2 to 1 and offset by a
    smooth light field (4x4 uniform 0..64, bicubic). The other half keep image n whole, at a gain of 0.5 to 1, in
    front of a dim background: the partner's zoom at a gain of 0.05 to 0.4 plus a share of the light field, as an
    object sits before a dark, textured scene.
    """
    n, _, h, w = images.shape
    hwc = images.transpose(0, 2, 3, 1).astype(np.float32)
    partners = rng.integers(n, size=n)
    out = np.empty_like(hwc)
    for i in range(n):
        light = cv2.resize(rng.uniform(0, 64, (4, 4)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, 1)
        if rng.random() < 0.5:
            blend = rng.uniform(0, 0.5)
            mixed = (1 - blend) * _zoom(hwc[i], rng) + blend * _zoom(hwc[partners[i]], rng)
            out[i] = rng.uniform(0.2, 1.0) * mixed + light
        else:
            background = rng.uniform(0.05, 0.4) * _zoom(hwc[partners[i]], rng) + rng.uniform(0, 1) * light
            out[i] = np.maximum(rng.uniform(0.5, 1.0) * hwc[i], background)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).transpose(0, 3, 1, 2)


def _zoom(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random square crop of 1/3 to all of float [H, W, C] `img`'s side, resized back to [H, W, C]."""
    h, w, c = img.shape
    side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
    top, left = rng.integers(h - side + 1), rng.integers(w - side + 1)
    crop = img[top:top + side, left:left + side]
    return cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, c)
