"""The run directory: where `trainer fit` writes each stage, and how `export` and the demo stream read it.

    RUN/config.yaml                       the resolved config of the last `trainer fit`
    RUN/classifier.pt                     the trained classifier; marks the stage done (stamped)
    RUN/classifier_last.pt                resumable training state until then
    RUN/metrics.jsonl                     one line per classifier epoch
    RUN/attacks/                          cached adversarial sets
    RUN/detectors/<NAME>/detector.pt      a trained, calibrated detector (trainer.detector_checkpoint); marks it done (stamped)
    RUN/detectors/<NAME>/eval.pt          held-out clean/adversarial test images (for export's parity check)
    RUN/detectors/<NAME>/familiarity.pt   feature statistics at the detector's tap (trainer.familiarity)
    RUN/detectors/<NAME>/spec.json, train_state.pt, metrics.jsonl, evaluation.json
    RUN/experiments/, RUN/report.md       the paper's figures and their report
    RUN/audit/                            the security audit (trainer/audit/summary.py)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.config import ConfigError, load_config
from common.errors import UserError
from trainer import checkpoint
from trainer.audit.summary import shipped_robustness
from trainer.config import Config, ModelConfig
from trainer.data import Dataset
from trainer.detector_checkpoint import DetectorCheckpoint
from trainer.models.build import build_classifier
from trainer.models.detector import DetectedClassifier
from trainer.models.tapped import TappedClassifier

# Size of the stand-in image set when a run has no eval.pt; enough for a parity check on a CPU.
SYNTHETIC_IMAGES = 64


class RunDirError(UserError):
    """A run directory that lacks what the command needs."""


class RunDir:
    """The paths of one run directory (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config = self.root / "config.yaml"
        self.classifier = self.root / "classifier.pt"
        self.classifier_last = self.root / "classifier_last.pt"
        self.metrics = self.root / "metrics.jsonl"
        self.attacks = self.root / "attacks"
        self.detectors = self.root / "detectors"
        self.experiments = self.root / "experiments"
        self.report = self.root / "report.md"

    def detector_dir(self, name: str) -> Path:
        return self.detectors / name

    def detector(self, name: str) -> Path:
        return self.detector_dir(name) / "detector.pt"

    def eval_images(self, name: str) -> Path:
        return self.detector_dir(name) / "eval.pt"

    def familiarity(self, name: str) -> Path:
        return self.detector_dir(name) / "familiarity.pt"


@dataclass
class RunContext:
    """What the stages after the classifier share."""

    cfg: Config
    run_dir: Path
    device: torch.device
    dataset: Dataset
    classifier: TappedClassifier  # eval mode, frozen
    classifier_ckpt: dict
    is_main: bool

    @property
    def files(self) -> RunDir:
        return RunDir(self.run_dir)


def classifier_stamp(cfg: Config) -> dict:
    """The config that determines the classifier; `classifier.pt` records it, and a change retrains it.

    Where the data lies, and batch sizes of evaluation, do not change the weights.
    """
    return {"seed": cfg.seed, "data": cfg.data.model_dump(mode="json", exclude={"root", "download"}),
            "model": cfg.model.model_dump(mode="json"),
            # Runs from before adversarial training existed stay valid while they do not use it.
            # Likewise runs from before camera frames or confined training, while they do not use them.
            "train": cfg.train.model_dump(mode="json", exclude={
                "eval_batch_size": True,
                **({"adversarial": True} if cfg.train.adversarial is None else
                   {} if cfg.train.adversarial.confined else {"adversarial": {"confined"}}),
                **({} if cfg.train.augment.camera_share else {"augment": {"camera_share"}})})}


def load_classifier(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[TappedClassifier, dict]:
    """The best classifier of a run, in eval mode, and its checkpoint metadata."""
    ckpt = checkpoint.load(RunDir(run_dir).classifier, device)
    model = build_classifier(ModelConfig(**ckpt["model_config"]), ckpt["in_channels"], ckpt["num_classes"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), ckpt


def load_detected_classifier(run_dir: str | Path, detector_name: str, device: str | torch.device = "cpu"
                             ) -> tuple[DetectedClassifier, dict, DetectorCheckpoint]:
    """Classifier + trained detector `detector_name` of a run, in eval mode, with both checkpoints' metadata."""
    classifier, cls_ckpt = load_classifier(run_dir, device)
    det_ckpt = DetectorCheckpoint.load(RunDir(run_dir).detector(detector_name), device)
    return (DetectedClassifier.build(classifier, det_ckpt.arch, det_ckpt.point, det_ckpt.state_dict, det_ckpt.members,
                                     det_ckpt.width),
            cls_ckpt, det_ckpt)


def detector_names(run_dir: Path) -> list[str]:
    """Names of the detectors trained in `run_dir`, sorted."""
    root = RunDir(run_dir).detectors
    return sorted(p.parent.name for p in root.glob("*/detector.pt")) if root.is_dir() else []


def _finished_run(run_dir: Path) -> list[str]:
    """The detector names of `run_dir`; `RunDirError` unless it has a classifier and at least one detector."""
    if not run_dir.is_dir():
        raise RunDirError(f"run directory not found: {run_dir}")
    if not RunDir(run_dir).classifier.is_file():
        raise RunDirError(f"{run_dir} has no classifier.pt: not a finished run directory")
    names = detector_names(run_dir)
    if not names:
        raise RunDirError(f"{run_dir} has no detector (no detectors/*/detector.pt): train one first")
    return names


def resolve_detector(run_dir: str | Path, name: str | None) -> str:
    """`name`, else the run config's `deploy` detector, else the run's only detector."""
    run_dir = Path(run_dir)
    names = _finished_run(run_dir)
    if name is None:
        name = _deployed(run_dir)
    if name is None:
        if len(names) > 1:
            raise RunDirError(f"{run_dir} has {len(names)} detectors, choose one with --detector: {', '.join(names)}")
        return names[0]
    if name not in names:
        raise RunDirError(f"{run_dir} has no detector {name!r}; choices: {', '.join(names)}")
    return name


def _deployed(run_dir: Path) -> str | None:
    """The `deploy` entry of the run's resolved config (None if unset or unreadable)."""
    try:
        return load_config(Config, RunDir(run_dir).config).deploy
    except ConfigError:
        return None


def find_detector(run_dir: str | Path, sha256: str) -> str:
    """The detector of `run_dir` whose detector.pt hashes to `sha256` (what an exported model records)."""
    run_dir = Path(run_dir)
    for name in _finished_run(run_dir):
        if checkpoint.sha256(RunDir(run_dir).detector(name)) == sha256:
            return name
    raise RunDirError(f"no detector of {run_dir} has the sha256 recorded in the model ({sha256[:12]}...): "
                      "the model was exported from another run, or the detector was retrained")


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
    detector_ckpt: DetectorCheckpoint
    input_shape: tuple[int, int, int]  # (H, W, C) of the frames the graph takes
    classifier_sha256: str
    detector_sha256: str
    images: EvalImages
    robustness: dict | None  # the summary of RUN/audit/ if it audited exactly these checkpoints
    familiarity: dict | None = None  # familiarity.pt of the detector (trainer.familiarity), when the run has it


def load_run(run_dir: str | Path, detector: str | None = None) -> Run:
    """Load the classifier and detector `detector` (default: `resolve_detector`) of `run_dir` on the CPU."""
    run_dir = Path(run_dir)
    files = RunDir(run_dir)
    name = resolve_detector(run_dir, detector)
    try:
        model, cls_ckpt, det_ckpt = load_detected_classifier(run_dir, name)
        height, width = cls_ckpt["input_size"]
        shape = int(height), int(width), int(cls_ckpt["in_channels"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # missing fields, shape mismatches
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise RunDirError(f"cannot build the model of {run_dir} / {name}: {type(exc).__name__}: {first}") from None
    images = _load_images(files.eval_images(name), shape, det_ckpt.adversary)
    cls_sha, det_sha = checkpoint.sha256(files.classifier), checkpoint.sha256(files.detector(name))
    return Run(run_dir, name, model, cls_ckpt, det_ckpt, shape, cls_sha, det_sha, images,
               shipped_robustness(run_dir, cls_sha, det_sha),
               _load_familiarity(files.familiarity(name), cls_sha, det_ckpt.point))


def _load_familiarity(path: Path, classifier_sha: str, point: int) -> dict | None:
    """The detector's familiarity statistics, None for runs made before them; stale ones are an error.

    They are fitted at the detector's tap or a later one (the fused graph passes through it on its way to the logits)."""
    if not path.is_file():
        return None
    fam = checkpoint.load(path)
    if fam.get("classifier_sha256") != classifier_sha or fam.get("point", -1) < point:
        raise RunDirError(f"{path} was fitted for another classifier or tap: run `trainer fit` again to refit it")
    return fam


def _load_images(path: Path, shape: tuple[int, int, int], adversary: dict) -> EvalImages:
    height, width, channels = shape
    if not path.is_file():
        return _synthetic_images(shape, adversary)
    data = checkpoint.load(path)
    try:
        clean, adversarial = data["clean"], data["adversarial"]
        labels = data.get("labels")
    except (KeyError, TypeError) as exc:
        raise RunDirError(f"{path} needs tensors 'clean' and 'adversarial' ({type(exc).__name__}: {exc})") from None
    for key, images in (("clean", clean), ("adversarial", adversarial)):
        if not isinstance(images, torch.Tensor) or tuple(images.shape[1:]) != (channels, height, width):
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise RunDirError(f"{path}: {key!r} must be [N, {channels}, {height}, {width}], got {got}")
    if labels is not None and (not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (len(clean),)):
        raise RunDirError(f"{path}: 'labels' must be a tensor [{len(clean)}], one label per clean image")
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
