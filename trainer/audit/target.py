"""What the audit attacks: the run's deployed classifier + detector at its shipped threshold, and held-out images."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from common.config import ConfigError
from trainer import checkpoint
from trainer.attacks.registry import family
from trainer.config import Config, DetectorSpec
from trainer.detect import attach
from trainer.detect.stage import classifier_sha256
from trainer.familiarity import Gate
from trainer.detector_checkpoint import DetectorCheckpoint
from trainer.models.detector import DetectedClassifier


@dataclass
class Target:
    """The deployed model and the test images it is audited on (uint8 [N, C, H, W] and labels, on the model's device)."""

    model: DetectedClassifier  # eval mode, frozen
    detector: str
    threshold: float  # alert when p_adv >= threshold
    threshold_fpr: float
    classifier_sha256: str
    detector_sha256: str
    x: torch.Tensor
    y: torch.Tensor
    first_image: int  # index of x[0] in the run's test split
    evaluated_images: int  # the first test images the detectors' own evaluation scored
    calibration: str  # which validation images the threshold was set on: "clean" or "clean+corrupted"
    unfamiliar: Optional[Gate] = None  # the agent's familiarity gate, where the run has one
    trained_families: frozenset[str] = frozenset()  # families of perturbation among the detector's training positives


def audited_detector(cfg: Config) -> tuple[str, Path]:
    """Name and detector.pt of the detector `cfg.audit` audits; `ConfigError` unless it is set and trained."""
    name = cfg.audit.detector or cfg.deploy
    if name is None:
        raise ConfigError(f"{cfg.run_dir}: the run deploys no detector (config `deploy` is unset): nothing to audit")
    path = Path(cfg.run_dir) / "detectors" / name / "detector.pt"
    if not path.is_file():
        raise ConfigError(f"{cfg.run_dir}: the deployed detector {name!r} is not trained ({path} missing): run `trainer fit` first")
    return name, path


def load_target(ctx, images: int) -> Target:
    """The detector `audit.detector` (default: the run's `deploy`; trained, not retrained here) on its
    classifier, and the last `images` images of the test split.

    The classifier trains on the train split and selects its epoch on val; detectors train, select
    and calibrate their threshold on train/val. Test images appear only in the detectors' reported
    evaluation, which scores the *first* `test_limit` of them: taking the audit's images from the end
    keeps the two apart whenever the test split is large enough (`overlap` in the result says so).
    """
    name, path = audited_detector(ctx.cfg)
    ckpt = DetectorCheckpoint.load(path, ctx.device)
    spec = next(d for d in ctx.cfg.detectors if d.name == name)
    model = attach(ctx, spec, ckpt.state_dict, ckpt.members).requires_grad_(False)
    test = ctx.dataset.test
    first = max(len(test) - images, 0)
    evaluated = max([len(test) if d.test_limit is None else min(d.test_limit, len(test)) for d in ctx.cfg.detectors])
    fitted = ctx.files.familiarity(name)
    gate = Gate(model.classifier, checkpoint.load(fitted, ctx.device)).to(ctx.device) if fitted.is_file() else None
    return Target(model, name, ckpt.threshold, ckpt.threshold_fpr, classifier_sha256(ctx),
                  checkpoint.sha256(path), test.images[first:].to(ctx.device), test.labels[first:].to(ctx.device),
                  first, evaluated, (ckpt.calibration_set or {}).get("name", "clean"), gate,
                  frozenset().union(*(trained_families(d) for d in ctx.cfg.detectors if d is spec or d.name in spec.either)))


def trained_families(spec: DetectorSpec) -> frozenset[str]:
    """The families of perturbation (registry FAMILIES) a detector saw as positives: its adversary, its
    positives and, in adaptive mode, its paper adversary."""
    return frozenset(family(a.name) for a in (spec.adversary, *spec.positives, spec.paper_adversary) if a is not None)
