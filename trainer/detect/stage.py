"""The detector stage of `trainer fit`: train, evaluate and calibrate each configured detector; fit its familiarity gate.

Every detector lives in run_dir/detectors/<name>/. `detector.pt` marks it done; it records the
spec and the classifier's hash it was made with, so a changed config retrains it and an
unchanged one is only loaded. Until then `spec.json` and `train_state.pt` let an
interrupted training resume at its next epoch.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import torch

from trainer import checkpoint, familiarity, stamped
from trainer.audit.corruptions import SEVERITIES, corrupt, through_camera
from trainer.config import CalibrationConfig, DetectorSpec, on_camera_frames
from trainer.detect.data import split_images, twins
from trainer.detect.evaluate import calibrated_threshold, detectability, alert_rate, scores, summary
from trainer.attacks import cached_attack
from trainer.detect.train import TrainingData, attacked_set, benign_negatives, train_detector
from trainer.detector_checkpoint import DetectorCheckpoint
from trainer.models.detector import DetectedClassifier, Either
from trainer.rundir import RunContext

EVAL_IMAGES = 256  # test images in eval.pt, for the exporter's parity check
ADAPTIVE_ONLY = {"eps_range", "eps_ramp_epochs", "paper_adversary", "paper_share"}
WIDENED = {"positives", "negatives", "negative_share"}  # unset in every detector made before they existed
LATER = {"negative_severities", "twins", "select", "lr_schedule", "scene_share", "negative_weights", "camera_share", "either", "width"}  # left out of stamps at their defaults, as WIDENED


def run_detector_stage(ctx: RunContext) -> None:
    """Make every detector of `ctx.cfg.detectors` that is not already done (rank 0 only)."""
    if not ctx.is_main:
        return
    for spec in ctx.cfg.detectors:
        ckpt = ensure_detector(ctx, spec)
        print(f"detector {spec.name}: detectability {ckpt.detectability:.4f}  AUROC {ckpt.auroc:.4f}  "
              f"threshold {ckpt.threshold:.4f} at FPR {ckpt.threshold_fpr}")
        fam = ensure_familiarity(ctx, spec, classifier_sha256(ctx))
        print(f"detector {spec.name}: familiarity threshold {fam['threshold']:.4g} at AD({fam['point']}), "
              f"{fam['val_rate']:.2%} of {fam['val_images']} clean validation images unfamiliar")


def classifier_sha256(ctx: RunContext) -> str:
    """Hash of the run's classifier.pt, which every detector records and checks."""
    return checkpoint.sha256(ctx.files.classifier)


def attach(ctx: RunContext, spec: DetectorSpec, state_dict: dict | None = None, members: int = 1) -> DetectedClassifier:
    """The run's frozen classifier with a (fresh or given) detector at AD(spec.point) (an `Either` of `members`),
    on the run's device."""
    if spec.point >= len(ctx.classifier.tap_channels):
        raise ValueError(f"detector {spec.name}: point {spec.point} exceeds the classifier's AD(0)..AD({len(ctx.classifier.tap_channels) - 1})")
    torch.manual_seed(ctx.cfg.seed)
    return DetectedClassifier.build(ctx.classifier, spec.arch, spec.point, state_dict, members, spec.width)


