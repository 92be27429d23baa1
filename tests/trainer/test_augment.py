"""Batch augmentation: the camera model on a share of a classifier's training batch."""
import math

import torch

from trainer.augment import through_camera_share


def test_a_share_of_the_batch_comes_through_the_camera():
    x = torch.zeros(400, 1, 8, 8, dtype=torch.uint8)  # black: the camera's black level lifts every frame it touches
    out = through_camera_share(x, 0.25, torch.Generator().manual_seed(0))
    changed = (out != x).flatten(1).any(1)
    # 400 draws at 0.25: 4 standard deviations either side.
    assert abs(int(changed.sum()) - 100) < 4 * math.sqrt(400 * 0.25 * 0.75)
    assert out.dtype == torch.uint8 and torch.equal(x, torch.zeros_like(x))  # the input is left as it was
    assert torch.equal(out, through_camera_share(x, 0.25, torch.Generator().manual_seed(0)))  # seeded
    assert through_camera_share(x, 0.0, torch.Generator()) is x
