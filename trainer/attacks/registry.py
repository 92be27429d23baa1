"""Attacks by name, so configs can say `{name: iterative_l2, eps: 40}`; batched runs over whole sets."""
from __future__ import annotations

import inspect
from functools import partial
from typing import Callable, Literal, Optional

import torch
from pydantic import Field, PositiveInt, model_validator
from torch import nn
from tqdm import tqdm

from common.config import Schema
from trainer.attacks._ops import evaluating, model_device, module_of
from trainer.attacks.adaptive import adaptive
from trainer.attacks.cw import carlini_wagner_l2, cw_detector_logit
from trainer.attacks.deepfool import deepfool
from trainer.attacks.dynamic import dynamic
from trainer.attacks.fast import fast
from trainer.attacks.iterative import iterative_l2, iterative_linf
from trainer.attacks.patch import patch, patch_adaptive
from trainer.attacks.pgd import pgd
from trainer.attacks.selective import orthogonal_pgd, selective_pgd
from trainer.attacks.square import square, square_adaptive
from trainer.models.fold import folded

# The paper's adversaries (Sec. 3.1, 3.3), oblivious attacks and adaptive ones on the detector (#11). DeepFool's two norms are
# two adversaries in the paper, so each has its own name.
ATTACKS: dict[str, Callable[..., torch.Tensor]] = {
    "fast": fast,
    "iterative_linf": iterative_linf,
    "iterative_l2": iterative_l2,
    "deepfool_l2": partial(deepfool, norm="l2"),
    "deepfool_linf": partial(deepfool, norm="linf"),
    "dynamic": dynamic,
    "adaptive": adaptive,
    "selective_pgd": selective_pgd,
    "orthogonal_pgd": orthogonal_pgd,
    "cw_detector_logit": cw_detector_logit,
    "pgd": pgd,
    "carlini_wagner_l2": carlini_wagner_l2,
    "patch": patch,
    "patch_adaptive": patch_adaptive,
    "square": square,
    "square_adaptive": square_adaptive,
}
_DATA_ARGS = ("model", "detector_logit", "x", "y")
# Attacks that stop as soon as the prediction changes, so their results lie just past the boundary.
STOP_AT_BOUNDARY = {"deepfool_l2", "deepfool_linf"}


def _parameters(name: str) -> dict[str, inspect.Parameter]:
    """The budget/hyper-parameters an attack takes: its signature minus data arguments and fixed keywords."""
    fn = ATTACKS[name]
    fixed = fn.keywords if isinstance(fn, partial) else {}
    return {k: p for k, p in inspect.signature(fn).parameters.items() if k not in _DATA_ARGS and k not in fixed}


def accepted_parameters(name: str) -> set[str]:
    """Names of the parameters an AttackSpec of attack `name` may set."""
    return set(_parameters(name))


def needs_detector(name: str) -> bool:
    """Whether the attack also differentiates through the detector (dynamic, adaptive)."""
    return "detector_logit" in inspect.signature(ATTACKS[name]).parameters


class AttackSpec(Schema):
    """One adversary and its parameters, in the paper's 0..255 units; unset parameters take the attack's defaults."""

    name: str = Field(description=f"one of {', '.join(ATTACKS)}")
    eps: Optional[float] = Field(None, gt=0, description="budget: l_inf or l_2 radius in 0..255 units")
    alpha: Optional[float] = Field(None, gt=0, description="step size of iterative methods")
    steps: Optional[PositiveInt] = None
    sigma: Optional[float] = Field(None, ge=0, le=1, description="dynamic: weight of the detector's gradient")
    overshoot: Optional[float] = Field(None, ge=0, description="deepfool")
    max_iter: Optional[PositiveInt] = Field(None, description="deepfool")
    linf_cap: Optional[float] = Field(None, gt=0, description="deepfool: bound on the total l_inf change (Sec. 4.2: 6)")
    restarts: Optional[PositiveInt] = Field(None, description="adaptive")
    threshold: Optional[float] = Field(None, gt=0, lt=1, description="adaptive: the deployed p_adv threshold")
    norm: Optional[Literal["l2", "linf"]] = Field(None, description="adaptive")
    margin: Optional[float] = Field(None, ge=0, description="adaptive: hinge margin in logits")
    confidence: Optional[float] = Field(None, ge=0, description="C&W: kappa, the margin sought in logits")
    binary_steps: Optional[PositiveInt] = Field(None, description="carlini_wagner_l2: binary search steps on c")
    c: Optional[float] = Field(None, gt=0, description="carlini_wagner_l2: initial weight of the margin loss")
    lr: Optional[float] = Field(None, gt=0, description="carlini_wagner_l2: Adam's learning rate")
    area: Optional[float] = Field(None, gt=0, le=1, description="patch: the sticker's share of the frame")
    queries: Optional[PositiveInt] = Field(None, description="square: model evaluations per image")
    p_init: Optional[float] = Field(None, gt=0, le=1, description="square: initial share of a square window")

    @model_validator(mode="after")
    def _fits_attack(self) -> "AttackSpec":
        if self.name not in ATTACKS:
            raise ValueError(f"unknown attack {self.name!r}; known: {', '.join(ATTACKS)}")
        accepted = _parameters(self.name)
        extra = sorted(set(self.params()) - set(accepted))
        if extra:
            raise ValueError(f"{self.name} takes no {', '.join(extra)}; it takes {', '.join(accepted)}")
        missing = [k for k, p in accepted.items() if p.default is inspect.Parameter.empty and k not in self.params()]
        if missing:
            raise ValueError(f"{self.name} needs {', '.join(missing)}")
        return self

    def params(self) -> dict:
        """The keyword arguments to pass to the attack (the parameters that were set)."""
        return self.model_dump(exclude={"name"}, exclude_none=True)


