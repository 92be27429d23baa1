"""A labelled demo stream for the agent: test images with adversarial bursts at known frames.

Frames are written as PNG (lossless) so that the perturbations reach the agent exactly as
computed (after the uint8 rounding any camera stream applies). `labels.json` names the
adversarial frames so `agent watch --labels` can score detection and false alarms.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from common.config import load_config
from export.rundir import resolve_detector
from trainer.attacks import AttackSpec, run_attack
from trainer.config import Config
from trainer.data import load_dataset
from trainer.models.build import load_detected_classifier


def adversarial_frames(frames: int, burst: int, period: int) -> list[int]:
    """Indices of the adversarial frames: `burst` consecutive frames starting mid-way through every `period`."""
    start = period // 2
    return [i for i in range(frames) if (i % period) - start in range(burst)]


def write_demo_stream(run_dir: Path, out: Path, detector: str | None = None, frames: int = 600,
                      burst: int = 8, period: int = 60) -> dict:
    """Write `out/frames/%05d.png` and `out/labels.json`; returns the labels."""
    name = resolve_detector(run_dir, detector)
    model, _, det_ckpt = load_detected_classifier(run_dir, name)
    cfg = load_config(Config, run_dir / "config.yaml")
    test = load_dataset(cfg.data).test
    pick = torch.arange(frames) % len(test)
    images, labels = test.images[pick], test.labels[pick]
    adv = adversarial_frames(frames, burst, period)
    adversary = dict(det_ckpt["adversary"])
    if adversary["name"] == "dynamic":
        # sigma = 0: an attacker who sees the classifier but not the internal detector (the paper's
        # footnote 2). `trainer fit`'s evaluation and the adaptive experiment cover stronger ones.
        adversary.setdefault("sigma", 0.0)
    spec = AttackSpec(**adversary)
    attacked = run_attack(spec, model.classifier, images[adv], labels[adv], detector_logit=model.detector_logit,
                          progress=True)
    images[adv] = attacked.round().clamp(0, 255).to(torch.uint8)

    frame_dir = out / "frames"
    frame_dir.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images.permute(0, 2, 3, 1).numpy()):
        bgr = img[..., 0] if img.shape[2] == 1 else cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(frame_dir / f"{i:05d}.png"), bgr)
    with torch.no_grad():
        fooled = (model.classifier(images[adv].float()).argmax(1) != labels[adv]).float().mean().item()
    result = {"frames": frames, "adversarial": adv, "detector": name, "attack": spec.model_dump(exclude_none=True),
              "classifier_fooled": fooled, "pattern": str(frame_dir / "%05d.png")}
    (out / "labels.json").write_text(json.dumps(result, indent=1))
    return result