def ensure_detector(ctx: RunContext, spec: DetectorSpec) -> DetectorCheckpoint:
    """The `detector.pt` of `spec`, training and evaluating it first unless already done."""
    out = ctx.files.detector_dir(spec.name)
    # Fig. 1's detector was the only one before `arch` existed: leaving its default out of the
    # stamp keeps the detectors of earlier runs valid instead of retraining them all.
    # Likewise the adaptive mode's settings stay out of other modes' stamps.
    exclude = ({"arch"} if spec.arch == "fig1" else set()) | (set() if spec.mode == "adaptive" else ADAPTIVE_ONLY)
    exclude |= WIDENED if not (spec.positives or spec.negatives) else set()
    exclude |= at_default(spec, LATER)
    exclude |= {"familiarity_point", "familiar_attempts"}  # the familiarity stage's own stamp holds them
    spec_json = spec.model_dump(mode="json", exclude=exclude)
    calibration = ctx.cfg.calibration
    stamp = {"spec": spec_json, "classifier_sha256": classifier_sha256(ctx),
             "calibration": calibration.model_dump(mode="json", exclude=calibration_left_out(calibration))}
    if spec.init_from is not None:  # a hardened detector is stale once the one it starts from changes
        stamp["init_from_sha256"] = checkpoint.sha256(ctx.files.detector(spec.init_from))
    if spec.either:  # and an OR once one of its members does
        stamp["either_sha256"] = [checkpoint.sha256(ctx.files.detector(name)) for name in spec.either]
    done = ctx.files.detector(spec.name)
    saved = stamped.load(done, stamp, key=None, old=_unset_dropped, device=ctx.device)
    if saved is not None:
        return DetectorCheckpoint.from_dict(saved, str(done))
    begun = out / "spec.json"  # the stamp alone, while training is under way
    if begun.exists() and stamped.load(begun, stamp, key=None, old=_unset_dropped) is None:
        print(f"detector {spec.name}: config or classifier changed, training it again")
        shutil.rmtree(out)
    stamped.save(begun, {}, stamp, key=None)

    data = training_data(ctx, spec)
    init = None if spec.init_from is None else DetectorCheckpoint.load(ctx.files.detector(spec.init_from), ctx.device).state_dict
    model = attach(ctx, spec, init)
    trained = train_detector(model, spec, data, out, ctx.cfg.seed, ctx.cfg.calibration)
    if spec.either:
        model = either(ctx, spec, model, data.val_x)
        trained["state_dict"] = model.detector.state_dict()
    test_x, test_y = split_images(ctx, "test", spec.test_limit)
    if spec.mode == "static":
        test_adv = twins(ctx, spec.adversary, "test", spec.test_limit, spec.eval_batch_size)
    else:
        test_adv = attacked_set(model, spec, test_x, test_y, ctx.cfg.seed + 1)
    report = evaluate(model, spec, test_x, test_adv, data.val_x, ctx.cfg.calibration, ctx.device, ctx.cfg.seed)
    ckpt = DetectorCheckpoint(
        name=spec.name, point=spec.point, arch=spec.arch, members=1 + len(spec.either), width=spec.width,
        in_channels=ctx.classifier.tap_channels[spec.point],
        adversary={"name": spec.adversary.name, **spec.adversary.params()}, mode=spec.mode,
        state_dict={k: v.cpu() for k, v in trained["state_dict"].items()},
        **{k: v for k, v in trained.items() if k != "state_dict"},  # the validation number it was selected by
        thresholds=[{"fpr": t["fpr"], "threshold": t["threshold"]} for t in report["thresholds"]],
        **{k: report[k] for k in ("threshold", "threshold_fpr", "detectability", "auroc")},
        calibration_set=report["calibration"],  # "calibration" is the stamp's config
    )
    (out / "evaluation.json").write_text(json.dumps(report, indent=1))
    n = min(EVAL_IMAGES, len(test_x))
    # A copy, even on the CPU: a slice would save the whole test split it views.
    checkpoint.save({"clean": test_x[:n].to("cpu", copy=True), "adversarial": test_adv[:n].to("cpu", torch.float32, copy=True),
                     "labels": test_y[:n].to("cpu", copy=True)},
                    ctx.files.eval_images(spec.name))
    saved = stamped.save(done, ckpt.to_dict(), stamp, key=None)
    (out / "train_state.pt").unlink(missing_ok=True)
    return DetectorCheckpoint.from_dict(saved, str(done))


def ensure_familiarity(ctx: RunContext, spec: DetectorSpec, classifier_sha: str) -> dict:
    """RUN/detectors/<spec.name>/familiarity.pt (`familiarity.fit`), fitted unless done for this classifier
    (`classifier_sha`, its sha256), tap and image sets."""
    point = spec.point if spec.familiarity_point is None else spec.familiarity_point
    stamp = {"classifier_sha256": classifier_sha, "point": point, "train_limit": spec.train_limit,
             "val_limit": spec.val_limit, "fpr": familiarity.FPR, "grid": familiarity.GRID}
    if spec.familiar_attempts:
        stamp["attempts"] = [a.model_dump(mode="json") for a in [spec.adversary, *spec.positives]]
    if spec.camera_share:  # left out at 0, so gates fitted before it existed stay valid
        stamp["camera_share"] = spec.camera_share

    def compute() -> dict:
        # The detector's own images, camera frames among them: a frame as a camera delivers it is familiar.
        train_x, train_y, _ = detector_images(ctx, spec, "train")
        val_x, _, _ = detector_images(ctx, spec, "val")
        if spec.familiar_attempts:
            # The detector's own training twins (cached): a perturbation must not make a scene unfamiliar, or
            # the gate would hide the largest attempts from the alarm (at AD(2), 74% of l_inf 32 attempts).
            attempts = assigned_twins(ctx, [spec.adversary, *spec.positives], "train", spec, ctx.cfg.seed)[0]
            train_x, train_y = torch.cat([train_x.float(), attempts]), torch.cat([train_y, train_y])
        return familiarity.fit(ctx.classifier, point, train_x, train_y, val_x, spec.eval_batch_size, ctx.device)

    return stamped.cached(ctx.files.familiarity(spec.name), stamp, compute, key=None)


