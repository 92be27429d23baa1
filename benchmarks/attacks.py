"""This project's attacks against torchattacks 3.5.1 and Foolbox 3.3.4: same model, batch and machine.

    pip install -e '.[train,bench]' && pip install --no-deps torchattacks==3.5.1   # README: why --no-deps
    python benchmarks/attacks.py [--batch 64] [--threads 1] [--checkpoint runs/bench/resnet32.pt]

The model is a ResNet-32 (trainer.models.ResNet) on 32x32x3 images, trained here for a few
hundred steps on a synthetic 10-class task (a faint class template over smooth noise), or
loaded from --checkpoint when that file exists (and saved there otherwise). Every attack gets
the same batch of correctly classified test images; budgets are in 0..255 units. For each row
the table gives images/s from the median wall time and the median CPU time of --rounds
interleaved runs (at most 3 for the slow reference DeepFools; CPU time is the steadier
figure on a machine shared with other jobs, and equals wall time for one thread without
contention), success rate (prediction != label) before and after rounding to uint8, and the
median l_2 / l_inf perturbation. The reference libraries are imported here only; they are
never runtime dependencies.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainer.attacks import AttackSpec, deepfool, run_attack, success_report
from trainer.models import ResNet

CLASSES = 10


def synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8-valued float images [n, 3, 32, 32]: a faint class template over smooth noise."""
    templates = F.interpolate(torch.rand(CLASSES, 3, 8, 8, generator=torch.Generator().manual_seed(0)),
                              scale_factor=4, mode="bilinear") * 255
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    smooth = F.interpolate(torch.randn(n, 3, 4, 4, generator=g), scale_factor=8, mode="bilinear")
    x = 128 + 0.25 * (templates[y] - 128) + 50 * smooth + 3 * torch.randn(n, 3, 32, 32, generator=g)
    return x.clamp(0, 255).round(), y


def classifier(checkpoint: Path | None, steps: int) -> ResNet:
    model = ResNet(depth=32, in_channels=3, num_classes=CLASSES)
    if checkpoint is not None and checkpoint.exists():
        model.load_state_dict(torch.load(checkpoint, weights_only=True))
        return model.eval()
    torch.manual_seed(0)
    x, y = synthetic(4096, seed=1)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    start = time.perf_counter()
    for _ in range(steps):
        i = torch.randint(0, len(x), (64,))
        opt.zero_grad()
        F.cross_entropy(model(x[i]), y[i]).backward()
        opt.step()
    print(f"trained ResNet-32 for {steps} steps in {time.perf_counter() - start:.0f} s")
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), checkpoint)
    return model.eval()


