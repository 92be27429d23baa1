"""Training throughput of the paper's ResNet-32 at 32x32x3, through the real training loop.

Runs `trainer.classify.train_classifier` on random uint8 data for a few epochs and reports
images/s of the last (warm) epoch, plus what that means for the paper's 100-epoch recipe.

    python benchmarks/train_throughput.py [--images 5000] [--epochs 2] [--depth 32]
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

from trainer.classify import train_classifier
from trainer.config import Config
from trainer.data import Dataset, Split
from trainer.distributed import World
from trainer.run import pick_device


def random_split(n: int, gen: torch.Generator) -> Split:
    return Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen),
                 torch.randint(0, 10, (n,), generator=gen))


def measure(images: int, epochs: int, depth: int, **train) -> float:
    """Images/s of the last epoch of a short run with the given `train` config values."""
    gen = torch.Generator().manual_seed(0)
    data = Dataset("random", [str(k) for k in range(10)], random_split(images, gen), random_split(200, gen), random_split(200, gen))
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = Config.model_validate({"run_dir": run_dir, "model": {"depth": depth},
                                     "train": {"epochs": epochs, "lr_milestones": [epochs + 1], **train}})
        device = pick_device("auto", World())
        train_classifier(cfg, data, device, World())
        last = json.loads((Path(run_dir) / "metrics.jsonl").read_text().splitlines()[-1])
    return images / last["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=2, help="epochs; the last one is timed")
    parser.add_argument("--depth", type=int, default=32)
    args = parser.parse_args()
    on_gpu = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if on_gpu else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    variants = {"default": {}}
    if on_gpu:
        variants |= {"fp32 (no bf16)": {"bf16": False}, "torch.compile": {"compile": True},
                     "batch 512, lr 0.2": {"batch_size": 512, "lr": 0.2, "compile": True}}
    print(f"ResNet-{args.depth}, 32x32x3, {args.images} images/epoch, device: {device}, torch {torch.__version__}")
    print(f"{'variant':<22}{'images/s':>12}{'paper recipe (45k x 100 ep)':>32}")
    for name, train in variants.items():
        rate = measure(args.images, args.epochs, args.depth, **train)
        print(f"{name:<22}{rate:>12.0f}{45000 * 100 / rate / 60:>27.1f} min")


if __name__ == "__main__":
    main()