def attack_key(spec: AttackSpec) -> str:
    """Stable, filename-safe name of an attack and its set parameters, e.g. 'iterative_l2-eps40'."""
    parts = [f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}" for k, v in spec.params().items()]
    return "-".join([spec.name, *parts])


def run_attack(spec: AttackSpec, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
               detector_logit: Callable[[torch.Tensor], torch.Tensor] | None = None,
               batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """Attacks a whole set (uint8 or float images in 0..255) batch by batch on the model's device.

    Returns float32 adversarial images in 0..255 on x's device. The attack differentiates
    through `folded` copies of the networks (BatchNorm folded into convolutions), which compute
    the same eval-mode function faster; the caller's modules are left as they are.
    """
    attack = ATTACKS[spec.name]
    if needs_detector(spec.name) and detector_logit is None:
        raise ValueError(f"{spec.name} attacks a detector: pass detector_logit")
    net, detector_fn = _folded_networks(model, detector_logit if needs_detector(spec.name) else None)
    data = () if detector_fn is None else (detector_fn,)
    device = model_device(model) or x.device
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    starts = range(0, len(x), batch_size)
    for i in tqdm(starts, desc=attack_key(spec), unit="batch", disable=not progress):
        xb = x[i : i + batch_size].to(device, torch.float32)
        yb = y[i : i + batch_size].to(device, torch.long)
        adv = attack(net, *data, xb, yb, **spec.params()).detach()
        if spec.name in STOP_AT_BOUNDARY:
            adv = _finish_on(model, net, attack, xb, yb, adv, spec.params())
        out[i : i + batch_size] = adv.to(x.device)
    return out


@torch.no_grad()
def _finish_on(model: nn.Module, net: nn.Module, attack: Callable, x: torch.Tensor, y: torch.Tensor,
               adv: torch.Tensor, params: dict) -> torch.Tensor:
    """Attacks again, on `model` itself, the samples that fool the folded `net` but not `model`.

    Folding changes the logits by float rounding only, but a sample the attack left within that
    distance of the boundary (2 in 500 with DeepFool on ResNet-32) would otherwise count as a failure.
    """
    with evaluating(model):
        correct = (model(adv).argmax(1) == y).nonzero().squeeze(1)
    redo = correct[net(adv[correct]).argmax(1) != y[correct]]  # not the samples the attack gave up on
    if len(redo):
        adv[redo] = attack(model, x[redo], y[redo], **params).detach()
    return adv


def _folded_networks(model: nn.Module, detector_logit: Callable[[torch.Tensor], torch.Tensor] | None
                     ) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor] | None]:
    """Folded copies of `model` and of the module behind `detector_logit` (a module, or a method of
    one such as `DetectedClassifier.detector_logit`), copied together so a classifier they share is
    copied once. A `detector_logit` that belongs to no module is used as it is."""
    owner = None if detector_logit is None else module_of(detector_logit)
    if owner is None:
        return folded(model)[0], detector_logit
    net, det = folded(model, owner)
    return net, det if owner is detector_logit else getattr(det, detector_logit.__name__)
