"""The audit itself: every configured attack at every eps, each image's worst case, TPR against perturbation
size, and false alarms under benign corruptions and on real footage.

Attacks run on the test images the classifier gets right (an image it already gets wrong proves
nothing), through `run_attack`, so batched on BN-folded copies. Every output is rounded to uint8
before it is scored, as a camera would deliver it. Three threat models:
- bounded attacks (they take `eps`) run once per eps;
- minimal-perturbation attacks (DeepFool, C&W L2) run once; at each eps an image counts only if
  the perturbation, measured in the audit's norm, is within it;
- patch attacks (they take `area`) are a different, physical threat model: reported beside the
  curve, not in the eps worst case.
"""
from __future__ import annotations

import time
from typing import Literal

import torch
from trainer.progress import progress_bar

from trainer.attacks import AttackSpec, run_attack
from trainer.attacks.registry import accepted_parameters, needs_detector
from trainer.audit.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from trainer.audit.families import grade_families
from trainer.audit.footage import footage_frames
from trainer.audit.score import outcome, quantise, rate
from trainer.audit.target import Target
from trainer.config import AuditConfig

Threat = Literal["bounded", "minimal", "patch"]


def threat(name: str) -> Threat:
    """Which threat model an attack's result is judged under (see the module docstring)."""
    taken = accepted_parameters(name)
    return "bounded" if "eps" in taken else "patch" if "area" in taken else "minimal"


def audit(cfg: AuditConfig, t: Target, progress: bool = True) -> dict:
    """The audit's results as JSON-ready primitives (see `report.py` for how they are presented)."""
    clean = outcome(t.model, t.threshold, t.x, t.x, t.y, cfg.norm, cfg.batch_size)
    correct = (~clean.misclassified).to(t.x.device)
    x, y = t.x[correct], t.y[correct]
    attacks = _attacks(cfg, t, x, y, progress)
    return {
        "detector": t.detector, "threshold": t.threshold, "threshold_fpr": t.threshold_fpr, "calibration": t.calibration,
        "norm": cfg.norm,
        "images": len(t.x), "correct": len(x), "first_test_image": t.first_image,
        "overlap_with_detector_evaluation": max(0, t.evaluated_images - t.first_image),
        "clean_accuracy": 1 - rate(clean.misclassified), "clean_fpr": rate(clean.flagged),
        "attacks": attacks, "worst_case": _worst_case(cfg, attacks, len(x)),
        "tpr_by_size": _tpr_by_size(cfg, t, x, y, progress),
        "corruptions": _corruptions(cfg, t, clean) if cfg.corruptions else [],
        "footage": _footage(cfg, t),
        "families": grade_families(cfg, t, progress) if cfg.families else None,
    }


def _attacks(cfg: AuditConfig, t: Target, x: torch.Tensor, y: torch.Tensor, progress: bool) -> list[dict]:
    """One row per attack and eps: fooled (within budget), TPR on those, undetected error; plus per-image wins."""
    runs = [(a, eps) for a in cfg.attacks for eps in (cfg.eps if threat(a.name) == "bounded" else [None])]
    rows = []
    for attack, eps in progress_bar(runs, desc="audit attacks", unit="attack", show=progress):
        spec = cfg.attack_spec(attack, eps or cfg.eps[0], t.threshold)  # eps is dropped where not taken
        began = time.perf_counter()
        adv = run_attack(spec, t.model.classifier, x, y, t.model.detector_logit, cfg.batch_size, progress=progress)
        seconds = time.perf_counter() - began
        o = outcome(t.model, t.threshold, x, adv, y, cfg.norm, cfg.batch_size)
        kind = threat(attack.name)
        for e in cfg.eps if kind == "minimal" else [eps]:
            fooled, wins = o.fooled(e), o.undetected(e)
            rows.append({"attack": attack.name, "adaptive": needs_detector(attack.name), "threat": kind, "eps": e,
                         "params": spec.params(), "fooled": rate(fooled), "tpr": rate(o.flagged, among=fooled),
                         "attempts_flagged": rate(o.flagged),
                         "undetected": rate(wins), "median_size": o.size.median().item() if len(x) else None,
                         "seconds": seconds, "wins": _ids(wins), "fooled_images": _ids(fooled)})
    return rows


