"""The alarm graded per family of perturbation: where it goes, its shape, its norm, on the data set's frames and on
frames through a camera model.

A detector graded on the attack it trained on measures its memory. So every family of
`audit.families` (trainer/attacks/registry.py FAMILIES: dense PGD and APGD, object-confined,
low-frequency, sparse, the sticker, ...) attacks the classifier alone at every budget of
`audit.family_eps` (once, at its own budget, for families that take none), and each row says
whether the audited detector trained on that family. The operator's number is the silent
misclassification: a frame that fooled the classifier and was not flagged, over the images attacked.

Domains: `data set` is the test frames as stored; `camera` passes them through the camera model
(corruptions.camera: black level, shot and read noise, at a severity drawn per frame) before the
attack, as a camera delivers them, so that no result rests on a data set's exact-zero background.
Each domain attacks the frames the classifier gets right in it.
"""
from __future__ import annotations

import time

import torch

from trainer.attacks import run_attack
from trainer.attacks.registry import accepted_parameters, family
from trainer.audit.corruptions import through_camera
from trainer.audit.score import outcome, rate
from trainer.audit.target import Target
from trainer.config import AuditConfig

DOMAINS = ("data set", "camera")


def camera_frames(x: torch.Tensor, seed: int) -> torch.Tensor:
    """uint8 frames `x` through the camera model (`through_camera`), on x's device."""
    return torch.from_numpy(through_camera(x.cpu().numpy(), seed)).to(x.device)


def grade_families(cfg: AuditConfig, t: Target, progress: bool) -> dict:
    """Per domain, the unattacked frames' false alarms, and per family and budget: attempts flagged, the share
    fooled, TPR on the fooling frames and the silent misclassifications, as JSON-ready primitives."""
    domains, rows = [], []
    for domain in DOMAINS if cfg.camera else DOMAINS[:1]:
        frames = t.x if domain == "data set" else camera_frames(t.x, cfg.seed)
        clean = outcome(t.model, t.threshold, frames, frames, t.y, "linf", cfg.batch_size)
        correct = (~clean.misclassified).to(frames.device)
        x, y = frames[correct], t.y[correct]
        domains.append({"domain": domain, "images": len(frames), "correct": len(x),
                        "accuracy": 1 - rate(clean.misclassified), "flagged": rate(clean.flagged)})
        for attack in cfg.families:
            name = family(attack.name)
            bounded = "eps" in accepted_parameters(attack.name)
            for eps in cfg.family_eps if bounded else [None]:
                spec = cfg.family_spec(attack, eps, camera=domain == "camera")
                began = time.perf_counter()
                adv = run_attack(spec, t.model.classifier, x, y, batch_size=cfg.batch_size, progress=progress)
                seconds = time.perf_counter() - began
                o = outcome(t.model, t.threshold, x, adv, y, "linf", cfg.batch_size)
                rows.append({"family": name, "attack": attack.name, "domain": domain, "eps": eps,
                             "budget": budget(spec.params()), "trained": name in t.trained_families,
                             "images": len(x), "attempts_flagged": rate(o.flagged), "fooled": rate(o.misclassified),
                             "tpr": rate(o.flagged, among=o.misclassified), "silent": rate(o.undetected()),
                             "silent_count": int(o.undetected().sum()), "seconds": seconds})
    return {"domains": domains, "rows": rows, "trained_families": sorted(t.trained_families)}


def budget(params: dict) -> str:
    """The budget of a family's attack in words: its l_inf or l_2 eps, its pixels or its sticker's area."""
    if "eps" in params:
        return f"{params.get('norm', 'linf').replace('linf', 'l_inf').replace('l2', 'l_2')} {params['eps']:g}"
    if "pixels" in params:
        return f"{params['pixels']} pixels"
    if "area" in params:
        return f"{params['area']:.0%} of the frame"
    return "minimal"

