"""Reading a finished run directory: the classifier, one detector, their checkpoints and held-out images.

Layout (written by the trainer):
    RUN/classifier.pt
    RUN/detectors/<NAME>/detector.pt
    RUN/detectors/<NAME>/eval.pt     held-out clean/adversarial test images (optional)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.config import ConfigError, load_config
from export.errors import ExportError
from trainer import checkpoint
from trainer.audit.summary import shipped_robustness
from trainer.config import Config
from trainer.models.build import load_detected_classifier
from trainer.models.detector import DetectedClassifier

# Size of the stand-in image set when a run has no eval.pt; enough for a parity check on a CPU.
SYNTHETIC_IMAGES = 64


@dataclass(frozen=True)
class EvalImages:
    """Held-out images as uint8 [N, C, H, W] RGB (what a camera delivers), with labels when known."""

    clean: np.ndarray
    adversarial: np.ndarray
    labels: np.ndarray | None
    synthetic: bool  # True: random images + noise, no detection-quality judgement possible


@dataclass(frozen=True)
class Run:
    """A classifier with one detector attached, ready to export."""

    dir: Path
    detector_name: str
    model: DetectedClassifier
    classifier_ckpt: dict
    detector_ckpt: dict
    input_shape: tuple[int, int, int]  # (H, W, C) of the frames the graph takes
    classifier_sha256: str
    detector_sha256: str
    images: EvalImages
    robustness: dict | None  # the summary of RUN/audit/ if it audited exactly these checkpoints
    familiarity: dict | None = None  # familiarity.pt of the detector (trainer.familiarity), when the run has it


def detector_names(run_dir: Path) -> list[str]:
    """Names of the detectors trained in `run_dir`, sorted."""
    root = run_dir / "detectors"
    return sorted(p.parent.name for p in root.glob("*/detector.pt")) if root.is_dir() else []


def _finished_run(run_dir: Path) -> list[str]:
    """The detector names of `run_dir`; `ExportError` unless it has a classifier and at least one detector."""
    if not run_dir.is_dir():
        raise ExportError(f"run directory not found: {run_dir}")
    if not (run_dir / "classifier.pt").is_file():
        raise ExportError(f"{run_dir} has no classifier.pt: not a finished run directory")
    names = detector_names(run_dir)
    if not names:
        raise ExportError(f"{run_dir} has no detector (no detectors/*/detector.pt): train one before exporting")
    return names


def resolve_detector(run_dir: str | Path, name: str | None) -> str:
    """`name`, else the run config's `deploy` detector, else the run's only detector."""
    run_dir = Path(run_dir)
    names = _finished_run(run_dir)
    if name is None:
        name = _deployed(run_dir)
    if name is None:
        if len(names) > 1:
            raise ExportError(f"{run_dir} has {len(names)} detectors, choose one with --detector: {', '.join(names)}")
        return names[0]
    if name not in names:
        raise ExportError(f"{run_dir} has no detector {name!r}; choices: {', '.join(names)}")
    return name


def _deployed(run_dir: Path) -> str | None:
    """The `deploy` entry of the run's resolved config (None if unset or unreadable)."""
    try:
        return load_config(Config, run_dir / "config.yaml").deploy
    except ConfigError:
        return None


def find_detector(run_dir: str | Path, sha256: str) -> str:
    """The detector of `run_dir` whose detector.pt hashes to `sha256` (what an exported model records)."""
    run_dir = Path(run_dir)
    for name in _finished_run(run_dir):
        if checkpoint.sha256(run_dir / "detectors" / name / "detector.pt") == sha256:
            return name
    raise ExportError(f"no detector of {run_dir} has the sha256 recorded in the model ({sha256[:12]}...): "
                      "the model was exported from another run, or the detector was retrained")


