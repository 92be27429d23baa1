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
        return (torch.sigmoid(model.detector_logit(noisy.float())) >= ckpt["threshold"]).float().mean().item()


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
    used = ckpt["calibration_set"]
    assert used["name"] == "clean+corrupted" and used["corruptions"] == ["gaussian_noise", "jpeg"]
    assert used["images"] == 2 * TRAIN["val_limit"]
    # At most 5% of the 200 calibration images lie above the threshold, so at most 10 of the 100 clean ones.
    assert used["clean_val_fpr"] <= 0.1
    saved = checkpoint.load(ctx.run_dir / "detectors" / "noisy" / "detector.pt")
    assert saved["calibration"]["corruptions"] == ["gaussian_noise", "jpeg"]  # the stamp: a new set retrains
