import cv2
import numpy as np

from trainer.detect.scenes import _collage, scenes


def _objects(n: int, seed: int) -> np.ndarray:
    """uint8 [n, 1, 28, 28]: bright textured blobs on a black background, as the data set's objects sit."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 1, 28, 28), np.uint8)
    images[:, :, 6:22, 8:20] = rng.integers(120, 256, (n, 1, 16, 12))
    return images


def test_scenes_keep_the_shape_and_are_drawn_from_the_generator():
    images = _objects(16, 0)
    a, b = scenes(images, np.random.default_rng(1)), scenes(images, np.random.default_rng(1))
    assert a.shape == images.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, scenes(images, np.random.default_rng(2)))


def test_scenes_leave_no_black_background_to_learn_from():
    """What the frame detector took for an attack on real footage: no pixel exactly black."""
    images = _objects(64, 0)
    made = scenes(images, np.random.default_rng(0))
    background = (images == 0).mean()
    assert background > 0.7
    assert (made == 0).mean() < 0.1 * background, (made == 0).mean()
    # Dimmed, lit or set before a background, never copied: every scene differs from its source by more than
    # the l_inf 2 perturbation, the smallest the detector learns as an attack, on average over its pixels.
    assert (np.abs(made.astype(float) - images).mean((1, 2, 3)) > 2).all()


def test_a_collage_shrinks_whole_images_into_its_cells():
    """Many small things to a frame: each cell of a 2 x 2 collage is one whole source image, area-averaged to
    half its side and dimmed by one gain, so the fine detail of a scene resized to the model's input is there."""
    images = _objects(5, 1).transpose(0, 2, 3, 1).astype(np.float32) + np.arange(5.0).reshape(5, 1, 1, 1)
    halves = [cv2.resize(im, (14, 14), interpolation=cv2.INTER_AREA) for im in images]
    frame = _collage(images, 2, np.random.default_rng(0))
    assert frame.shape == (28, 28, 1)
    for top in (0, 14):
        for left in (0, 14):
            cell = frame[top:top + 14, left:left + 14, 0]
            matches = [gain for half in halves if 0.1 <= (gain := cell.sum() / half.sum()) <= 1
                       and np.allclose(cell, gain * half, atol=1e-3)]
            assert len(matches) == 1, (top, left)