class UnitRange(nn.Module):
    """torchattacks wants images in [0, 1]; the model takes 0..255."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x * 255)


def rows(model: nn.Module) -> list[tuple[str, str, Callable, int]]:
    """(group, implementation, attack(x, y) -> x_adv in 0..255, runs) for every compared attack."""
    import foolbox as fb
    import torchattacks as ta

    fmodel = fb.PyTorchModel(model, bounds=(0, 255))
    unit = UnitRange(model).eval()

    def foolbox(attack, eps):
        return lambda x, y: attack(fmodel, x, y, epsilons=eps)[1]

    def torchattacks(attack):
        return lambda x, y: attack(x / 255, y) * 255

    def ours(name, **params):  # the path the trainer takes: run_attack, one batch
        return lambda x, y: run_attack(AttackSpec(name=name, **params), model, x, y, batch_size=len(x))

    return [
        ("fast linf eps=4", "this project", ours("fast", eps=4), 5),
        ("iterative linf eps=4 (a=1, 10 steps)", "this project", ours("iterative_linf", eps=4), 5),
        ("iterative linf eps=4 (a=1, 10 steps)", "torchattacks BIM",
         torchattacks(ta.BIM(unit, eps=4 / 255, alpha=1 / 255, steps=10)), 5),
        ("iterative linf eps=4 (a=1, 10 steps)", "foolbox LinfBasicIterative",
         foolbox(fb.attacks.LinfBasicIterativeAttack(abs_stepsize=1, steps=10, random_start=False), 4), 5),
        ("iterative l2 eps=80 (a=20, 10 steps)", "this project", ours("iterative_l2", eps=80), 5),
        ("iterative l2 eps=80 (a=20, 10 steps)", "foolbox L2BasicIterative",
         foolbox(fb.attacks.L2BasicIterativeAttack(abs_stepsize=20, steps=10, random_start=False), 80), 5),
        ("deepfool l2 (overshoot 0.02, 50 it.)", "this project", ours("deepfool_l2"), 5),
        ("deepfool l2 (overshoot 0.02, 50 it.)", "this project, BN not folded",
         lambda x, y: deepfool(model, x, y, "l2"), 5),
        ("deepfool l2 (overshoot 0.02, 50 it.)", "torchattacks DeepFool",
         torchattacks(ta.DeepFool(unit, steps=50, overshoot=0.02)), 3),
        ("deepfool l2 (overshoot 0.02, 50 it.)", "foolbox L2DeepFool",
         foolbox(fb.attacks.L2DeepFoolAttack(steps=50, candidates=CLASSES, overshoot=0.02), None), 3),
        ("deepfool linf (overshoot 0.02, 50 it.)", "this project", ours("deepfool_linf"), 5),
        ("deepfool linf (overshoot 0.02, 50 it.)", "foolbox LinfDeepFool",
         foolbox(fb.attacks.LinfDeepFoolAttack(steps=50, candidates=CLASSES, overshoot=0.02), None), 3),
        ("pgd linf eps=4 (a=0.25, 40 steps, random start)", "this project", ours("pgd", eps=4, alpha=0.25, steps=40,
                                                                                  restarts=1), 5),
        ("pgd linf eps=4 (a=0.25, 40 steps, random start)", "torchattacks PGD",
         torchattacks(ta.PGD(unit, eps=4 / 255, alpha=0.25 / 255, steps=40, random_start=True)), 5),
        ("pgd linf eps=4 (a=0.25, 40 steps, random start)", "foolbox LinfPGD",
         foolbox(fb.attacks.LinfPGD(abs_stepsize=0.25, steps=40, random_start=True), 4), 5),
        # Ours measures distance in [0, 1] pixel units (the paper's c); foolbox in the model's 0..255.
        ("C&W l2 (5 x 100 Adam steps, lr 0.01, c0 0.01)", "this project",
         ours("carlini_wagner_l2", steps=100, binary_steps=5, c=0.01, lr=0.01), 3),
        ("C&W l2 (5 x 100 Adam steps, lr 0.01, c0 0.01)", "foolbox L2CarliniWagner",
         foolbox(fb.attacks.L2CarliniWagnerAttack(binary_search_steps=5, steps=100, stepsize=0.01,
                                                  initial_const=0.01 * 255**2, abort_early=False), None), 3),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per attack (reference DeepFools: at most 3)")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--only", default="", help="run only the rows whose attack contains this text, e.g. deepfool")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="load the ResNet-32 state_dict from here, or train and save it there")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = classifier(args.checkpoint, args.train_steps)
    x, y = synthetic(4 * args.batch, seed=2)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    print(f"clean accuracy {correct.float().mean():.3f}; attacking {args.batch} correctly classified images")
    x, y = x[correct][: args.batch], y[correct][: args.batch]

    # Rounds interleave the attacks, so a neighbour's load on a shared machine hits all of them alike.
    table = [row for row in rows(model) if args.only in row[0]]
    wall: list[list[float]] = [[] for _ in table]
    cpu: list[list[float]] = [[] for _ in table]
    results: list[torch.Tensor | None] = [None] * len(table)
    for r in range(args.rounds):
        for i, (_, _, attack, runs) in enumerate(table):
            if r >= runs:
                continue
            w, c = time.perf_counter(), time.process_time()
            results[i] = attack(x, y).detach()
            wall[i].append(time.perf_counter() - w)
            cpu[i].append(time.process_time() - c)

    print(f"\ntorch {torch.__version__}, {args.threads} thread(s), {platform.machine()}, batch {len(x)}, "
          f"median of {args.rounds} interleaved runs\n")
    print("| attack | implementation | img/s (wall) | img/s (CPU time) | success | success uint8 "
          "| median l2 | median linf |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for (group, name, _, _), w, c, x_adv in zip(table, wall, cpu, results):
        r = success_report(model, x, x_adv, y)
        print(f"| {group} | {name} | {len(x) / statistics.median(w):.1f} | {len(x) / statistics.median(c):.1f} | "
              f"{r['success']:.3f} | {r['success_uint8']:.3f} | {r['median_l2']:.2f} | {r['median_linf']:.3f} |")


if __name__ == "__main__":
    main()
