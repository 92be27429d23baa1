import json

import pytest
import torch
from detect.tiny_run import TRAIN, make_ctx

from trainer import checkpoint
from trainer.attacks import AttackSpec, run_attack
from trainer.detect import attach, ensure_detector, run_detector_stage
from trainer.detect import stage as stage_module
from trainer.detect.evaluate import detectability
from trainer.rundir import load_detected_classifier

SMALL = {"train_limit": 64, "val_limit": 32, "test_limit": 32}  # for tests of bookkeeping, not of learning
STATIC = {"name": "static", "adversary": {"name": "iterative_linf", "eps": 8}, "point": 2, "mode": "static", **TRAIN}
# Dynamic training from scratch does not take off within a unit test's budget, so this one hardens the
# static detector (init_from) with the dynamic adversary. Adversarial training needs steps: after 12
# epochs on 400 images it was still near chance against sigma >= 0.5, after 20 it detected > 95%.
DYNAMIC = {"name": "dynamic", "adversary": {"name": "dynamic", "eps": 8, "alpha": 4}, "point": 2, "mode": "dynamic",
           "init_from": "static", **TRAIN, "train_limit": 400, "epochs": 20, "lr": 2e-3, "betas": [0.9, 0.999]}
# Adaptive training hardens the static detector against the adaptive attack on itself (a small
# lr: with BN in eval mode larger Adam steps flattened the detector, docs/RESULTS.md).
ADAPTIVE = {"name": "adaptive", "adversary": {"name": "adaptive", "eps": 8, "threshold": 0.5, "steps": 5, "restarts": 1},
            "point": 2, "mode": "adaptive", "init_from": "static", **TRAIN, "epochs": 2, "lr": 1e-5, "betas": [0.9, 0.999],
            "eps_range": [4, 12], "paper_adversary": {"name": "iterative_linf", "eps": 8}, "paper_share": 0.25}


@pytest.fixture(scope="module")
def run(tiny_dataset, classifier_file, tmp_path_factory):
    ctx = make_ctx(tmp_path_factory.mktemp("run"), classifier_file, tiny_dataset,
                   {"detectors": [STATIC, DYNAMIC], "deploy": "static", "calibration": {"fpr": 0.05}})
    run_detector_stage(ctx)
    return ctx


def test_static_detector_separates_clean_from_perturbed(run):
    ckpt = checkpoint.load(run.run_dir / "detectors" / "static" / "detector.pt")
    assert ckpt["detectability"] > 0.8 and ckpt["auroc"] > 0.85  # chance is 0.5


def test_detector_checkpoint_follows_the_run_directory_contract(run):
    d = run.run_dir / "detectors" / "static"
    model, _, ckpt = load_detected_classifier(run.run_dir, "static")
    assert ckpt.name == "static" and ckpt.point == 2 and ckpt.mode == "static"
    assert ckpt.adversary == {"name": "iterative_linf", "eps": 8.0}
    assert [t.fpr for t in ckpt.thresholds] == [0.01, 0.05] and ckpt.threshold_fpr == 0.05
    assert ckpt.threshold == ckpt.thresholds[1].threshold and 0 < ckpt.threshold < 1
    assert len(ckpt.classifier_sha256) == 64
    ev = checkpoint.load(d / "eval.pt")
    assert ev["clean"].dtype == torch.uint8 and ev["labels"].dtype == torch.int64
    assert ev["adversarial"].shape == ev["clean"].shape and len(ev["labels"]) == 100
    # The stored detectability is what the loaded model reproduces on held-out twins.
    _, p_adv = model(ev["adversarial"].float())
    assert (p_adv > 0).float().mean() > 0.7
    assert len((d / "metrics.jsonl").read_text().splitlines()) == TRAIN["epochs"]
    assert not (d / "train_state.pt").exists()


def test_calibrated_threshold_gives_the_requested_fpr_on_validation(run):
    report = json.loads((run.run_dir / "detectors" / "static" / "evaluation.json").read_text())
    for t in report["thresholds"]:
        assert t["val_fpr"] <= t["fpr"] and t["val_fpr"] >= t["fpr"] - 1 / report["val_images"]


def _vs_dynamic_adversary(ctx, name, sigmas=(0.3, 0.5, 0.7)):
    spec = next(d for d in ctx.cfg.detectors if d.name == name)
    model = attach(ctx, spec, checkpoint.load(ctx.run_dir / "detectors" / name / "detector.pt")["state_dict"])
    x, y = ctx.dataset.test.images[:100], ctx.dataset.test.labels[:100]
    results = []
    for sigma in sigmas:
        adv = run_attack(AttackSpec(name="dynamic", eps=8, alpha=4, sigma=sigma), ctx.classifier, x, y, model.detector_logit)
        results.append(detectability(model.detector_logit, x, adv, 200, ctx.device))
    return sum(results) / len(results)


