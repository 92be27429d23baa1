"""The typed schema of `trainer fit --config FILE`.

One section per stage. The YAML files in `configs/` are instances of `Config`;
`common.config.load_config` validates them and applies `--set` overrides.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, PositiveInt, field_validator, model_validator

from common.config import Schema
from trainer.attacks import ATTACKS, AttackSpec
from trainer.attacks.registry import accepted_parameters, needs_detector
from trainer.audit.corruptions import CAMERA_DARK, CORRUPTIONS, SEVERITIES
from trainer.models.detector import ARCHS


class DataConfig(Schema):
    """Which data set to load and how to split it."""

    name: Literal["cifar10", "fashion-mnist", "mnist", "folder"] = "fashion-mnist"
    root: Optional[Path] = Field(None, description="where the files are; None = the data set's default location")
    download: bool = Field(True, description="fetch the official archive (md5-checked) when files are missing")
    val_size: PositiveInt = Field(5000, description="images split off the end of the train set for validation")
    train_limit: Optional[PositiveInt] = Field(None, description="use only the first N training images (CPU-sized runs)")
    test_limit: Optional[PositiveInt] = Field(None, description="use only the first N test images")
    image_size: Optional[PositiveInt] = Field(None, description="resize folder images to this square size")
    channels: Literal[1, 3] = Field(3, description="folder data sets: decode as grey (1) or colour (3)")


class ModelConfig(Schema):
    """The classifier: the paper's ResNet (Fig. 1) or VGG16 for Sec. 4.2."""

    arch: Literal["resnet", "vgg16"] = "resnet"
    depth: Literal[8, 20, 32, 56] = 32
    weights: Optional[Path] = Field(None, description="vgg16: torchvision-layout state_dict to start from")
    class_indices: Optional[list[int]] = Field(None, description="vgg16: the logits to keep (Sec. 4.2's 10-class layer)")

    @property
    def attachment_points(self) -> int:
        """How many attachment points AD(0)..AD(n-1) the classifier has (its `tap_channels`; a test holds the two equal)."""
        return {"resnet": 5, "vgg16": 6}[self.arch]


class AugmentConfig(Schema):
    """Training-time augmentation; the paper does not state one."""

    crop_pad: int = Field(4, ge=0, description="random crop after zero-padding by this many pixels; 0 = off")
    flip: bool = Field(True, description="random horizontal flips")
    camera_share: float = Field(0.0, ge=0, le=1, description="share of every batch passed through the camera model "
                                "(corruptions.camera: black level, shot and read noise, severity 1-3) before the "
                                "adversarial attack, so the classifier is robust on frames as a camera delivers them, "
                                "not only on a data set's exact-zero background")


class ConfinedTraining(Schema):
    """Object-confined FGSM-RS for a share of every attacked batch (beyond Wong et al.): a perturbation that leaves the
    background as it was is the one a frame alarm sees least (docs/RESULTS.md), so the classifier must resist it itself."""

    eps: float = Field(..., gt=0, description="l_inf budget on the object's pixels, 0..255 units; it may exceed the dense "
                                              "attack's eps, since the background is left alone")
    share: float = Field(0.5, gt=0, le=1, description="share of the attacked images of every batch given the confined "
                                                      "attack instead of the dense one")
    background: float = Field(math.ceil(CAMERA_DARK), ge=0, le=255, description="pixels at or below this level in every "
                              "channel are background (`confined.object_mask`); the default is the camera model's darkest "
                              "background, so frames through it and the data set's exact-zero one are both masked")


