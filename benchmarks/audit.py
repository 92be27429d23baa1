"""Cost of the CPU-protocol security audit (issue #11): 1,000 held-out test images at one eps.

    python benchmarks/audit.py --run runs/demo [--images 1000] [--eps 4] [--threads 2] [--device cpu|cuda] [--set audit.steps=200 ...]

Runs `trainer audit`'s own code on RUN's deployed detector with the default attack list
(every adaptive attack with audit.steps steps and audit.restarts restarts) at one eps, on the
last IMAGES images of the full test split (the run's `data.test_limit` is lifted so the images
lie beyond anything the run evaluated on). It prints the wall and CPU time of each attack and
of the whole audit, and the worst case found; nothing is written (RUN/audit stays as it is).
CPU time is the steadier figure on a shared machine: with N threads and no
contention, wall time is about CPU time / N.
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from common.config import load_config
from common.robustness import line
from trainer.audit import runner
from trainer.audit.summary import robustness
from trainer.audit.target import load_target
from trainer.config import Config
from trainer.run import open_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="a run directory with a trained deployed detector")
    ap.add_argument("--images", type=int, default=1000, help="test images audited (the protocol: 1,000)")
    ap.add_argument("--eps", type=float, default=4.0, help="the one eps of the protocol")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the attacks run (the protocol's target is on CPU)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="further audit.* overrides, e.g. audit.steps=200")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(Config, args.run / "config.yaml", [f"run_dir={args.run}", f"device={args.device}", "data.test_limit=null",
                                                         f"audit.images={args.images}", f"audit.eps=[{args.eps}]",
                                                         *args.overrides])
    ctx = open_run(cfg)
    target = load_target(ctx, cfg.audit.images)
    wall, cpu = time.perf_counter(), time.process_time()
    result = runner.audit(cfg.audit, target, progress=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    machine = torch.cuda.get_device_name() if ctx.device.type == "cuda" else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"\n{machine}, torch {torch.__version__}; "
          f"detector {result['detector']}, {result['images']} images ({result['correct']} correctly classified, "
          f"test images {result['first_test_image']}+), eps {args.eps:g}")
    print("| attack | parameters | seconds (wall) | undetected |\n|---|---|---|---|")
    for r in result["attacks"]:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items() if k not in ("eps", "threshold"))
        print(f"| {r['attack']} | {params} | {r['seconds']:.0f} | {r['undetected']:.3f} |")
    print(f"whole audit (attacks, TPR by size, corruptions, footage): {wall:.0f} s wall, {cpu:.0f} s CPU")
    print(f"robustness: {line(robustness({**result, 'headline_eps': args.eps}))}")


if __name__ == "__main__":
    main()