def _worst_case(cfg: AuditConfig, rows: list[dict], n: int) -> list[dict]:
    """Per eps, an image counts if ANY attack evades (AutoAttack's per-image worst case); likewise over the patches.

    TPR: of the images some attack fools, those where every fooling output is flagged.
    """
    out = []
    for eps in [*cfg.eps, None]:
        chosen = [r for r in rows if r["eps"] == eps]
        if chosen:
            wins = set().union(*(r["wins"] for r in chosen))
            fooled = set().union(*(r["fooled_images"] for r in chosen))
            out.append({"eps": eps, "threat": "patch" if eps is None else "bounded", "attacks": [r["attack"] for r in chosen],
                        "fooled": len(fooled) / n if n else None, "tpr": 1 - len(wins) / len(fooled) if fooled else None,
                        "undetected": len(wins) / n if n else None})
    return out


def _ids(mask: torch.Tensor) -> list[int]:
    """Indices (into the correctly classified images) where `mask` holds: what the worst case unites."""
    return mask.nonzero().squeeze(1).tolist()


def _tpr_by_size(cfg: AuditConfig, t: Target, x: torch.Tensor, y: torch.Tensor, progress: bool) -> list[dict]:
    """Oblivious PGD (10 steps, one random start) at each budget of `cfg.tpr_eps`: TPR on its misclassified
    outputs, and the share of all its outputs flagged (attempt detection: the alarm an attacker trips while
    still searching, whether or not this try fooled the classifier). Where the run has a familiarity gate,
    also the share of outputs it calls unfamiliar, which the agent does not judge, and the share the agent
    flags (flagged and familiar).

    A detector keyed to small perturbations may let large ones through; this shows it.
    """
    rows = []
    for norm, budgets in cfg.tpr_eps.items():
        for eps in budgets:
            spec = AttackSpec(name="pgd", eps=eps, norm=norm, steps=10, restarts=1)
            adv = run_attack(spec, t.model.classifier, x, y, batch_size=cfg.batch_size, progress=progress)
            o = outcome(t.model, t.threshold, x, adv, y, norm, cfg.batch_size)
            row = {"norm": norm, "eps": eps, "attack": spec.name, "fooled": rate(o.misclassified),
                   "tpr": rate(o.flagged, among=o.misclassified), "attempts_flagged": rate(o.flagged)}
            if t.unfamiliar is not None:
                unfamiliar = torch.cat([t.unfamiliar(quantise(adv[i:i + cfg.batch_size])).cpu()
                                        for i in range(0, len(adv), cfg.batch_size)])
                row |= {"attempts_unfamiliar": rate(unfamiliar), "attempts_judged_flagged": rate(o.flagged & ~unfamiliar)}
            rows.append(row)
    return rows


def _corruptions(cfg: AuditConfig, t: Target, clean) -> list[dict]:
    """FPR (flagged) and accuracy on every audit image under each corruption and severity; the first row is uncorrupted."""
    rows = [{"corruption": "none", "severity": 0, "fpr": rate(clean.flagged), "accuracy": 1 - rate(clean.misclassified)}]
    images = t.x.cpu().numpy()
    for name in CORRUPTIONS:
        for s in range(SEVERITIES):
            xc = torch.from_numpy(corrupt(images, name, s)).to(t.x.device)
            o = outcome(t.model, t.threshold, t.x, xc, t.y, cfg.norm, cfg.batch_size)
            rows.append({"corruption": name, "severity": s + 1, "fpr": rate(o.flagged), "accuracy": 1 - rate(o.misclassified)})
    return rows


@torch.no_grad()
def _footage(cfg: AuditConfig, t: Target) -> list[dict]:
    """FPR on frames of each real video, preprocessed as the agent does; a missing video is listed as skipped."""
    _, channels, height, width = t.x.shape
    rows = []
    for path in cfg.footage:
        frames = footage_frames(path, cfg.footage_frames, height, width, channels) if path.is_file() else None
        if frames is None:
            rows.append({"video": path.name, "path": str(path), "frames": 0, "fpr": None})
            continue
        flagged = [torch.sigmoid(t.model.detector_logit(torch.from_numpy(frames[i : i + cfg.batch_size]).to(t.x.device).float()))
                   >= t.threshold for i in range(0, len(frames), cfg.batch_size)]
        rows.append({"video": path.name, "path": str(path), "frames": len(frames), "fpr": rate(torch.cat(flagged).cpu())})
    return rows