class AdversarialTraining(Schema):
    """Adversarial training of the classifier (beyond the paper, which trains it on clean images): l_inf, eps in 0..255."""

    method: Literal["pgd", "fgsm_rs", "n_fgsm"] = Field(
        ..., description="pgd: PGD-k from a random start (Madry et al. 2018); fgsm_rs: FGSM from a random start "
                         "(Wong et al. 2020); n_fgsm: FGSM from strong noise, unprojected (de Jorge et al. 2022)")
    eps: float = Field(..., gt=0, description="l_inf budget of the training attack, 0..255 units")
    steps: PositiveInt = Field(7, description="pgd: steps of the training attack")
    alpha: Optional[float] = Field(None, gt=0, description="step size; None = the method's paper: pgd 2.5 eps / steps, "
                                                           "fgsm_rs 1.25 eps, n_fgsm eps")
    clean_share: float = Field(0.0, ge=0, lt=1, description="fraction of each batch left clean (trades robustness for "
                                                           "clean accuracy); 0 = every image attacked, as Madry et al.")
    confined: Optional[ConfinedTraining] = Field(None, description="fgsm_rs only: a share of the attacked images "
                                                 "perturbed on the object alone, at its own eps; None = every one dense")
    guard_images: PositiveInt = Field(500, description="validation images whose PGD accuracy is measured after every epoch; "
                                                       "the epoch kept is chosen by it (catastrophic-overfitting guard)")
    guard_steps: PositiveInt = Field(10, description="steps of the guard's PGD (one random start, at `eps`)")
    guard_tolerance: float = Field(0.02, ge=0, lt=1, description="a later epoch whose guard accuracy is within this of "
                                   "the best so far is kept instead: on 500 images the guard's standard error is ~0.016, "
                                   "so closer epochs are equally robust and the later one is more accurate; 0 = the best")

    @model_validator(mode="after")
    def _check_confined(self):
        if self.confined is not None and self.method != "fgsm_rs":
            raise ValueError(f"train.adversarial.confined needs method fgsm_rs, got {self.method}")
        return self


class TrainConfig(Schema):
    """Classifier training (Sec. 4.1)."""

    epochs: PositiveInt = 100
    batch_size: PositiveInt = 128
    eval_batch_size: PositiveInt = 1000
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    lr_milestones: list[PositiveInt] = Field([41, 61], description="epochs after which lr is multiplied by lr_gamma")
    lr_gamma: float = Field(0.1, gt=0)
    augment: AugmentConfig = AugmentConfig()
    channels_last: bool = Field(True, description="weights and batches in channels_last memory format, which cuDNN and "
                                "oneDNN's CPU convolutions run faster: on 2 CPU cores an epoch took 1.1x as long in NCHW "
                                "for the main job's classifier, 1.2x for ResNet-32 (benchmarks/train_throughput.py)")
    bf16: bool = Field(True, description="bf16 autocast, GPU only")
    compile: bool = Field(False, description="torch.compile the model, GPU only")
    adversarial: Optional[AdversarialTraining] = Field(None, description="adversarial training; None = clean images only (the paper)")


class DetectorTraining(Schema):
    """How a detector is trained and evaluated (Sec. 4.1.1); shared by named detectors and the experiment grid."""

    epochs: PositiveInt = Field(20, description="passes over the training images (the paper: 20)")
    batch_size: PositiveInt = Field(64, description="images per mini-batch (the paper is silent)")
    lr: float = Field(1e-4, gt=0, description="Adam learning rate (the paper: 1e-4)")
    betas: tuple[float, float] = Field((0.99, 0.999), description="Adam (beta1, beta2) (the paper: 0.99, 0.999)")
    train_limit: Optional[PositiveInt] = Field(None, description="train on the first N training images (and their twins); None = all")
    val_limit: Optional[PositiveInt] = Field(None, description="validation images for model selection and calibration; None = all (the paper: 5,000)")
    test_limit: Optional[PositiveInt] = Field(None, description="test images for detectability/ROC; None = all")
    eval_batch_size: PositiveInt = Field(500, description="images per batch when scoring or attacking")
    modify_prob: float = Field(0.5, ge=0, le=1, description="dynamic mode: probability that the adversary modifies an image (Sec. 3.3: 0.5)")
    sigma_range: tuple[float, float] = Field((0.0, 1.0), description="dynamic mode: each modified image's sigma is drawn uniformly from this range (Sec. 3.3: [0, 1])")
    arch: str = Field("fig1", description="detector network (trainer/models/detector.py ARCHS): fig1 = Fig. 1's "
                      "conv96-conv192-conv192 (pooling by attachment point); imagenet = Sec. 4.2's five conv196 with one "
                      "max-pool; frame = a plain five-conv CNN made for AD(0), the frame itself")
    width: Optional[PositiveInt] = Field(None, description="arch frame: feature maps of its two first convolutions (then "
                                         "twice and four times as many); None = 32. Its compute grows with the square")
    lr_schedule: Literal["constant", "onecycle"] = Field("constant", description="constant: `lr` throughout (the paper); "
                                                         "onecycle: warm up to `lr` and anneal to ~0 over all epochs, per "
                                                         "batch (Smith & Topor 2019), which ends short runs at a settled model")

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, arch: str) -> str:
        if arch not in ARCHS:
            raise ValueError(f"unknown detector arch {arch!r}; known: {', '.join(ARCHS)}")
        return arch

    @model_validator(mode="after")
    def _check_sigma(self):
        lo, hi = self.sigma_range
        if not 0 <= lo <= hi <= 1:
            raise ValueError(f"sigma_range must satisfy 0 <= lo <= hi <= 1, got {list(self.sigma_range)}")
        if self.width is not None and self.arch != "frame":
            raise ValueError(f"width sets the frame detector's maps; arch {self.arch} has the paper's")
        return self


