import torch
from detect.tiny_run import TRAIN, make_ctx

from trainer import checkpoint
from trainer.audit.corruptions import corrupt
from trainer.detect import ensure_detector
from trainer.rundir import load_detected_classifier

CLEAN = {"name": "clean", "adversary": {"name": "iterative_linf", "eps": 8}, "point": 2, "mode": "static", **TRAIN}
NOISY = {**CLEAN, "name": "noisy", "negatives": ["gaussian_noise"], "negative_share": 0.5,
         "positives": [{"name": "iterative_linf", "eps": 16}]}


def _noise_fpr(ctx, name: str) -> float:
    """FPR at the detector's shipped threshold on test images under sensor noise (sigma 16: the middle severity)."""
    model, _, ckpt = load_detected_classifier(ctx.run_dir, name)
    noisy = torch.from_numpy(corrupt(ctx.dataset.test.images.numpy(), "gaussian_noise", 1, seed=5))
    with torch.no_grad():
        return (torch.sigmoid(model.detector_logit(noisy.float())) >= ckpt.threshold).float().mean().item()


def test_a_detector_trained_on_corrupted_negatives_false_alarms_less_on_sensor_noise(tiny_dataset, classifier_file, tmp_path):
    ctx = make_ctx(tmp_path / "run", classifier_file, tiny_dataset, {"detectors": [CLEAN, NOISY], "calibration": {"fpr": 0.05}})
    for spec in ctx.cfg.detectors:
        ensure_detector(ctx, spec)
    clean, noisy = _noise_fpr(ctx, "clean"), _noise_fpr(ctx, "noisy")
    assert noisy < clean - 0.2, (clean, noisy)


def test_calibration_on_corrupted_images_is_named_and_reports_the_clean_fpr(tiny_dataset, classifier_file, tmp_path):
    calibration = {"fpr": 0.05, "corruptions": ["gaussian_noise", "jpeg"]}
    ctx = make_ctx(tmp_path / "run", classifier_file, tiny_dataset, {"detectors": [NOISY], "calibration": calibration})
    ckpt = ensure_detector(ctx, ctx.cfg.detectors[0])
    used = ckpt.calibration_set
    assert used["name"] == "clean+corrupted" and used["corruptions"] == ["gaussian_noise", "jpeg"]
    assert used["severities"] == [1, 2]
    assert used["images"] == (1 + 2 * 2) * TRAIN["val_limit"]  # clean, and each corruption at severities 1 and 2
    # At most 5% of the 500 calibration images lie above the threshold, so at most 25 of the 100 clean ones.
    assert used["clean_val_fpr"] <= 0.25
    # Severity 3, left out of calibration, is reported beside it.
    assert set(used["val_fpr_by_severity"]) == {"1", "2", "3"}
    assert set(used["val_fpr_by_severity"]["3"]) == {"gaussian_noise", "jpeg"}
    saved = checkpoint.load(ctx.run_dir / "detectors" / "noisy" / "detector.pt")
    assert saved["calibration"]["corruptions"] == ["gaussian_noise", "jpeg"]  # the stamp: a new set retrains


def test_the_threshold_flags_at_most_its_fpr_of_clean_and_mildly_corrupted_validation_images(tiny_dataset, classifier_file,
                                                                                            tmp_path):
    """The shipped threshold, scored again here on the validation images under every corruption at severities 1-2."""
    corruptions = ["gaussian_noise", "jpeg", "contrast"]
    ctx = make_ctx(tmp_path / "run", classifier_file, tiny_dataset,
                   {"detectors": [NOISY], "calibration": {"fpr": 0.01, "corruptions": corruptions}})
    ensure_detector(ctx, ctx.cfg.detectors[0])
    model, _, ckpt = load_detected_classifier(ctx.run_dir, "noisy")
    val = ctx.dataset.val.images[: TRAIN["val_limit"]]
    images = torch.cat([val, *(torch.from_numpy(corrupt(val.numpy(), name, s, seed=ctx.cfg.seed + 1))
                               for name in corruptions for s in (0, 1))])
    with torch.no_grad():
        flagged = torch.sigmoid(model.detector_logit(images.float())) >= ckpt.threshold
    assert len(images) == 700 and flagged.sum().item() <= 7, flagged.sum().item()