def either(ctx: RunContext, spec: DetectorSpec, model: DetectedClassifier, val_x: torch.Tensor) -> DetectedClassifier:
    """`model`'s trained detector OR the trained detectors `spec.either`, each shifted by its own threshold's logit
    (its own calibrated as theirs were, on `val_x`'s calibration set), so that each alone rings at logit 0."""
    calibration = ctx.cfg.calibration
    parts = [scores(model.detector_logit, part, spec.eval_batch_size, ctx.device)
             for part in calibration_parts(val_x, calibration, ctx.cfg.seed)]
    members, thresholds = [model.detector], [calibrated_threshold(parts, calibration.fpr, calibration.rule)]
    for name in spec.either:
        ckpt = DetectorCheckpoint.load(ctx.files.detector(name), ctx.device)
        members.append(attach(ctx, next(d for d in ctx.cfg.detectors if d.name == name), ckpt.state_dict).detector)
        thresholds.append(ckpt.threshold)
    combined = Either(members).to(ctx.device)
    combined.offsets.copy_(torch.logit(torch.tensor(thresholds, dtype=torch.float64)).float())
    return DetectedClassifier(ctx.classifier, combined.eval(), spec.point)


def at_default(config, names: set[str]) -> set[str]:
    """Those of `names` (settings added after detectors were first stamped) that `config` leaves at their
    defaults: left out of stamps, so detectors made before the settings existed stay valid."""
    return {k for k in names if getattr(config, k) == type(config).model_fields[k].default}


def calibration_left_out(calibration: CalibrationConfig) -> set[str]:
    """Calibration settings left out of detector stamps: severities without corruptions (they change
    nothing) and `rule` at its default."""
    return (set() if calibration.corruptions else {"corruptions", "severities"}) | at_default(calibration, {"rule"})


def _unset_dropped(stamp: dict) -> dict:
    """`stamp` with its adversary's unset (None) parameters left out, as AttackSpec dumps them today;
    stamps written before it listed every attack's parameters, mostly as None."""
    adversary = (stamp.get("spec") or {}).get("adversary")
    if not isinstance(adversary, dict):
        return stamp
    return {**stamp, "spec": {**stamp["spec"], "adversary": {k: v for k, v in adversary.items() if v is not None}}}


def training_data(ctx: RunContext, spec: DetectorSpec) -> TrainingData:
    """Train/validation images of `spec`, with precomputed adversarial twins of its static adversaries
    (static mode's `adversary`, or adaptive mode's static `paper_adversary`, and `positives`): of every
    training image by each (`twins: all`) or by one drawn per image (`twins: one`), and of every
    validation image by one drawn per image. Validation negatives have a share corrupted as in training
    (`negatives`), drawn once from the seed; selection by `tpr` gets the calibration set."""
    train_x, train_y, _ = detector_images(ctx, spec, "train")
    val_x, val_y, _ = detector_images(ctx, spec, "val")
    data = TrainingData(train_x, train_y, val_x, val_y)
    static = spec.adversary if spec.mode == "static" else spec.paper_adversary
    if static is not None and static.name != "dynamic":
        adversaries = [static, *spec.positives]
        if spec.twins == "all":
            data.train_adv = torch.stack([twins(ctx, a, "train", spec.train_limit, spec.eval_batch_size) for a in adversaries])
        else:
            data.train_adv = assigned_twins(ctx, adversaries, "train", spec, ctx.cfg.seed)[0][None]
        if spec.mode == "static":
            data.val_adv, data.val_adversary = assigned_twins(ctx, adversaries, "val", spec, ctx.cfg.seed)
    if spec.benign:
        data.val_negatives = benign_negatives(val_x, spec, np.random.default_rng(ctx.cfg.seed))
    if spec.select == "tpr":
        data.calibration = calibration_parts(val_x, ctx.cfg.calibration, ctx.cfg.seed)
    return data