class DetectorSpec(DetectorTraining):
    """One named detector: which adversary it learns to spot, where it attaches, how it is trained."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="directory name under run_dir/detectors/")
    adversary: AttackSpec = Field(..., description="the attack whose outputs are the positives; dynamic mode needs `dynamic`")
    point: int = Field(2, ge=0, description="attachment point AD(point) of the classifier (Fig. 1)")
    mode: Literal["static", "dynamic", "adaptive"] = Field(
        "static", description="static: precomputed adversarial examples (Sec. 3.2); dynamic: made on the fly against the "
                              "detector (Sec. 3.3); adaptive (beyond the paper): the adaptive attack against the current "
                              "detector, mixed with `paper_adversary` (trainer/detect/adaptive.py)")
    familiarity_point: Optional[int] = Field(None, ge=0, description="where the familiarity score (trainer/familiarity.py) "
                                             "reads the classifier: AD(familiarity_point), at or after `point`; None = "
                                             "`point`. A detector on the frame (point 0) wants the classifier's features "
                                             "here: raw pixels hardly tell road footage from the training images")
    familiar_attempts: bool = Field(False, description="fit familiarity on the training images and their attacked twins "
                                    "(static mode's `adversary` and `positives`, one per image as `twins: one` draws), so "
                                    "that a perturbation never makes a frame unfamiliar: the agent does not judge p_adv "
                                    "on unfamiliar frames, and a gate fitted on clean images alone hid most l_inf 32 "
                                    "attempts from the alarm")
    either: list[str] = Field([], description="earlier detectors (same point and arch, static) to OR with this one: it then "
                              "alerts when any of them or itself does, each shifted to ring at its own calibrated "
                              "threshold, under one threshold calibrated again on the OR (models/detector.py `Either`). "
                              "For families one detector cannot learn beside the others, e.g. object-confined PGD; [] = alone")
    init_from: Optional[str] = Field(None, description="start from this earlier detector's trained weights (same point), "
                                     "e.g. to harden a static detector by dynamic training; None = from scratch as in the paper")
    eps_range: Optional[tuple[float, float]] = Field(
        None, description="adaptive mode: each adaptive adversary's l_inf budget is drawn uniformly from [lo, hi] "
                          "(reaching past adversary.eps keeps p_adv rising with the perturbation); None = adversary.eps")
    eps_ramp_epochs: int = Field(0, ge=0, description="adaptive mode: curriculum, the upper end of eps_range grows "
                                                      "linearly from lo over this many epochs; 0 = the full range at once")
    paper_adversary: Optional[AttackSpec] = Field(None, description="adaptive mode: the paper's adversary that makes a share of "
                                                  "the adversarial twins (a static one: precomputed, cached; `dynamic`: sigma "
                                                  "drawn from sigma_range); None = adaptive twins only")
    paper_share: float = Field(0.5, ge=0, le=1, description="adaptive mode: fraction of twins made by paper_adversary")
    positives: list[AttackSpec] = Field([], description="static mode: further static adversaries (e.g. other budgets up to "
                                        "l_inf 32 and l_2 1000); each image's twin is drawn every epoch from `adversary` and "
                                        "these, so p_adv learns to rise with perturbation size. Adaptive mode: the same for "
                                        "the paper_adversary share")
    negatives: list[str] = Field([], description="benign corruptions (trainer/audit/corruptions.py) that the detector learns "
                                 "as negatives: every epoch a share `negative_share` of the clean images is replaced by a "
                                 "copy under one of them at a random severity; [] = clean images only (the paper)")
    negative_share: float = Field(0.5, ge=0, le=1, description="fraction of negatives that are corrupted copies")
    negative_severities: list[int] = Field([1, 2, 3], min_length=1, description="severities (1..3) the corrupted negatives "
                                           "are drawn from, uniformly")
    negative_weights: dict[str, float] = Field({}, description="how often each of `negatives` is drawn relative to "
                                               "the others (unlisted: 1), to show the detector more of the negatives "
                                               "it confuses with attacks; {} = uniformly")
    scene_share: float = Field(0.0, ge=0, le=1, description="fraction of negatives replaced every epoch by scenes made from "
                               "the training images (trainer/detect/scenes.py: zoomed, blended, unevenly lit), so that a "
                               "frame unlike the data set's is no reason to alarm; 0 = none")
    camera_share: float = Field(0.0, ge=0, le=1, description="static mode with twins one: share of the training and "
                                "validation images replaced by themselves through the camera model (corruptions.camera: "
                                "black level, shot and read noise) before their twins are made, so that the clean frame and "
                                "its attacked twin both look as a camera delivers them and neither a lifted background nor "
                                "sensor noise tells an attack apart; 0 = none")
    twins: Literal["all", "one"] = Field("all", description="static mode: all = every adversary (`adversary` and "
                                         "`positives`) makes a twin of every training image, and each epoch draws one; "
                                         "one = each image has a single twin, by one adversary drawn per image from the "
                                         "seed: the cost of one attack over the set, so many more images for the same time")
    select: Literal["detectability", "tpr"] = Field("detectability", description="the validation number whose best epoch "
                                                    "is kept: detectability (the paper) or tpr, the mean over adversaries "
                                                    "of the share of their validation twins flagged at the threshold "
                                                    "calibrated as `calibration` says: what the deployed alarm does")

    @field_validator("negative_severities")
    @classmethod
    def _known_negative_severities(cls, severities: list[int]) -> list[int]:
        return known_severities(severities)

    @field_validator("negatives")
    @classmethod
    def _known_corruptions(cls, names: list[str]) -> list[str]:
        return known_corruptions(names)

    @model_validator(mode="after")
    def _check_mode(self):
        if (self.mode != "static" or needs_detector(self.adversary.name)) and self.mode != self.adversary.name:
            raise ValueError(f"mode {self.mode} and adversary {self.adversary.name} do not fit: mode dynamic trains against "
                             "adversary `dynamic`, mode adaptive against `adaptive`, mode static against any other")
        if self.adversary.name == "dynamic" and "sigma" in self.adversary.params():
            raise ValueError("dynamic training draws each image's sigma from sigma_range; leave adversary.sigma unset")
        if self.mode == "adaptive":
            self._check_adaptive()
        elif self.eps_range is not None or self.eps_ramp_epochs or self.paper_adversary is not None:
            raise ValueError("eps_range, eps_ramp_epochs and paper_adversary apply to mode adaptive only")
        unknown = set(self.negative_weights) - set(self.negatives)
        if unknown:
            raise ValueError(f"negative_weights names {', '.join(sorted(unknown))}, not among negatives")
        if any(w <= 0 for w in self.negative_weights.values()):
            raise ValueError("negative_weights must be positive")
        if self.negatives and self.negative_share + self.scene_share > 1:
            raise ValueError(f"negative_share {self.negative_share} and scene_share {self.scene_share} add up to more than 1")
        if self.familiar_attempts and (self.mode != "static" or self.twins != "one"):
            raise ValueError("familiar_attempts fits familiarity on the static twins: mode static with twins one only")
        if self.camera_share and (self.mode != "static" or self.twins != "one"):
            raise ValueError("camera_share makes the twins of camera frames: mode static with twins one only")
        if self.select == "tpr" and self.mode != "static":
            raise ValueError("select tpr scores precomputed twins: mode static only")
        if self.mode == "dynamic" and (self.positives or self.benign):
            raise ValueError("positives, negatives and scene_share apply to modes static and adaptive")
        if self.mode == "adaptive" and self.positives and (self.paper_adversary is None or self.paper_adversary.name == "dynamic"):
            raise ValueError("adaptive mode: positives widen a static paper_adversary; set one")
        for p in self.positives:
            if needs_detector(p.name):
                raise ValueError(f"positives are static adversaries, precomputed once before the detector exists; "
                                 f"{p.name} attacks the detector")
        return self

    @property
    def benign(self) -> bool:
        """Whether some negatives are replaced by corrupted copies or scenes, rather than all clean."""
        return bool(self.negatives) or self.scene_share > 0

    def _check_adaptive(self) -> None:
        if self.init_from is None:
            # Its BN layers keep the statistics they start with (trainer/detect/adaptive.py), so they must be trained ones.
            raise ValueError(f"detector {self.name}: mode adaptive hardens a trained detector; set init_from")
        if self.adversary.params().get("norm") not in (None, "linf"):
            raise ValueError("mode adaptive draws l_inf budgets per image; adversary.norm must be linf")
        if self.eps_range is not None and not 0 < self.eps_range[0] <= self.eps_range[1]:
            raise ValueError(f"eps_range must satisfy 0 < lo <= hi, got {list(self.eps_range)}")
        paper = self.paper_adversary
        if paper is not None and (paper.name == "adaptive" or (paper.name == "dynamic" and "sigma" in paper.params())):
            raise ValueError("paper_adversary is one of the paper's attacks; a dynamic one draws sigma from sigma_range")


def known_corruptions(names: list[str]) -> list[str]:
    """`names` if every one is a corruption of trainer/audit/corruptions.py, else a ValueError naming the first that is not."""
    for name in names:
        if name not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    return names


def known_severities(severities: list[int]) -> list[int]:
    """`severities` (1-based, as reports name them) sorted and deduplicated if each is one the corruptions have, else a ValueError."""
    for s in severities:
        if not 1 <= s <= SEVERITIES:
            raise ValueError(f"severity {s} is outside 1..{SEVERITIES}")
    return sorted(set(severities))


class CalibrationConfig(Schema):
    """The alert threshold shipped with the deployed detector, set on validation images (clean, or clean and corrupted)."""

    fpr: float = Field(0.01, gt=0, lt=1, description="false-alarm rate on the calibration images that `threshold` gives")
    corruptions: list[str] = Field([], description="benign corruptions (trainer/audit/corruptions.py) in the calibration set: "
                                   "every validation image joins it clean and once under each of these at each of "
                                   "`severities`; [] = clean validation images only. The clean-only FPR is reported beside it")

    severities: list[int] = Field([1, 2], min_length=1, description="severities (1..3) of every corruption in the calibration "
                                  "set: the conditions a camera meets on an ordinary day. The FPR at every severity, those "
                                  "left out included, is reported beside the threshold")
    rule: Literal["pooled", "each"] = Field("pooled", description="pooled: `fpr` on all calibration images together, so one "
                                            "condition may take more than its share; each: at most `fpr` on the clean images "
                                            "and on every corruption at every severity alone (the highest of their "
                                            "thresholds), so no ordinary day's weather alarms more often than that")
    report_fprs: list[float] = Field([0.01, 0.05], description="further false-positive rates to calibrate and report TPR at")

    @field_validator("corruptions")
    @classmethod
    def _known_corruptions(cls, names: list[str]) -> list[str]:
        return known_corruptions(names)

    @field_validator("severities")
    @classmethod
    def _known_severities(cls, severities: list[int]) -> list[int]:
        return known_severities(severities)


class AdversaryGrid(Schema):
    """One adversary of the experiment grid: its eps values and where its detectors attach."""

    name: str = Field(..., description="a static attack of trainer/attacks (fast, iterative_linf, iterative_l2, deepfool_l2, deepfool_linf)")
    eps: list[float] = Field([], description="eps values in 0..255 units (Fig. 2 left, Fig. 3); [] for attacks without eps (DeepFool)")
    point: int = Field(2, ge=0, description="attachment point of its detectors (the paper: AD(2), AD(4) for DeepFool)")
    params: dict[str, Any] = Field({}, description="further attack parameters, e.g. {alpha: 20} for iterative_l2")

    def specs(self) -> list[AttackSpec]:
        """One attack per eps value (a single one for attacks without eps)."""
        return [AttackSpec(name=self.name, eps=e, **self.params) for e in self.eps or [None]]

    @model_validator(mode="after")
    def _check_specs(self):
        for spec in self.specs():
            if needs_detector(spec.name):
                raise ValueError(f"{spec.name} attacks a detector; Figs. 2-4 take static adversaries")
        return self


class Fig2Config(Schema):
    """Fig. 2: accuracy vs detectability (left) and detectability per attachment depth (right)."""

    enabled: bool = True
    points: list[int] = Field([0, 1, 2, 3, 4], description="attachment depths for Fig. 2 right")
    max_accuracy: float = Field(0.3, gt=0, le=1, description="Fig. 2 right / Fig. 4 use each adversary's smallest eps "
                                                            "that cuts classifier accuracy below this (the paper: 30%)")


class ToggleConfig(Schema):
    """An experiment with nothing to configure beyond the shared grid."""

    enabled: bool = True


class Fig5Config(Schema):
    """Fig. 5: a dynamic adversary's sigma sweep against a static and a dynamic detector."""

    enabled: bool = True
    eps: float = Field(1.0, gt=0, description="eps of the dynamic adversary and of both detectors' training (the paper: 1)")
    sigmas: list[float] = Field([round(0.1 * i, 1) for i in range(11)], description="sigma values to sweep")
    point: int = Field(2, ge=0, description="attachment point of both detectors")
    static_adversary: str = Field("iterative_linf", description="the static detector's training adversary (at `eps`)")
    params: dict[str, Any] = Field({}, description="further parameters of the dynamic adversary (alpha, steps)")
    test_limit: Optional[PositiveInt] = Field(None, description="test images attacked per sigma; None = experiments.train.test_limit")
    dynamic_train: Optional[DetectorTraining] = Field(
        None, description="training of the dynamic detector; None = experiments.train. Adversarial training needs "
                          "more steps than static training, so short CPU protocols give it more epochs here")
    harden_static: bool = Field(False, description="start the dynamic detector from the trained static one instead of "
                                                   "from scratch (the paper trains it from scratch for 20 epochs)")

    @model_validator(mode="after")
    def _check_attacks(self):
        AttackSpec(name=self.static_adversary, eps=self.eps)
        AttackSpec(name="dynamic", eps=self.eps, **self.params)
        return self


