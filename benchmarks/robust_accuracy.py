"""Robust accuracy of runs' classifiers alone (no detector): per image the worst case over oblivious attacks, per eps.

The adversarially trained classifier's own share of a security number (issue 20): with a
classifier alone, undetected error = 1 - robust accuracy / clean accuracy; a detector can only
lower it. Images: the last `--images` of the test split, never trained on; frames rounded to
uint8 before they are scored. Attacks: FGSM, the basic iterative method, PGD with restarts,
DeepFool l_inf and the gradient-free square attack (which checks the others for gradient masking).

    python benchmarks/robust_accuracy.py --run runs/demo /tmp/standard-run --eps 2 4 8
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.config import load_config  # noqa: E402
from trainer.attacks import AttackSpec, run_attack  # noqa: E402
from trainer.config import Config  # noqa: E402
from trainer.data import load_dataset  # noqa: E402
from trainer.rundir import RunDir, load_classifier  # noqa: E402


def attacks(eps: float, steps: int, restarts: int) -> list[AttackSpec]:
    """The oblivious attacks at l_inf budget `eps`."""
    return [AttackSpec(name="fast", eps=eps), AttackSpec(name="iterative_linf", eps=eps, steps=10, alpha=1.0),
            AttackSpec(name="pgd", eps=eps, steps=steps, restarts=restarts),
            AttackSpec(name="deepfool_linf", max_iter=50), AttackSpec(name="square", eps=eps, queries=steps * restarts * 10)]


@torch.no_grad()
def correct(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per image: classified right on the uint8-rounded frame."""
    return model(images.round().clamp(0, 255)).argmax(1) == labels


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, nargs="+", required=True, help="run directories whose classifiers are measured")
    p.add_argument("--eps", type=float, nargs="+", default=[2.0, 4.0, 8.0], help="l_inf budgets in 0..255 units")
    p.add_argument("--images", type=int, default=200, help="test images, from the end of the test split")
    p.add_argument("--steps", type=int, default=50, help="PGD steps per restart (square: 10 x steps x restarts queries)")
    p.add_argument("--restarts", type=int, default=2, help="PGD restarts")
    args = p.parse_args()
    for run in args.run:
        model, ckpt = load_classifier(run)
        test = load_dataset(load_config(Config, RunDir(run).config).data).test
        x, y = test.images[-args.images:].float(), test.labels[-args.images:]
        clean = correct(model, x, y)
        cells = [f"clean {clean.float().mean():.3f}"]
        for eps in args.eps:
            robust = clean.clone()
            for spec in attacks(eps, args.steps, args.restarts):
                adv = run_attack(spec, model, x, y)
                within = (adv - x).abs().flatten(1).amax(1) <= eps * (1 + 1e-5)  # DeepFool has no budget of its own
                robust &= correct(model, adv, y) | ~within
            cells.append(f"eps {eps:g}: robust {robust.float().mean():.3f}, AT-only undetected {1 - robust.sum() / clean.sum():.3f}")
        print(f"{run} ({ckpt.get('stamp', {}).get('train', {}).get('adversarial') or 'clean training'}): " + "; ".join(cells))


if __name__ == "__main__":
    main()
