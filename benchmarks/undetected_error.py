"""Undetected error of a run's detector under the adaptive white-box attack, per eps (issue 12's measuring stick).

Images: held-out test images (never trained or calibrated on) that the classifier gets right.
Each is attacked by the adaptive hinge attack (trainer/attacks/adaptive.py) at the detector's
calibrated threshold with restarts; frames are rounded to uint8 before they are scored.
Undetected error = misclassified AND p_adv <= threshold, over those images. Also prints the
clean FPR at the threshold on the same held-out images, and the mean p_adv per eps (it should
rise with eps). `trainer audit` (issue 11) is the full worst case over many attacks.

    python benchmarks/undetected_error.py --run runs/demo --detector adaptive-eps4 --images 300
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.config import load_config  # noqa: E402
from trainer.attacks import AttackSpec, run_attack  # noqa: E402
from trainer.config import Config  # noqa: E402
from trainer.data import load_dataset  # noqa: E402
from common.stats import wilson_interval  # noqa: E402
from trainer.rundir import load_detected_classifier  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="run directory")
    p.add_argument("--detector", required=True, help="detector name under run/detectors/")
    p.add_argument("--eps", type=float, nargs="+", default=[4.0], help="l_inf budgets in 0..255 units")
    p.add_argument("--images", type=int, default=300, help="test images attacked (from --offset on)")
    p.add_argument("--offset", type=int, default=0, help="first test image")
    p.add_argument("--steps", type=int, default=100, help="attack steps per restart")
    p.add_argument("--restarts", type=int, default=3, help="attack restarts (the first from the clean image)")
    args = p.parse_args()

    torch.manual_seed(0)
    model, _, ckpt = load_detected_classifier(args.run, args.detector)
    threshold = ckpt.threshold
    test = load_dataset(load_config(Config, args.run / "config.yaml").data).test
    x = test.images[args.offset : args.offset + args.images].float()
    y = test.labels[args.offset : args.offset + args.images]
    with torch.no_grad():
        pred, logit = model(x)
    correct = pred.argmax(1) == y
    flagged = torch.sigmoid(logit) > threshold
    n_clean = len(x)
    lo, hi = wilson_interval(int(flagged.sum()), n_clean)
    print(f"{args.detector}: threshold {threshold:.4f}; {n_clean} held-out test images, accuracy {correct.float().mean():.3f}, "
          f"clean FPR {flagged.float().mean():.4f} [{lo:.4f}, {hi:.4f}]")
    x, y = x[correct], y[correct]
    for eps in args.eps:
        began = time.time()
        spec = AttackSpec(name="adaptive", eps=eps, threshold=threshold, steps=args.steps, restarts=args.restarts)
        adv = run_attack(spec, model.classifier, x, y, detector_logit=model.detector_logit).round().clamp(0, 255)
        with torch.no_grad():
            pred, logit = model(adv)
        p_adv = torch.sigmoid(logit)
        undetected = (pred.argmax(1) != y) & (p_adv <= threshold)
        k = int(undetected.sum())
        lo, hi = wilson_interval(k, len(x))
        print(f"eps {eps:g}: undetected error {k}/{len(x)} = {k / len(x):.4f} [{lo:.4f}, {hi:.4f}]  "
              f"misclassified {(pred.argmax(1) != y).float().mean():.3f}  flagged {(p_adv > threshold).float().mean():.3f}  "
              f"mean p_adv {p_adv.mean():.3f}  ({time.time() - began:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