class AdaptiveConfig(Schema):
    """The adaptive attack (trainer/attacks) against the deployed detector at its calibrated threshold."""

    enabled: bool = True
    eps: Optional[float] = Field(None, gt=0, description="eps of the attack; None = the deployed detector's training eps")
    params: dict[str, Any] = Field({}, description="further parameters of the adaptive attack (norm, steps, restarts, alpha, margin)")
    test_limit: Optional[PositiveInt] = Field(None, description="test images attacked; None = experiments.train.test_limit")

    @model_validator(mode="after")
    def _check_attack(self):
        AttackSpec(name="adaptive", eps=self.eps or 1.0, threshold=0.5, **self.params)
        return self


class ExperimentsConfig(Schema):
    """The paper's experiments (Sec. 4.1.1, 4.1.2): each writes a PNG and a table under run_dir/experiments/."""

    enabled: bool = Field(False, description="run the experiment stage at all")
    train: DetectorTraining = Field(DetectorTraining(), description="training of every detector the experiments train")
    adversaries: list[AdversaryGrid] = Field([], description="the static adversaries and eps grids of Figs. 2-4")
    fig2: Fig2Config = Fig2Config()
    fig3: ToggleConfig = Field(ToggleConfig(), description="Fig. 3: eps_fit x eps_test transfer per adversary")
    fig4: ToggleConfig = Field(ToggleConfig(), description="Fig. 4: adversary x adversary transfer")
    fig5: Fig5Config = Fig5Config()
    adaptive: AdaptiveConfig = AdaptiveConfig()