def load_run(run_dir: str | Path, detector: str | None = None) -> Run:
    """Load the classifier and detector `detector` (default: the only one) of `run_dir` on the CPU."""
    run_dir = Path(run_dir)
    name = resolve_detector(run_dir, detector)
    det_dir = run_dir / "detectors" / name
    try:
        model, cls_ckpt, det_ckpt = load_detected_classifier(run_dir, name)
        height, width = cls_ckpt["input_size"]
        shape = int(height), int(width), int(cls_ckpt["in_channels"])
    except checkpoint.CheckpointError as exc:
        raise ExportError(str(exc)) from None
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # missing fields, shape mismatches
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ExportError(f"cannot build the model of {run_dir} / {name}: {type(exc).__name__}: {first}") from None
    images = _load_images(det_dir / "eval.pt", shape, det_ckpt.get("adversary") or {})
    cls_sha, det_sha = checkpoint.sha256(run_dir / "classifier.pt"), checkpoint.sha256(det_dir / "detector.pt")
    return Run(run_dir, name, model, cls_ckpt, det_ckpt, shape, cls_sha, det_sha, images,
               shipped_robustness(run_dir, cls_sha, det_sha),
               _load_familiarity(det_dir / "familiarity.pt", cls_sha, int(det_ckpt["point"])))


def _load_familiarity(path: Path, classifier_sha: str, point: int) -> dict | None:
    """The detector's familiarity statistics, None for runs made before them; stale ones are an error."""
    if not path.is_file():
        return None
    try:
        fam = checkpoint.load(path)
    except checkpoint.CheckpointError as exc:
        raise ExportError(str(exc)) from None
    if fam.get("classifier_sha256") != classifier_sha or fam.get("point") != point:
        raise ExportError(f"{path} was fitted for another classifier or tap: run `trainer fit` again to refit it")
    return fam


def _load_images(path: Path, shape: tuple[int, int, int], adversary: dict) -> EvalImages:
    height, width, channels = shape
    if not path.is_file():
        return _synthetic_images(shape, adversary)
    try:
        data = checkpoint.load(path)
        clean, adversarial = data["clean"], data["adversarial"]
        labels = data.get("labels")
    except checkpoint.CheckpointError as exc:
        raise ExportError(str(exc)) from None
    except (KeyError, TypeError) as exc:
        raise ExportError(f"{path} needs tensors 'clean' and 'adversarial' ({type(exc).__name__}: {exc})") from None
    for key, images in (("clean", clean), ("adversarial", adversarial)):
        if not isinstance(images, torch.Tensor) or tuple(images.shape[1:]) != (channels, height, width):
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ExportError(f"{path}: {key!r} must be [N, {channels}, {height}, {width}], got {got}")
    if labels is not None and (not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (len(clean),)):
        raise ExportError(f"{path}: 'labels' must be a tensor [{len(clean)}], one label per clean image")
    # The graph takes uint8 frames, so float adversarial images are quantised the way a camera
    # would deliver them; PyTorch and ONNX Runtime are then compared on identical pixels.
    to_uint8 = lambda t: t.float().round().clamp(0, 255).to(torch.uint8).numpy()  # noqa: E731
    return EvalImages(to_uint8(clean), to_uint8(adversarial),
                      None if labels is None else labels.numpy().astype(np.int64), synthetic=False)


def _synthetic_images(shape: tuple[int, int, int], adversary: dict) -> EvalImages:
    """Uniform random images and the same images with +-eps sign noise (eps from the adversary, else 2)."""
    height, width, channels = shape
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (SYNTHETIC_IMAGES, channels, height, width), dtype=np.int16)
    eps = adversary.get("eps", 2) if isinstance(adversary.get("eps", 2), (int, float)) else 2
    noise = np.rint(eps * rng.choice([-1.0, 1.0], clean.shape)).astype(np.int16)
    adversarial = np.clip(clean + noise, 0, 255)
    return EvalImages(clean.astype(np.uint8), adversarial.astype(np.uint8), None, synthetic=True)