def assigned_twins(ctx: RunContext, adversaries: list, split: str, spec: DetectorSpec, seed: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """One twin of each image of `split` (up to the spec's limit), by an adversary of `adversaries` drawn per
    image from `seed`: the twins [N, C, H, W] and which adversary made each [N]. Each adversary runs once, on
    its share of the images, cached like `twins`."""
    x, y, camera = detector_images(ctx, spec, split)
    gen = torch.Generator().manual_seed(seed)
    which = torch.randint(len(adversaries), (len(x),), generator=gen).to(x.device)
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    for k, adversary in enumerate(adversaries):
        for on_camera in (False, True):
            idx = ((which == k) & (camera == on_camera)).nonzero().squeeze(1)
            if len(idx):
                attack = on_camera_frames(adversary) if on_camera else adversary
                out[idx] = cached_attack(ctx.files.attacks, attack, ctx.classifier, x[idx], y[idx],
                                         split=f"{split}{len(x)}-{k}{'-camera' if on_camera else ''}",
                                         batch_size=spec.eval_batch_size, progress=True).float()
    return out, which


def detector_images(ctx: RunContext, spec: DetectorSpec, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The images of `split` a detector learns from (up to the spec's limit), their labels, and which of them
    [N] bool went through the camera model (a share `spec.camera_share`, drawn from the seed): those images, and
    so their twins and their corrupted copies, are frames as a camera delivers them."""
    x, y = split_images(ctx, split, spec.train_limit if split == "train" else spec.val_limit)
    camera = torch.rand(len(x), generator=torch.Generator().manual_seed(ctx.cfg.seed)) < spec.camera_share
    if camera.any():
        x = x.clone()
        x[camera.to(x.device)] = torch.from_numpy(through_camera(x[camera.to(x.device)].cpu().numpy(), ctx.cfg.seed)).to(x.device)
    return x, y, camera.to(x.device)


def calibration_parts(val_x: torch.Tensor, calibration: CalibrationConfig, seed: int) -> list[torch.Tensor]:
    """The images thresholds are calibrated on, part by part: the validation images, and with
    `calibration.corruptions` a copy of them under each at each of `calibration.severities`."""
    return [val_x, *(corrupted(val_x, name, s, seed) for name in calibration.corruptions for s in calibration.severities)]


def corrupted(x: torch.Tensor, name: str, severity: int, seed: int) -> torch.Tensor:
    """uint8 images `x` under corruption `name` at `severity` (1-based), the noise drawn from `seed`, on `x`'s device."""
    return torch.from_numpy(corrupt(x.cpu().numpy(), name, severity - 1, seed + 1)).to(x.device)


def evaluate(model: DetectedClassifier, spec: DetectorSpec, test_x: torch.Tensor, test_adv: torch.Tensor,
             val_x: torch.Tensor, calibration: CalibrationConfig, device: torch.device, seed: int = 0) -> dict:
    """Everything an operator needs from a trained detector, as JSON-ready primitives.

    Detectability (footnote 3), ROC/AUROC and TPR at fixed FPRs on the test twins; alert
    thresholds on p_adv calibrated on `calibration_parts` (clean validation images, with
    corrupted copies if configured) by `calibration.rule`, with the FPR they give there and on
    the clean validation images alone, and the FPR/TPR they give on the test set.
    """
    fn, bs = model.detector_logit, spec.eval_batch_size
    clean, adv = scores(fn, test_x, bs, device), scores(fn, test_adv, bs, device)
    part_scores = [scores(fn, part, bs, device) for part in calibration_parts(val_x, calibration, seed)]
    val, calib = part_scores[0], torch.cat(part_scores)
    fprs = sorted(set(calibration.report_fprs) | {calibration.fpr})
    thresholds = []
    for f in fprs:
        t = calibrated_threshold(part_scores, f, calibration.rule)
        thresholds.append({"fpr": f, "threshold": t, "val_fpr": alert_rate(calib, t), "val_clean_fpr": alert_rate(val, t),
                           "test_fpr": alert_rate(clean, t), "test_tpr": alert_rate(adv, t)})
    threshold = next(t["threshold"] for t in thresholds if t["fpr"] == calibration.fpr)
    severities = ", ".join(str(s) for s in calibration.severities)
    described = (f"{len(val_x)} clean validation images and a copy of each under every one of "
                 f"{', '.join(calibration.corruptions)} at severities {severities}" if calibration.corruptions
                 else f"{len(val_x)} clean validation images")
    if calibration.rule == "each":
        described += f"; at most {calibration.fpr:g} flagged in each of these sets"
    # Every severity, those left out of calibration included, so a harsher day's false alarms are never silent.
    calibrated = dict(zip([(name, s) for name in calibration.corruptions for s in calibration.severities], part_scores[1:]))
    by_severity = {str(s): {name: alert_rate(calibrated[name, s] if (name, s) in calibrated
                                             else scores(fn, corrupted(val_x, name, s, seed), bs, device), threshold)
                            for name in calibration.corruptions} for s in range(1, SEVERITIES + 1)}
    return {"detectability": detectability(fn, test_x, test_adv, bs, device), **summary(clean, adv, fprs),
            "thresholds": thresholds, "threshold": threshold, "threshold_fpr": calibration.fpr,
            "calibration": {"name": "clean+corrupted" if calibration.corruptions else "clean", "set": described,
                            "rule": calibration.rule,
                            "corruptions": list(calibration.corruptions), "severities": list(calibration.severities),
                            "images": len(calib), "val_fpr_by_severity": by_severity,
                            "clean_val_fpr": alert_rate(val, threshold)},
            "test_images": len(test_x), "val_images": len(val_x)}