class AuditAttack(Schema):
    """One attack of the security audit and the parameters it gets beyond the audit's own (eps, norm, threshold)."""

    name: str = Field(..., description="an attack of trainer/attacks/registry.py")
    params: dict[str, Any] = Field({}, description="further parameters, e.g. {steps: 10, alpha: 1}; they win over "
                                                   "audit.steps/restarts")

    def spec(self, audit_settings: dict[str, Any]) -> AttackSpec:
        """This attack with those of the audit's settings it takes, overridden by its own params."""
        taken = accepted_parameters(self.name)
        return AttackSpec(name=self.name, **{**{k: v for k, v in audit_settings.items() if k in taken}, **self.params})


# The CPU protocol (issue #11). Oblivious (they know the classifier): the paper's adversaries with their
# paper settings, PGD, C&W L2 and a sticker. Adaptive (they know the detector and its threshold too):
# the hinge attack, selective and orthogonal PGD, C&W's detector-as-class loss and the sticker. Each
# takes `audit.steps` steps and `audit.restarts` restarts where it has them. Square attack, gradient-free,
# checks the white-box attacks for gradient masking.
AUDIT_ATTACKS = [
    AuditAttack(name="fast"),
    AuditAttack(name="iterative_linf", params={"steps": 10, "alpha": 1.0}),
    AuditAttack(name="deepfool_linf", params={"max_iter": 50}),
    AuditAttack(name="pgd"),
    AuditAttack(name="carlini_wagner_l2"),
    AuditAttack(name="patch"),
    AuditAttack(name="adaptive"),
    AuditAttack(name="selective_pgd"),
    AuditAttack(name="orthogonal_pgd"),
    AuditAttack(name="cw_detector_logit"),
    AuditAttack(name="patch_adaptive"),
    AuditAttack(name="square_adaptive"),
]


