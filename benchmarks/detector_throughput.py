"""Training throughput of the frame detector (the main job's alarm) by width and memory format, side by side.

One Adam step on a batch of 28x28x1 frames is timed for each variant in turn, round after round, so
that a slowdown of the machine falls on every variant alike; the table gives each variant's median
step and its ratio to the first (NCHW at the first width: the frame detector as trained before width and
channels_last). The detector is built as training builds it
(`DetectedClassifier.build`), plus the same network left in torch's default (NCHW) memory format.

    python benchmarks/detector_throughput.py [--widths 32,24,16] [--rounds 5] [--steps 10]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from trainer.models import DetectedClassifier, ResNet


def step_seconds(model: DetectedClassifier, x: torch.Tensor, target: torch.Tensor, opt: torch.optim.Optimizer,
                 steps: int) -> float:
    """Mean seconds of one detector training step over `steps`, after one untimed step."""
    for i in range(steps + 1):
        if i == 1:
            began = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(model.detector_logit(x), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - began) / steps


def widths_arg(text: str) -> list[int]:
    """`32,24` -> [32, 24]; anything else is argparse's one error line and exit 2."""
    try:
        widths = [int(w) for w in text.split(",")]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return widths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=widths_arg, default=[32, 24, 16],
                        help="frame detector widths (config `width`), comma-separated")
    parser.add_argument("--batch-size", type=int, default=128, help="frames per step (configs/demo.yaml: 128)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over every variant; the median round is reported")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant and round")
    args = parser.parse_args()
    torch.manual_seed(0)
    classifier = ResNet(8, 1, 10).eval()
    x = torch.rand(args.batch_size, 1, 28, 28) * 255
    target = (torch.rand(args.batch_size) > 0.5).float()
    variants = {}
    for width in args.widths:
        shipped = DetectedClassifier.build(classifier, "frame", 0, width=width)
        default = DetectedClassifier.build(classifier, "frame", 0, width=width)
        default.detector.to(memory_format=torch.contiguous_format)
        for label, model in ((f"width {width}, NCHW", default), (f"width {width}, channels_last (training)", shipped)):
            model.detector.train()
            variants[label] = (model, torch.optim.Adam(model.detector.parameters(), 1e-3))
    times = {label: [] for label in variants}
    for _ in range(args.rounds):
        for label, (model, opt) in variants.items():
            times[label].append(step_seconds(model, x, target, opt, args.steps))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine()) if Path("/proc/cpuinfo").exists() else platform.machine()
    print(f"frame detector, batch {args.batch_size} of 28x28x1, {args.rounds} rounds x {args.steps} steps, "
          f"CPU {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    first = statistics.median(next(iter(times.values())))
    print(f"{'variant':<36}{'ms/step':>10}{'ratio':>8}")
    for label, seconds in times.items():
        median = statistics.median(seconds)
        print(f"{label:<36}{median * 1000:>10.1f}{median / first:>8.2f}")


if __name__ == "__main__":
    main()
