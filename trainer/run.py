"""`trainer fit`: the stages of a run, each cached in the run directory.

classifier -> detectors -> experiments. A stage whose outputs exist is loaded, not redone,
so rerunning a finished config does no work and an interrupted one resumes where it stopped.
"""
from __future__ import annotations

from pathlib import Path

import torch

from common.config import ConfigError, dump_config
from trainer.classify import train_classifier
from trainer.config import Config
from trainer.data import load_dataset
from trainer.distributed import World, init_world
from trainer.rundir import RunContext, RunDir, load_classifier


def pick_device(choice: str, world: World) -> torch.device:
    """`auto` means CUDA when present; under torchrun each process takes its local GPU."""
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device: cuda requested but no CUDA device is available")
        return torch.device("cuda", world.local_rank)
    return torch.device("cpu")


def fit(cfg: Config) -> RunContext:
    """Run every stage of `cfg` that is not already done."""
    kind = "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    world = init_world(kind)
    device = pick_device(cfg.device, world)
    run_dir = Path(cfg.run_dir)
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, RunDir(run_dir).config)
        print(f"run directory {run_dir}  device {device}  processes {world.size}")
    dataset = load_dataset(cfg.data)
    # Autotuning pays off for the classifier's fixed batch shape only: attacks and detector batches change
    # shape from batch to batch (the images an attack still works on, the modified share of a batch), and
    # on an H100 each new shape cost 1-2 s of tuning, 20-40 times the batch itself.
    torch.backends.cudnn.benchmark = device.type == "cuda"
    train_classifier(cfg, dataset, device, world)
    torch.backends.cudnn.benchmark = False
    classifier, ckpt = load_classifier(run_dir, device)
    classifier.requires_grad_(False)
    ctx = RunContext(cfg, run_dir, device, dataset, classifier, ckpt, world.is_main)
    _later_stages(ctx)
    return ctx


def open_run(cfg: Config) -> RunContext:
    """The context of a run whose classifier is trained, for commands that work on a finished run (`trainer audit`)."""
    device = pick_device(cfg.device, World())
    classifier, ckpt = load_classifier(cfg.run_dir, device)
    classifier.requires_grad_(False)
    return RunContext(cfg, Path(cfg.run_dir), device, load_dataset(cfg.data), classifier, ckpt, True)


def _later_stages(ctx: RunContext) -> None:
    from trainer.audit.stage import run_audit_stage
    from trainer.detect import run_detector_stage
    from trainer.experiments import run_experiments

    run_detector_stage(ctx)
    run_experiments(ctx)
    run_audit_stage(ctx)
