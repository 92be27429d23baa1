"""Benign corruptions and real footage, the audit's false-alarm tests."""
from pathlib import Path

import numpy as np
import pytest

from trainer.audit.corruptions import CAMERA_DARK, CORRUPTIONS, SEVERITIES, corrupt
from trainer.audit.footage import footage_frames
from trainer.config import AuditConfig


@pytest.fixture(scope="module")
def images():
    """Smooth images with edges (blur and JPEG change them), grey and RGB."""
    rng = np.random.default_rng(0)
    base = np.kron(rng.integers(30, 220, (6, 3, 4, 4)), np.ones((1, 1, 7, 7))).astype(np.uint8)  # 28x28 blocks
    return {1: base[:, :1], 3: base}


@pytest.mark.parametrize("name", CORRUPTIONS)
@pytest.mark.parametrize("channels", [1, 3])
def test_each_corruption_grows_with_severity(images, name, channels):
    x = images[channels]
    out = [corrupt(x, name, s) for s in range(SEVERITIES)]
    assert all(o.dtype == np.uint8 and o.shape == x.shape for o in out)
    change = [np.abs(o.astype(float) - x).mean() for o in out]
    assert 0 < change[0] < change[1] < change[2], change
    np.testing.assert_array_equal(out[0], corrupt(x, name, 0))  # seeded: the audit is repeatable


FOOTAGE = AuditConfig().footage


@pytest.mark.skipif(not all(Path(p).is_file() for p in FOOTAGE), reason="opencv-doc footage not installed (scripts/setup.sh)")
@pytest.mark.parametrize("channels", [1, 3])
def test_footage_frames_come_as_the_models_input(channels):
    for path in FOOTAGE:
        frames = footage_frames(path, 20, 28, 28, channels)
        assert frames.shape == (20, channels, 28, 28) and frames.dtype == np.uint8
        assert np.median(frames.std(axis=(1, 2, 3))) > 10 and not (frames[1] == frames[-1]).all()  # real, varied content


def test_missing_footage_is_none(tmp_path):
    assert footage_frames(tmp_path / "nope.avi", 5, 28, 28, 1) is None


def test_the_camera_model_never_delivers_a_black_background():
    """A black frame comes back at the black level (4 / 8 / 16), with noise, and below CAMERA_DARK: what attacks
    confined to the object on camera frames take for background."""
    black = np.zeros((50, 1, 28, 28), np.uint8)
    for s, level in enumerate((4, 8, 16)):
        out = corrupt(black, "camera", s)
        # 39,200 pixels of noise with sigma <= 3.6: the mean is within 0.1 of the level but for rounding (< 0.5).
        assert abs(out.mean() - level) < 0.6 and out.std() > 0.5
    worst = corrupt(black, "camera", SEVERITIES - 1)
    assert (worst > 0).mean() > 0.999 and (worst <= CAMERA_DARK).mean() > 0.999  # 4.6 and 4 sigmas