def test_dynamic_training_learns_to_detect_its_adaptive_adversary(run):
    ckpt = checkpoint.load(run.run_dir / "detectors" / "dynamic" / "detector.pt")
    assert ckpt["mode"] == "dynamic" and ckpt["adversary"] == {"name": "dynamic", "eps": 8.0, "alpha": 4.0}
    # Detectability against the dynamic adversary (a sigma drawn per image) attacking this very detector.
    assert ckpt["val_detectability"] > 0.6 and ckpt["detectability"] > 0.6  # chance is 0.5


def test_dynamic_detector_resists_the_dynamic_adversary_better_than_the_static_one(run):
    static, dynamic = _vs_dynamic_adversary(run, "static"), _vs_dynamic_adversary(run, "dynamic")
    assert dynamic > static + 0.1, (static, dynamic)


def test_adaptive_training_steps_with_bn_in_eval_mode_and_keeps_its_base_in_the_race(tiny_dataset, classifier_file, tmp_path,
                                                                                   monkeypatch):
    base = {**STATIC, **SMALL, "epochs": 1}
    hardened = {**ADAPTIVE, **SMALL, "epochs": 1}
    ctx = make_ctx(tmp_path, classifier_file, tiny_dataset, {"detectors": [base, hardened]})
    attached, bn_training = [], {"static": [], "adaptive": []}
    real_attach, real_step = stage_module.attach, torch.optim.Adam.step
    monkeypatch.setattr(stage_module, "attach", lambda c, spec, *a: attached.append((spec.name, real_attach(c, spec, *a))) or attached[-1][1])

    def step(self, *args, **kwargs):
        name, model = attached[-1]
        bn_training[name].append(any(m.training for m in model.detector.modules() if isinstance(m, torch.nn.BatchNorm2d)))
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    run_detector_stage(ctx)
    # Static training normalises with batch statistics; adaptive training steps the same eval-mode network it attacks.
    assert bn_training["static"] and all(bn_training["static"])
    assert bn_training["adaptive"] and not any(bn_training["adaptive"])
    ckpt = checkpoint.load(tmp_path / "detectors" / "adaptive" / "detector.pt")
    epochs = [json.loads(line) for line in (tmp_path / "detectors" / "adaptive" / "metrics.jsonl").read_text().splitlines()]
    # Its base detector competed in model selection: the kept one validates at least as well as every epoch.
    assert ckpt["val_detectability"] >= max(e["val_detectability"] for e in epochs)
    assert ckpt["mode"] == "adaptive" and ckpt["adversary"]["name"] == "adaptive"


def test_rerunning_a_finished_stage_does_no_work(run, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("retrained a finished detector")

    monkeypatch.setattr(stage_module, "train_detector", fail)
    monkeypatch.setattr(stage_module, "twins", fail)
    run_detector_stage(run)


def test_interrupted_training_resumes_at_the_next_epoch(tiny_dataset, classifier_file, tmp_path, monkeypatch):
    spec = {**STATIC, **SMALL, "epochs": 2}
    ctx = make_ctx(tmp_path, classifier_file, tiny_dataset, {"detectors": [spec]})
    real_save = checkpoint.save

    def save_then_stop(obj, path):
        real_save(obj, path)
        if path.name == "train_state.pt":
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run_detector_stage(ctx)
    monkeypatch.setattr(checkpoint, "save", real_save)
    run_detector_stage(ctx)
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "detectors" / "static" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_a_changed_spec_retrains(tiny_dataset, classifier_file, tmp_path):
    ctx = make_ctx(tmp_path, classifier_file, tiny_dataset, {"detectors": [{**STATIC, **SMALL, "epochs": 1}]})
    first = ensure_detector(ctx, ctx.cfg.detectors[0])
    ctx.cfg = ctx.cfg.model_copy(update={"detectors": [ctx.cfg.detectors[0].model_copy(update={"epochs": 2})]})
    second = ensure_detector(ctx, ctx.cfg.detectors[0])
    assert first.spec["epochs"] == 1 and second.spec["epochs"] == 2


def test_retraining_the_base_detector_retrains_the_one_hardened_from_it(tiny_dataset, classifier_file, tmp_path, monkeypatch):
    base = {**STATIC, **SMALL, "epochs": 1}
    hardened = {**DYNAMIC, **SMALL, "epochs": 1}
    ctx = make_ctx(tmp_path, classifier_file, tiny_dataset, {"detectors": [base, hardened]})
    run_detector_stage(ctx)
    trained = []
    real_train = stage_module.train_detector
    monkeypatch.setattr(stage_module, "train_detector", lambda model, spec, *a: trained.append(spec.name) or real_train(model, spec, *a))
    ctx.cfg = ctx.cfg.model_copy(update={"detectors": [ctx.cfg.detectors[0].model_copy(update={"epochs": 2}), ctx.cfg.detectors[1]]})
    run_detector_stage(ctx)
    assert trained == ["static", "dynamic"]
