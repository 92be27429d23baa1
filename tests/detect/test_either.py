"""An OR of detectors (config `either`) on the tiny task: each member trained on its own positives, the OR deployed
as one detector under one threshold calibrated on it, with the union of its members' families as trained on."""
import pytest
import torch

from detect.tiny_run import TRAIN, make_ctx
from trainer.audit.target import load_target
from trainer.detect import ensure_detector
from trainer.detect.evaluate import calibrated_threshold, scores
from trainer.detect.stage import calibration_parts, detector_images
from trainer.models.detector import Either
from trainer.rundir import load_detected_classifier

FPR, CORRUPTIONS = 0.05, ["gaussian_noise", "jpeg"]
FRAME = {"arch": "frame", "point": 0, "twins": "one", "select": "tpr", **TRAIN}
OBJECT = {**FRAME, "name": "object", "adversary": {"name": "confined_pgd", "eps": 16, "steps": 5, "restarts": 1}}
ALARM = {**FRAME, "name": "alarm", "adversary": {"name": "pgd", "eps": 8, "steps": 5, "restarts": 1}, "either": ["object"]}


@pytest.fixture(scope="module")
def ctx(tiny_dataset, classifier_file, tmp_path_factory):
    ctx = make_ctx(tmp_path_factory.mktemp("either"), classifier_file, tiny_dataset,
                   {"detectors": [OBJECT, ALARM], "deploy": "alarm",
                    "calibration": {"fpr": FPR, "corruptions": CORRUPTIONS, "severities": [1]}})
    for spec in ctx.cfg.detectors:
        ensure_detector(ctx, spec)
    return ctx


def test_the_or_holds_its_member_as_trained_and_shifted_to_ring_at_its_own_threshold(ctx):
    alarm, _, ckpt = load_detected_classifier(ctx.run_dir, "alarm")
    member, _, member_ckpt = load_detected_classifier(ctx.run_dir, "object")
    assert ckpt.members == 2 and isinstance(alarm.detector, Either)
    for key, value in member.detector.state_dict().items():
        assert torch.equal(alarm.detector.members[1].state_dict()[key], value), key
    assert alarm.detector.offsets[1].item() == pytest.approx(torch.logit(torch.tensor(member_ckpt.threshold)).item(), abs=1e-5)
    x = ctx.dataset.test.images.float()
    with torch.no_grad():
        # Its own member reads the frame as the detector does, normalised by the classifier's first stage.
        own, other = alarm.detector.members[0](alarm.classifier.tap(x, alarm.point)), member.detector_logit(x)
        expected = torch.maximum(own - alarm.detector.offsets[0], other - alarm.detector.offsets[1])
        assert torch.allclose(alarm.detector_logit(x), expected, atol=1e-5)


def test_one_threshold_is_calibrated_on_the_or(ctx):
    alarm, _, ckpt = load_detected_classifier(ctx.run_dir, "alarm")
    val_x, _, _ = detector_images(ctx, ctx.cfg.detectors[1], "val")
    parts = [scores(alarm.detector_logit, part, 200, torch.device("cpu"))
             for part in calibration_parts(val_x, ctx.cfg.calibration, ctx.cfg.seed)]
    # The threshold is the OR's own, set on the OR's scores (not a member's), and holds the OR to FPR there.
    assert ckpt.threshold == pytest.approx(calibrated_threshold(parts, FPR, ctx.cfg.calibration.rule), abs=1e-6)
    flagged = (torch.sigmoid(torch.cat(parts)) >= ckpt.threshold).double().mean().item()
    assert flagged <= FPR + 1e-9, flagged


def test_the_audit_counts_every_members_families_as_trained_on(ctx):
    assert {"pgd", "object-confined"} <= load_target(ctx, 20).trained_families
