"""`camera_share`: a share of a detector's images, and so their twins, made as a camera delivers them."""
import math

import torch
from detect.tiny_run import make_ctx

from trainer.audit.corruptions import CAMERA_DARK
from trainer.data import Dataset, Split
from trainer.detect.data import split_images
from trainer.detect.stage import assigned_twins, detector_images

CONFINED = {"name": "confined_pgd", "eps": 16, "steps": 2, "restarts": 1}
DETECTOR = {"name": "cam", "point": 0, "arch": "frame", "adversary": CONFINED, "twins": "one", "camera_share": 0.5,
            "train_limit": 200, "val_limit": 100}


def black_border(split: Split) -> Split:
    """The split's images with a black border 4 pixels wide: a background, as Fashion-MNIST's."""
    x = split.images.clone()
    x[..., :4, :] = x[..., -4:, :] = x[..., :, :4] = x[..., :, -4:] = 0
    return Split(x, split.labels)


def test_a_share_of_the_images_and_their_twins_come_through_the_camera(tiny_dataset, classifier_file, tmp_path):
    data = Dataset("tiny", tiny_dataset.classes, *(black_border(s) for s in (tiny_dataset.train, tiny_dataset.val, tiny_dataset.test)))
    ctx = make_ctx(tmp_path / "run", classifier_file, data, {"detectors": [DETECTOR]})
    spec = ctx.cfg.detectors[0]
    x, y, camera = detector_images(ctx, spec, "train")
    original, labels = split_images(ctx, "train", spec.train_limit)
    # 200 draws at 0.5: 4 standard deviations either side.
    assert 100 - 4 * math.sqrt(50) < int(camera.sum()) < 100 + 4 * math.sqrt(50)
    assert torch.equal(x[~camera], original[~camera]) and torch.equal(y, labels)
    assert not torch.equal(x[camera], original[camera])
    again, _, same = detector_images(ctx, spec, "train")
    assert torch.equal(again, x) and torch.equal(same, camera)  # seeded: the twins' cache stays valid

    twins, _ = assigned_twins(ctx, [spec.adversary], "train", spec, ctx.cfg.seed)
    # On camera frames the attack confined to the object leaves everything at or below the camera's darkest
    # background as the camera delivered it; on the others, what is at 0 (the tiny task's own background).
    dark = x <= math.ceil(CAMERA_DARK)
    assert dark[camera].float().mean() > 0.3 and (x[~camera] == 0).float().mean() > 0.3  # the border, at least
    assert torch.equal(twins[camera][dark[camera]], x[camera][dark[camera]].float())
    zero = x == 0
    assert torch.equal(twins[~camera][zero[~camera]], x[~camera][zero[~camera]].float())
    assert (twins - x.float()).abs().amax() <= 16 + 1e-3
    assert any(p.name.startswith("train200-0-camera-confined_pgd-") and "background30" in p.name
               for p in ctx.files.attacks.iterdir())
