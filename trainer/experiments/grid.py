"""What every experiment shares: grid detectors by attack and depth, test sets, cached result tables."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch

from trainer import stamped
from trainer.attacks import AttackSpec, attack_key
from trainer.classify import accuracy
from trainer.config import AdversaryGrid, DetectorSpec, DetectorTraining
from trainer.detect import attach, ensure_detector
from trainer.detect.data import split_images, twins
from trainer.detect.evaluate import detectability
from trainer.detect.stage import classifier_sha256
from trainer.models.detector import DetectedClassifier


def out_dir(ctx) -> Path:
    return ctx.files.experiments


def cached_result(ctx, name: str, compute: Callable[[], dict]) -> dict:
    """`compute()` stored as experiments/<name>.json, reused while the experiments config and classifier are unchanged."""
    stamp = {"experiments": ctx.cfg.experiments.model_dump(mode="json"), "classifier_sha256": classifier_sha256(ctx)}
    return stamped.cached(out_dir(ctx) / f"{name}.json", stamp, compute)


def label(spec: AttackSpec) -> str:
    """How an attack appears in figures and tables, e.g. 'iterative_l2 eps=40'."""
    eps = spec.params().get("eps")
    return spec.name if eps is None else f"{spec.name} eps={eps:g}"


def grid_detector_spec(ctx, adversary: AttackSpec, point: int, mode: str = "static",
                       train: Optional[DetectorTraining] = None) -> DetectorSpec:
    """The spec of the experiments' detector for `adversary` at AD(point); the name is the cache key Figs. 2-5 share.

    `train` replaces `experiments.train`.
    """
    spec = DetectorSpec(name="pending", adversary=adversary, point=point, mode=mode,
                        **(train or ctx.cfg.experiments.train).model_dump())
    return spec.model_copy(update={"name": f"x-{mode}-{attack_key(spec.adversary)}-ad{point}"})


def grid_detector(ctx, adversary: AttackSpec, point: int) -> DetectedClassifier:
    """The trained static detector for `adversary` at AD(point) (trained first if needed), attached to the classifier."""
    spec = grid_detector_spec(ctx, adversary, point)
    return attach(ctx, spec, ensure_detector(ctx, spec).state_dict)


def test_set(ctx, limit: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The experiments' clean test images and labels."""
    return split_images(ctx, "test", limit or ctx.cfg.experiments.train.test_limit)


def test_twins(ctx, adversary: AttackSpec) -> torch.Tensor:
    """Adversarial twins of `test_set(ctx)` under `adversary` (cached)."""
    t = ctx.cfg.experiments.train
    return twins(ctx, adversary, "test", t.test_limit, t.eval_batch_size)


def classifier_accuracy(ctx, images: torch.Tensor, labels: torch.Tensor) -> float:
    return accuracy(ctx.classifier, images, labels, ctx.cfg.experiments.train.eval_batch_size)


def detectability_on(ctx, model: DetectedClassifier, adversary: AttackSpec) -> float:
    """Footnote-3 detectability of `model` on the test set and its twins under `adversary`."""
    x, _ = test_set(ctx)
    return detectability(model.detector_logit, x, test_twins(ctx, adversary), ctx.cfg.experiments.train.eval_batch_size,
                         ctx.device)


def chosen_attack(ctx, grid: AdversaryGrid) -> tuple[AttackSpec, float]:
    """The grid's smallest-eps attack that cuts test accuracy below fig2.max_accuracy (else its strongest), with that accuracy.

    This is the paper's choice for Fig. 2 right and Fig. 4.
    """
    _, y = test_set(ctx)
    accs = [(spec, classifier_accuracy(ctx, test_twins(ctx, spec), y)) for spec in grid.specs()]
    below = [a for a in accs if a[1] < ctx.cfg.experiments.fig2.max_accuracy]
    return below[0] if below else accs[-1]
