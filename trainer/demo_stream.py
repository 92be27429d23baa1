"""A labelled demo stream for the agent: test images with adversarial bursts at known frames.

Frames are written as PNG (lossless) so that the perturbations reach the agent exactly as
computed (after the uint8 rounding any camera stream applies). Bursts rotate through the families of
perturbation of the run's audit, each by an attacker who knows only the classifier, and the adaptive
white-box attacker who knows the deployed classifier, detector and threshold; the second half of the
stream repeats them on frames through a camera model. `labels.json` names the adversarial frames of
each kind and every frame's true class so `agent watch --labels` can score detection, false
alarms and silent misclassifications per kind.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from common.config import load_config
from trainer.attacks import AttackSpec, run_attack
from trainer.attacks.registry import family
from trainer.audit.families import camera_frames
from trainer.config import Config
from trainer.data import load_dataset
from trainer.detector_checkpoint import DetectorCheckpoint
from trainer.rundir import RunDir, load_detected_classifier, resolve_detector
from trainer.stamped import seeded


def adversarial_frames(frames: int, burst: int, period: int) -> list[int]:
    """Indices of the adversarial frames: `burst` consecutive frames starting mid-way through every `period`."""
    start = period // 2
    return [i for i in range(frames) if (i % period) - start in range(burst)]


def burst_kinds(adversarial: list[int], period: int, kinds: list[str]) -> dict[str, list[int]]:
    """The adversarial frames of each burst kind: burst k is of kind kinds[k % len(kinds)]."""
    return {kind: [i for i in adversarial if kinds[(i // period) % len(kinds)] == kind] for kind in kinds}


def burst_attacks(cfg: Config, det_ckpt: DetectorCheckpoint, eps: float, adaptive_steps: int = 60,
                  adaptive_restarts: int = 1) -> dict[str, AttackSpec]:
    """The attack of each burst kind, first on the data set's frames, then (kind "... (camera)") on frames
    through the camera model.

    One oblivious kind per family of the run's audit (`audit.families`: an attacker who sees the classifier but
    not the internal detector, the paper's footnote 2) at l_inf `eps`, and `adaptive`: the adaptive white-box
    attack (trainer/attacks/adaptive.py) on the deployed classifier + detector at its shipped threshold and the
    detector's training eps, one run of 60 steps: the stream shows what an adaptive attacker does to the agent in
    seconds (100 steps x 3 restarts cost the main job 28 s more); `trainer audit` is where steps and restarts count.
    """
    adaptive = AttackSpec(name="adaptive", eps=det_ckpt.adversary.get("eps", eps), threshold=det_ckpt.threshold,
                          steps=adaptive_steps, restarts=adaptive_restarts)
    kinds = {}
    for camera in (False, True):
        suffix = " (camera)" if camera else ""
        for attack in cfg.audit.families:
            kinds[family(attack.name) + suffix] = cfg.audit.family_spec(attack, eps, camera)
        kinds["adaptive" + suffix] = adaptive
    return kinds


def write_demo_stream(run_dir: Path, out: Path, detector: str | None = None, frames: int | None = None,
                      burst: int = 8, period: int = 60, eps: float = 16.0) -> dict:
    """Write `out/frames/%05d.png` and `out/labels.json`; returns the labels.

    Bursts rotate through the kinds of `burst_attacks`; the frames of the camera kinds' half of the stream, clean
    ones too, went through the camera model (`camera_frames`) first. `frames` defaults to one burst of every
    kind. labels.json lists all adversarial frames (`adversarial`), those of each kind (`kinds`), each kind's
    attack (`attacks`), the frames through the camera model (`camera`) and the true class of every frame
    (`classes`, indices into `class_names`).
    """
    name = resolve_detector(run_dir, detector)
    model, _, det_ckpt = load_detected_classifier(run_dir, name)
    cfg = load_config(Config, RunDir(run_dir).config)
    attacks = burst_attacks(cfg, det_ckpt, eps)
    frames = frames or period * len(attacks)
    data = load_dataset(cfg.data)
    test = data.test
    pick = torch.arange(frames) % len(test)
    images, labels = test.images[pick], test.labels[pick]
    camera = [i for i in range(frames) if i >= period * len(attacks) // 2]
    images[camera] = camera_frames(images[camera], cfg.audit.seed)
    adv = adversarial_frames(frames, burst, period)
    kinds = burst_kinds(adv, period, list(attacks))
    with seeded(cfg.audit.seed):  # the attacks' random starts: the same run writes the same stream
        for kind, idx in kinds.items():
            if idx:
                attacked = run_attack(attacks[kind], model.classifier, images[idx], labels[idx],
                                      detector_logit=model.detector_logit, progress=True)
                images[idx] = attacked.round().clamp(0, 255).to(torch.uint8)

    frame_dir = out / "frames"
    frame_dir.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images.permute(0, 2, 3, 1).numpy()):
        bgr = img[..., 0] if img.shape[2] == 1 else cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(frame_dir / f"{i:05d}.png"), bgr)
    with torch.no_grad():
        fooled = (model.classifier(images[adv].float()).argmax(1) != labels[adv]).float().mean().item()
    result = {"frames": frames, "adversarial": adv, "kinds": kinds, "detector": name, "camera": camera,
              "attacks": {k: a.model_dump(exclude_none=True) for k, a in attacks.items()},
              "classifier_fooled": fooled, "pattern": str(frame_dir / "%05d.png"),
              "classes": labels.tolist(), "class_names": data.classes}
    (out / "labels.json").write_text(json.dumps(result, indent=1))
    return result
