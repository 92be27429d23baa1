"""configs/imagenet10.yaml end to end at a tiny size: VGG16 with the 10-class layer, Sec. 4.2's detector at AD(4).

The shipped config is loaded as is; `--set` overrides only shrink it (32x32 images, a few per
class, one epoch) and point it at a synthetic image folder and a random torchvision-layout
VGG16 weights file.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import torch
from data.data_writers import write_folder
from detect.test_vgg import TorchvisionVGG16
from detect.tiny_run import make_ctx
from typer.testing import CliRunner

from common.config import load_config
from trainer import checkpoint
from trainer.attacks import AttackSpec
from trainer.cli import app
from trainer.config import Config, DetectorSpec
from trainer.detect import ensure_detector
from trainer.experiments.grid import grid_detector_spec
from trainer.models import ImageNetDetector

CONFIG = "configs/imagenet10.yaml"


def test_imagenet10_config_runs_with_the_sec_4_2_detector(tmp_path):
    classes = {f"n{k:08d}": 2 for k in range(10)}  # as many classes as the config's class_indices
    data = write_folder(tmp_path / "data", {"train": classes, "test": {name: 1 for name in classes}})
    torch.manual_seed(0)
    torch.save(TorchvisionVGG16().state_dict(), tmp_path / "vgg16.pth")
    run_dir = tmp_path / "run"
    overrides = [f"data.root={data}", "data.val_size=6", "data.image_size=32", f"model.weights={tmp_path / 'vgg16.pth'}",
                 "train.batch_size=16", f"run_dir={run_dir}", "device=cpu", "experiments.enabled=false"]
    cfg = load_config(Config, CONFIG, overrides)
    # Lists cannot be reached key by key with --set: the file's detectors go back in, only made small
    # (one attack step: VGG16's input gradients dominate the run time).
    small = [d.model_dump(mode="json") | {"epochs": 1, "batch_size": 8, "eval_batch_size": 16,
                                          "adversary": d.adversary.model_dump(exclude_none=True) | {"steps": 1}}
             for d in cfg.detectors]
    overrides.append("detectors=" + json.dumps(small))

    result = CliRunner().invoke(app, ["fit", "--config", CONFIG, *[a for o in overrides for a in ("--set", o)]])
    assert result.exit_code == 0, result.output

    ckpt = checkpoint.load(run_dir / "classifier.pt")
    assert ckpt["model_config"]["arch"] == "vgg16" and ckpt["input_size"] == [32, 32]
    name = cfg.deploy
    det_ckpt = checkpoint.load(run_dir / "detectors" / name / "detector.pt")
    assert det_ckpt["arch"] == "imagenet" and det_ckpt["point"] == 4  # after the fourth max-pool
    ImageNetDetector(512).load_state_dict(det_ckpt["state_dict"])  # strict: exactly Sec. 4.2's layers were trained
    assert json.loads((run_dir / "detectors" / name / "evaluation.json").read_text())["test_images"] == 10
    # The experiments' detectors (disabled here to stay small) would be Sec. 4.2's as well.
    assert grid_detector_spec(SimpleNamespace(cfg=cfg), AttackSpec(name="fast", eps=2), 4).arch == "imagenet"


def test_arch_is_stamped_so_fig1_runs_from_before_it_stay_valid(tiny_dataset, classifier_file, tmp_path):
    """A fig1 detector's stamp is what it was before `arch` existed; another arch is a new detector."""
    ctx = make_ctx(tmp_path / "run", classifier_file, tiny_dataset, {})
    spec = DetectorSpec(name="d", adversary={"name": "fast", "eps": 8}, point=2, epochs=1, train_limit=32,
                        val_limit=32, test_limit=32)
    fig1 = ensure_detector(ctx, spec)
    assert fig1.arch == "fig1" and "arch" not in fig1.spec
    imagenet = ensure_detector(ctx, spec.model_copy(update={"arch": "imagenet"}))
    assert imagenet.arch == "imagenet" and imagenet.spec["arch"] == "imagenet"
    ImageNetDetector(16).load_state_dict(imagenet.state_dict)
