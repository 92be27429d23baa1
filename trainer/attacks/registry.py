"""Attacks by name, so configs can say `{name: iterative_l2, eps: 40}`; batched runs over whole sets."""
from __future__ import annotations

import functools
import inspect
from functools import partial
from types import UnionType
from typing import Annotated, Any, Callable, Union, get_args, get_origin, get_type_hints

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator
from pydantic.fields import FieldInfo
from torch import nn
from trainer.progress import progress_bar

from trainer.attacks._ops import evaluating, model_device, module_of
from trainer.attacks.adaptive import adaptive
from trainer.attacks.apgd import apgd
from trainer.attacks.confined import confined_pgd
from trainer.attacks.cw import carlini_wagner_l2, cw_detector_logit
from trainer.attacks.deepfool import deepfool
from trainer.attacks.dynamic import dynamic
from trainer.attacks.fast import fast
from trainer.attacks.iterative import iterative_l2, iterative_linf
from trainer.attacks.low_frequency import low_frequency_pgd
from trainer.attacks.patch import patch, patch_adaptive
from trainer.attacks.pgd import pgd
from trainer.attacks.selective import orthogonal_pgd, selective_pgd
from trainer.attacks.sparse import sparse_pgd
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
    "apgd": apgd,
    "confined_pgd": confined_pgd,
    "low_frequency_pgd": low_frequency_pgd,
    "sparse_pgd": sparse_pgd,
}
# The shape of perturbation each attack leaves, which an alarm must recognise: dense eps-ball
# perturbations ("pgd"), APGD's, Square Attack's stripes and squares, ones confined to the object,
# smooth low-frequency ones, sparse ones (a few pixels), stickers, DeepFool's and C&W's minimal ones.
FAMILIES: dict[str, str] = {
    **dict.fromkeys(["pgd", "iterative_linf", "iterative_l2", "fast", "dynamic", "adaptive", "selective_pgd",
                     "orthogonal_pgd"], "pgd"),
    "apgd": "apgd",
    "square": "square", "square_adaptive": "square",
    "confined_pgd": "object-confined",
    "low_frequency_pgd": "low-frequency",
    "sparse_pgd": "sparse",
    "patch": "patch", "patch_adaptive": "patch",
    "deepfool_l2": "deepfool", "deepfool_linf": "deepfool",
    "carlini_wagner_l2": "cw", "cw_detector_logit": "cw",
}
_DATA_ARGS = ("model", "detector_logit", "x", "y")
# Attacks that stop as soon as the prediction changes, so their results lie just past the boundary.
STOP_AT_BOUNDARY = {"deepfool_l2", "deepfool_linf"}

# Bounds and meanings of parameter names the attacks share; a parameter not listed here is
# still accepted with its signature's type and default. Types and defaults come from each
# attack's signature (`parameter_model`), so adding an attack to ATTACKS is all it takes.
_RULES: dict[str, FieldInfo] = {
    "eps": Field(gt=0, description="budget: l_inf or l_2 radius in 0..255 units"),
    "alpha": Field(gt=0, description="step size of iterative methods, in 0..255 units"),
    "steps": Field(gt=0, description="gradient steps"),
    "sigma": Field(ge=0, le=1, description="weight of the detector's gradient; unset: drawn per image from U[0, 1]"),
    "overshoot": Field(ge=0, description="relative step past the linearised boundary"),
    "max_iter": Field(gt=0, description="iterations before giving up"),
    "linf_cap": Field(gt=0, description="bound on the total l_inf change (Sec. 4.2: 6)"),
    "restarts": Field(gt=0, description="random restarts"),
    "threshold": Field(gt=0, lt=1, description="the deployed p_adv threshold"),
    "margin": Field(ge=0, description="hinge margin in logits"),
    "confidence": Field(ge=0, description="C&W: kappa, the margin sought in logits"),
    "binary_steps": Field(gt=0, description="carlini_wagner_l2: binary search steps on c"),
    "c": Field(gt=0, description="carlini_wagner_l2: initial weight of the margin loss"),
    "lr": Field(gt=0, description="carlini_wagner_l2: Adam's learning rate"),
    "area": Field(gt=0, le=1, description="patch: the sticker's share of the frame"),
    "queries": Field(gt=0, description="square: model evaluations per image"),
    "p_init": Field(gt=0, le=1, description="square: initial share of a square window"),
    "background": Field(ge=0, le=255, description="confined_pgd: pixels at or below this level are background, left "
                                                  "unchanged"),
    "grid": Field(ge=1, description="low_frequency_pgd: side of the coarse grid upsampled to the frame"),
    "pixels": Field(gt=0, description="sparse_pgd: most pixel locations changed (l_0 budget)"),
}
# The order parameters had in attack keys before each attack had its own model. Cached attack
# sets and experiment detectors are named by attack_key, so it must not change for them.
_KEY_ORDER = ["eps", "alpha", "steps", "sigma", "overshoot", "max_iter", "linf_cap", "restarts", "threshold", "norm",
              "margin", "confidence", "binary_steps", "c", "lr", "area", "queries", "p_init",
              "background", "grid", "pixels"]