# One oblivious attack per family of perturbation (trainer/attacks/registry.py FAMILIES), graded per budget by the
# audit's family table: where the perturbation goes (everywhere, the object only, a few pixels, a sticker), its
# shape (dense, low-frequency) and the attack's step schedule (PGD's fixed step, APGD's adaptive one).
FAMILY_ATTACKS = [
    AuditAttack(name="pgd"),
    AuditAttack(name="apgd"),
    AuditAttack(name="confined_pgd"),
    AuditAttack(name="low_frequency_pgd", params={"grid": 4}),
    AuditAttack(name="sparse_pgd", params={"pixels": 16}),
    AuditAttack(name="patch", params={"area": 0.07}),
    AuditAttack(name="deepfool_linf", params={"max_iter": 50}),
]


# Where scripts/setup.sh unpacks Debian's opencv-doc sample videos.
FOOTAGE = "/tmp/opencv-doc/usr/share/doc/opencv-doc/examples/data"


class AuditConfig(Schema):
    """The security audit of the deployed classifier + detector at its shipped threshold (`trainer audit`)."""

    enabled: bool = Field(False, description="run the audit as the last stage of `trainer fit` (needs `deploy`)")
    detector: Optional[str] = Field(None, description="the detector to audit (one of `detectors`); None = `deploy`")
    eps: list[float] = Field([1.0, 2.0, 4.0, 8.0], min_length=1, description="budgets of the eps sweep, in 0..255 units "
                             "of `norm`; the security curve has one point per value")
    headline_eps: Optional[float] = Field(None, gt=0, description="the eps whose worst case is shipped in the model's "
                                          "metadata and printed; None = the largest of `eps`")
    norm: Literal["linf", "l2"] = Field("linf", description="the threat model's distance; every perturbation is measured in it")
    images: PositiveInt = Field(200, description="test images attacked, taken from the end of the run's test split")
    attacks: list[AuditAttack] = Field(AUDIT_ATTACKS, min_length=1, description="the attacks; each image's worst case is over all")
    steps: PositiveInt = Field(200, description="steps of every attack that takes `steps`, unless its params say otherwise")
    restarts: PositiveInt = Field(5, description="random restarts of every attack that takes `restarts`, unless its params say otherwise")
    tpr_eps: dict[Literal["linf", "l2"], list[float]] = Field(
        {"linf": [2.0, 4.0, 8.0, 16.0, 32.0], "l2": [100.0, 300.0, 1000.0]},
        description="TPR against perturbation size: an oblivious attack at each of these budgets per norm")
    corruptions: bool = Field(True, description="FPR under benign corruptions (noise, blur, JPEG, light, haze) at 3 severities")
    footage: list[Path] = Field([Path(f"{FOOTAGE}/Megamind.avi"), Path(f"{FOOTAGE}/tree.avi")],
                                description="real clean videos (opencv-doc, unpacked by scripts/setup.sh) whose FPR is reported; "
                                            "missing files are skipped")
    footage_frames: PositiveInt = Field(200, description="frames scored per video, spread evenly over it")
    batch_size: PositiveInt = Field(250, description="images per attack batch")
    families: list[AuditAttack] = Field(FAMILY_ATTACKS, description="the family table: oblivious attacks, one per family "
                                        "of perturbation (trainer/attacks/registry.py FAMILIES), each at every "
                                        "`family_eps` (once, at its own budget, where it takes no eps), each row marked "
                                        "trained on or not by the audited detector; [] = no family table")
    family_eps: list[float] = Field([4.0, 8.0, 16.0, 32.0], min_length=1, description="l_inf budgets of the family table")
    family_steps: PositiveInt = Field(20, description="steps of every family's attack, unless its params say otherwise")
    family_restarts: PositiveInt = Field(1, description="random restarts of every family's attack, unless its params say otherwise")
    camera: bool = Field(True, description="grade every family also on frames through the camera model (black level, shot "
                         "and read noise: corruptions.camera), applied before the attack as a camera delivers them")
    seed: int = Field(0, description="seed of the camera model's noise on the audit's frames")

    @field_validator("eps", "family_eps")
    @classmethod
    def _positive(cls, eps: list[float]) -> list[float]:
        if any(e <= 0 for e in eps):
            raise ValueError(f"every eps must be positive, got {eps}")
        return sorted(set(eps))

    @model_validator(mode="after")
    def _check_attacks(self):
        if self.headline_eps is not None and self.headline_eps not in self.eps:
            raise ValueError(f"headline_eps {self.headline_eps:g} is not one of eps {self.eps}")
        for attack in self.attacks:
            if attack.name not in ATTACKS:
                raise ValueError(f"unknown attack {attack.name!r}; known: {', '.join(ATTACKS)}")
            self.attack_spec(attack, self.eps[0], 0.5)
        for attack in self.families:
            if attack.name not in ATTACKS:
                raise ValueError(f"families: unknown attack {attack.name!r}; known: {', '.join(ATTACKS)}")
            if needs_detector(attack.name):
                raise ValueError(f"families: {attack.name} attacks the detector; the family table grades oblivious attacks")
            self.family_spec(attack, self.family_eps[0], camera=True)
        return self

    @property
    def headline(self) -> float:
        return self.headline_eps or self.eps[-1]

    def attack_spec(self, attack: AuditAttack, eps: float, threshold: float) -> AttackSpec:
        """`attack` at budget `eps` against `threshold`: the audit's settings for every parameter it takes
        (eps, norm, threshold, steps, restarts), overridden by its own params."""
        return attack.spec({"eps": eps, "norm": self.norm, "threshold": threshold, "steps": self.steps,
                            "restarts": self.restarts})

    def family_spec(self, attack: AuditAttack, eps: float | None, camera: bool) -> AttackSpec:
        """A family's oblivious `attack` at l_inf `eps` (dropped where not taken) with the family table's steps and
        restarts, overridden by its own params; on `camera` frames, `on_camera_frames` unless its params set a
        background level."""
        spec = attack.spec({"eps": eps, "norm": "linf", "steps": self.family_steps, "restarts": self.family_restarts})
        return on_camera_frames(spec) if camera and "background" not in attack.params else spec


