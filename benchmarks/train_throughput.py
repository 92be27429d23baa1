"""Training throughput of the paper's ResNet-32 at 32x32x3, through the real training loop.

Runs `trainer.classify.train_classifier` on random uint8 data for a few epochs and reports
images/s of the last (warm) epoch, plus what that means for the paper's 100-epoch recipe.
`--main-job` measures the main job's classifier instead: ResNet-8 at 28x28x1, FGSM-RS at l_inf 8
(configs/demo.yaml). The variants run one after the other, so compare them as ratios, on a quiet machine.

    python benchmarks/train_throughput.py [--images 5000] [--epochs 2] [--depth 32] [--main-job]
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


def random_split(n: int, shape: tuple[int, int, int], gen: torch.Generator) -> Split:
    return Split(torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=gen),
                 torch.randint(0, 10, (n,), generator=gen))


def measure(images: int, epochs: int, depth: int, shape: tuple[int, int, int], **train) -> float:
    """Images/s of the last epoch of a short run on random `shape` images with the given `train` config values."""
    gen = torch.Generator().manual_seed(0)
    data = Dataset("random", [str(k) for k in range(10)], random_split(images, shape, gen), random_split(200, shape, gen),
                   random_split(200, shape, gen))
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
    parser.add_argument("--main-job", action="store_true", help="ResNet-8 on 28x28x1 with FGSM-RS at l_inf 8, as "
                        "configs/demo.yaml trains it (overrides --depth)")
    args = parser.parse_args()
    shape, base = (3, 32, 32), {}
    if args.main_job:
        args.depth, shape, base = 8, (1, 28, 28), {"adversarial": {"method": "fgsm_rs", "eps": 8}}
    on_gpu = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if on_gpu else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    variants = {"default": {}, "NCHW (channels_last: false)": {"channels_last": False}}
    if on_gpu:
        variants |= {"fp32 (no bf16)": {"bf16": False}, "torch.compile": {"compile": True},
                     "batch 512, lr 0.2": {"batch_size": 512, "lr": 0.2, "compile": True}}
    what = "FGSM-RS at l_inf 8" if args.main_job else "clean"
    print(f"ResNet-{args.depth}, {'x'.join(map(str, shape[1:]))}x{shape[0]}, {what}, {args.images} images/epoch, "
          f"device: {device}, torch {torch.__version__}")
    print(f"{'variant':<30}{'images/s':>10}{'time vs default':>17}{'paper recipe (45k x 100 ep)':>30}")
    first = None
    for name, train in variants.items():
        rate = measure(args.images, args.epochs, args.depth, shape, **base, **train)
        first = first or rate
        print(f"{name:<30}{rate:>10.0f}{first / rate:>17.2f}{45000 * 100 / rate / 60:>26.1f} min")


if __name__ == "__main__":
    main()