def family(name: str) -> str:
    """The family of attack `name` (see FAMILIES): the perturbation shape an alarm must recognise."""
    if name not in FAMILIES:
        raise ValueError(f"unknown attack {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def _parameters(name: str) -> dict[str, inspect.Parameter]:
    """The budget/hyper-parameters an attack takes: its signature minus data arguments and fixed keywords."""
    fn = ATTACKS[name]
    fixed = fn.keywords if isinstance(fn, partial) else {}
    return {k: p for k, p in inspect.signature(fn).parameters.items() if k not in _DATA_ARGS and k not in fixed}


def accepted_parameters(name: str) -> set[str]:
    """Names of the parameters an AttackSpec of attack `name` may set."""
    return set(_parameters(name))


def _config_type(hint: Any) -> Any:
    """A signature's type without its tensor alternatives (per-image values only code can pass)."""
    if get_origin(hint) in (Union, UnionType):
        kept = tuple(a for a in get_args(hint) if a is not torch.Tensor)
        return Union[kept] if len(kept) > 1 else kept[0]
    return hint


@functools.cache
def parameter_model(name: str) -> type[BaseModel]:
    """The typed parameters of attack `name`, read off its signature: types, defaults, required ones."""
    fn = ATTACKS[name]
    hints = get_type_hints(fn.func if isinstance(fn, partial) else fn)
    fields = {k: (Annotated[_config_type(hints[k]), _RULES.get(k, Field())],
                  ... if p.default is inspect.Parameter.empty else p.default)
              for k, p in _parameters(name).items()}
    return create_model(f"{name}_parameters", __config__=ConfigDict(extra="forbid"), **fields)


def needs_detector(name: str) -> bool:
    """Whether the attack also differentiates through the detector (dynamic, adaptive)."""
    return "detector_logit" in inspect.signature(ATTACKS[name]).parameters


class AttackSpec(BaseModel):
    """One adversary by `name` and the parameters it was given, in the paper's 0..255 units.

    The parameters are validated by the attack's own model (`parameter_model`), so an unknown
    or misplaced one is an error naming the attack. Unset parameters (or None) take the
    attack's defaults; set ones read as attributes, e.g. `spec.eps`.
    """

    model_config = ConfigDict(extra="allow")
    name: str = Field(description=f"one of {', '.join(ATTACKS)}")

    @model_validator(mode="before")
    @classmethod
    def _typed_parameters(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        name = data.get("name")
        if name not in ATTACKS:
            raise ValueError(f"unknown attack {name!r}; known: {', '.join(ATTACKS)}")
        given = {k: v for k, v in data.items() if k != "name" and v is not None}
        model = parameter_model(name)
        extra = sorted(set(given) - set(model.model_fields))
        if extra:
            raise ValueError(f"{name} takes no {', '.join(extra)}; it takes {', '.join(model.model_fields)}")
        try:
            typed = model(**given)
        except ValidationError as exc:
            err = exc.errors()[0]
            what = "needs" if err["type"] == "missing" else "got a bad"
            raise ValueError(f"{name} {what} {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        return {"name": name, **{k: getattr(typed, k) for k in given}}

    def params(self) -> dict:
        """The keyword arguments to pass to the attack (the parameters that were set)."""
        return dict(self.__pydantic_extra__ or {})


def attack_key(spec: AttackSpec) -> str:
    """Stable, filename-safe name of an attack and its set parameters, e.g. 'iterative_l2-eps40'."""
    params = spec.params()
    order = [k for k in _KEY_ORDER if k in params] + [k for k in params if k not in _KEY_ORDER]
    parts = [f"{k}{params[k]:g}" if isinstance(params[k], float) else f"{k}{params[k]}" for k in order]
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
    for i in progress_bar(starts, desc=attack_key(spec), unit="batch", show=progress):
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