def on_camera_frames(spec: AttackSpec) -> AttackSpec:
    """`spec` as it attacks frames through the camera model: nothing there is exactly 0, so an attack confined to
    the object takes the pixels above the camera's darkest background (corruptions.CAMERA_DARK) for it."""
    if "background" not in accepted_parameters(spec.name):
        return spec
    return AttackSpec(name=spec.name, **{**spec.params(), "background": float(math.ceil(CAMERA_DARK))})


class Config(Schema):
    """Everything `trainer fit` does, stage by stage."""

    run_dir: Path = Path("runs/default")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    detectors: list[DetectorSpec] = Field([], description="named detectors to train (Sec. 3.2, 3.3), each cached in run_dir/detectors/<name>/")
    deploy: Optional[str] = Field(None, description="the detector `export` ships; one of `detectors`")
    calibration: CalibrationConfig = CalibrationConfig()
    experiments: ExperimentsConfig = ExperimentsConfig()
    audit: AuditConfig = AuditConfig()

    @model_validator(mode="after")
    def _check_detectors(self):
        for d in self.detectors:
            for key, point in (("point", d.point), ("familiarity_point", d.familiarity_point)):
                if point is not None and point >= self.model.attachment_points:
                    raise ValueError(f"detector {d.name}: {key}: unknown attachment point {point}; the {self.model.arch} "
                                     f"classifier has AD(0) (the frame) to AD({self.model.attachment_points - 1})")
            if d.familiarity_point is not None and d.familiarity_point < d.point:
                raise ValueError(f"detector {d.name}: familiarity_point {d.familiarity_point} lies before point {d.point}")
        names = [d.name for d in self.detectors]
        if len(set(names)) != len(names):
            raise ValueError(f"detector names must be unique, got {names}")
        for key, name in (("deploy", self.deploy), ("audit.detector", self.audit.detector)):
            if name is not None and name not in names:
                raise ValueError(f"{key}: {name!r} is not one of detectors {names}")
        for i, d in enumerate(self.detectors):
            base = next((b for b in self.detectors[:i] if b.name == d.init_from), None)
            if d.init_from is not None and (base is None or (base.point, base.arch, base.width) != (d.point, d.arch, d.width)
                                            or base.either):
                raise ValueError(f"detector {d.name}: init_from must name an earlier detector with the same point, arch "
                                 f"and width, got {d.init_from!r}")
            for name in d.either:
                member = next((b for b in self.detectors[:i] if b.name == name), None)
                if (member is None or (member.point, member.arch, member.width, member.mode) != (d.point, d.arch, d.width, "static")
                        or member.either):
                    raise ValueError(f"detector {d.name}: either: {name!r} must be an earlier static detector with the same "
                                     f"point, arch and width, itself not an OR")
            if d.either and d.mode != "static":
                raise ValueError(f"detector {d.name}: either needs mode static, got {d.mode}")
        return self
