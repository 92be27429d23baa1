"""Issue 24's alarm on the tiny task: on a robustly trained classifier, a detector on the frame (AD(0)) trained
on attempts at many budgets flags PGD attempts that the earlier recipe (Fig. 1's detector on AD(2)) misses,
at thresholds calibrated the same way (clean and mildly corrupted validation images, 5% FPR)."""
import pytest
import torch

from common.config import load_config
from detect.tiny_run import make_ctx
from trainer import classify
from trainer.attacks import AttackSpec, run_attack
from trainer.audit.score import quantise
from trainer.config import Config
from trainer.detect import ensure_detector
from trainer.distributed import World
from trainer.rundir import load_detected_classifier

CORRUPTIONS = ["gaussian_noise", "jpeg", "contrast", "defocus_blur"]
TRAIN = {"batch_size": 32, "train_limit": 400, "val_limit": 200, "test_limit": 100, "eval_batch_size": 200,
         "negatives": CORRUPTIONS, "negative_share": 0.5, "negative_severities": [1, 2]}
PGD = {"name": "pgd", "steps": 5, "restarts": 1}
# The earlier recipe (configs/demo.yaml before issue 24), at the tiny task's scale: twins of every image at every budget.
FEATURES = {"name": "features", "adversary": {"name": "iterative_linf", "eps": 8}, "point": 2, "mode": "static",
            "positives": [{**PGD, "eps": 16}, {**PGD, "eps": 32}], "epochs": 8, "lr": 1e-3, **TRAIN}
# Issue 24's: a CNN on the frame, positives are attempts at budgets from 4 to 32, one twin per image, selected on TPR.
FRAME = {"name": "frame", "arch": "frame", "point": 0, "adversary": {**PGD, "eps": 8},
         "positives": [{**PGD, "eps": e} for e in (4, 16, 32)], "twins": "one", "select": "tpr", "epochs": 8,
         "lr": 2e-3, "betas": [0.9, 0.999], "lr_schedule": "onecycle", **TRAIN}


@pytest.fixture(scope="module")
def robust_run(tiny_dataset, tmp_path_factory):
    """Both detectors on a classifier adversarially trained (FGSM-RS, eps 16) on the tiny task."""
    root = tmp_path_factory.mktemp("alarm")
    cfg = load_config(Config, "configs/demo.yaml", [
        "train.epochs=8", "train.batch_size=50", "train.lr=0.05", "train.lr_milestones=[100]", "device=cpu",
        "train.adversarial={method: fgsm_rs, eps: 16, guard_images: 100}", f"run_dir={root / 'classifier'}"])
    cfg.run_dir.mkdir(parents=True)
    classify.train_classifier(cfg, tiny_dataset, torch.device("cpu"), World())
    ctx = make_ctx(root / "run", cfg.run_dir / "classifier.pt", tiny_dataset,
                   {"detectors": [FEATURES, FRAME], "calibration": {"fpr": 0.05, "corruptions": CORRUPTIONS}})
    for spec in ctx.cfg.detectors:
        ensure_detector(ctx, spec)
    return ctx


def attempts_flagged(ctx, name: str, eps: float) -> float:
    """Share of PGD-10 outputs (fooling or not) on the test images that reach the detector's shipped threshold."""
    model, _, ckpt = load_detected_classifier(ctx.run_dir, name)
    x, y = ctx.dataset.test.images.float(), ctx.dataset.test.labels
    torch.manual_seed(0)
    adv = quantise(run_attack(AttackSpec(name="pgd", eps=eps, steps=10, restarts=1), model.classifier, x, y)).float()
    with torch.no_grad():
        return (torch.sigmoid(model.detector_logit(adv)) >= ckpt.threshold).float().mean().item()


def test_the_frame_detector_flags_attempts_the_feature_detector_misses(robust_run):
    # Measured 1.00 vs 0.38 at eps 8 (at eps 32 both flag nearly all: the robust features do carry large perturbations).
    frame, features = attempts_flagged(robust_run, "frame", 8), attempts_flagged(robust_run, "features", 8)
    assert frame >= features + 0.3 and frame >= 0.8, (frame, features)
