"""Scenes that are not the data set's objects, made from its own images: negatives against the "unfamiliar means
attacked" shortcut.

A frame detector that only ever saw centred objects on a black background, clean or corrupted, learns that a frame
without one is a perturbation: the first frame alarm flagged 30-70% of the frames of a real video (opencv-doc's
Megamind.avi). In the spirit of outlier exposure (Hendrycks et al., ICLR 2019), each scene is built from training
images only, never from footage, so the footage stays a held-out test: zoomed in until the object's texture fills
the frame, blended with another image's zoom, dimmed and lit by a smooth random field, as a camera sees surfaces,
shadows and uneven light; whole, in front of a dim textured background; or shrunk, many to a frame, as a scene of
many small things looks when a camera frame is resized to the model's input: sharp, fine detail everywhere (the
zooms are smooth). What none of them carries is the attack's fine-grained, image-specific pattern.
"""
from __future__ import annotations

import cv2
import numpy as np


def scenes(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 [N, C, H, W] -> uint8 [N, C, H, W], scene n built from images n and a random partner, all drawn from `rng`.

    A third are surfaces filling the frame: image n's zoom (a random square crop of 1/3 to all of the side, resized
    back) with the partner's zoom blended in at a weight of 0 to 0.5, scaled by a gain of 0.2 to 1 and offset by a
    smooth light field (4x4 uniform 0..64, bicubic). A third keep image n whole, at a gain of 0.5 to 1, in
    front of a dim background: the partner's zoom at a gain of 0.05 to 0.4 plus a share of the light field, as an
    object sits before a dark, textured scene. The last third are collages: a 2x2 to 4x4 grid of random images,
    each shrunk to its cell and at its own gain of 0.1 to 1, the whole at a gain of 0.2 to 1 plus a share of the
    light field.
    """
    n, _, h, w = images.shape
    hwc = images.transpose(0, 2, 3, 1).astype(np.float32)
    partners = rng.integers(n, size=n)
    out = np.empty_like(hwc)
    for i in range(n):
        light = cv2.resize(rng.uniform(0, 64, (4, 4)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, 1)
        kind = rng.random()
        if kind < 1 / 3:
            blend = rng.uniform(0, 0.5)
            mixed = (1 - blend) * _zoom(hwc[i], rng) + blend * _zoom(hwc[partners[i]], rng)
            out[i] = rng.uniform(0.2, 1.0) * mixed + light
        elif kind < 2 / 3:
            background = rng.uniform(0.05, 0.4) * _zoom(hwc[partners[i]], rng) + rng.uniform(0, 1) * light
            out[i] = np.maximum(rng.uniform(0.5, 1.0) * hwc[i], background)
        else:
            out[i] = rng.uniform(0.2, 1.0) * _collage(hwc, int(rng.integers(2, 5)), rng) + rng.uniform(0, 1) * light
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).transpose(0, 3, 1, 2)


def _zoom(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random square crop of 1/3 to all of float [H, W, C] `img`'s side, resized back to [H, W, C]."""
    h, w, c = img.shape
    side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
    top, left = rng.integers(h - side + 1), rng.integers(w - side + 1)
    crop = img[top:top + side, left:left + side]
    return cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, c)


def _collage(images: np.ndarray, g: int, rng: np.random.Generator) -> np.ndarray:
    """A g x g grid of random images of float [N, H, W, C] `images`, each shrunk to its cell with area averaging
    and scaled by a gain of 0.1 to 1, resized to one [H, W, C] frame."""
    n, h, w, c = images.shape
    cell = -(-max(h, w) // g)
    grid = np.empty((g * cell, g * cell, c), np.float32)
    for r in range(g):
        for k in range(g):
            small = cv2.resize(images[rng.integers(n)], (cell, cell), interpolation=cv2.INTER_AREA).reshape(cell, cell, c)
            grid[r * cell:(r + 1) * cell, k * cell:(k + 1) * cell] = rng.uniform(0.1, 1.0) * small
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_AREA).reshape(h, w, c)
