import json
import os
import subprocess
import sys

import pytest
import torch
from synthetic import tiny_overrides

from common.config import load_config
from trainer import checkpoint, classify
from trainer.rundir import RunDir
from trainer.config import Config
from trainer.data import load_dataset
from trainer.distributed import World


def _cfg(cifar_dir, run_dir, epochs):
    return load_config(Config, "configs/cifar.yaml", tiny_overrides(cifar_dir, run_dir, epochs))


def _train(cfg):
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    return classify.train_classifier(cfg, load_dataset(cfg.data), torch.device("cpu"), World())


def _epochs(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_short_run_lowers_loss_and_writes_a_loadable_checkpoint(cifar_dir, tmp_path):
    result = _train(_cfg(cifar_dir, tmp_path / "run", epochs=6))
    losses = [e["train_loss"] for e in _epochs(tmp_path / "run")]
    assert losses[-1] < losses[0] * 0.7
    assert result["test_acc"] > 0.3  # chance is 0.1
    saved = checkpoint.load(tmp_path / "run" / "classifier.pt")
    assert saved["classes"][0] == "class0" and saved["input_size"] == [32, 32]
    assert not RunDir(tmp_path / "run").classifier_last.exists()
    # A finished stage is loaded, not retrained.
    assert _train(_cfg(cifar_dir, tmp_path / "run", epochs=6))["test_acc"] == result["test_acc"]
    assert len(_epochs(tmp_path / "run")) == 6


def test_interrupted_run_resumes_at_the_next_epoch_and_matches_an_uninterrupted_one(cifar_dir, tmp_path, monkeypatch, capsys):
    straight = _train(_cfg(cifar_dir, tmp_path / "straight", epochs=3))

    real_save = checkpoint.save

    def save_then_die(obj, path):
        real_save(obj, path)
        if path.name == RunDir(path.parent).classifier_last.name and obj["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(classify.checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        _train(_cfg(cifar_dir, tmp_path / "resumed", epochs=3))
    monkeypatch.setattr(classify.checkpoint, "save", real_save)
    resumed = _train(_cfg(cifar_dir, tmp_path / "resumed", epochs=3))

    assert "classifier: resuming at epoch 3/3" in capsys.readouterr().out
    assert [e["epoch"] for e in _epochs(tmp_path / "resumed")] == [1, 2, 3]
    for name, value in straight["state_dict"].items():
        assert torch.allclose(value.float(), resumed["state_dict"][name].float(), atol=1e-4), name


def test_two_process_ddp_run_on_cpu(cifar_dir, tmp_path):
    run_dir = tmp_path / "ddp"
    sets = [a for o in tiny_overrides(cifar_dir, run_dir, epochs=1) for a in ("--set", o)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "trainer", "fit", "--config", "configs/cifar.yaml", *sets],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "processes 2" in proc.stdout
    assert checkpoint.load(run_dir / "classifier.pt")["test_acc"] > 0
