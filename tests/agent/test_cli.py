"""The command line: every bad input is one `error:` line and exit code 2; `check` and `watch` work."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.config import AgentConfig
from agent.model import Detector, verify_model
from common.manifest import manifest_path
from conftest import write_config, write_sequence
from fixture_model import make_frames

runner = CliRunner()


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    return write_sequence(tmp_path_factory.mktemp("seq") / "front", make_frames(12, adversarial=[6]))


@pytest.fixture
def broken_models(model_path, tmp_path):
    def copy(name):
        dst = tmp_path / f"{name}.onnx"
        shutil.copy(model_path, dst)
        shutil.copy(manifest_path(model_path), manifest_path(dst))
        return dst

    truncated, tampered, bare = copy("truncated"), copy("tampered"), copy("bare")
    truncated.write_bytes(truncated.read_bytes()[:200])
    data = bytearray(tampered.read_bytes())
    data[100] ^= 1
    tampered.write_bytes(bytes(data))
    manifest_path(bare).unlink()
    return {"missing": tmp_path / "missing.onnx", "truncated": truncated, "tampered": tampered, "no-manifest": bare}


def one_error_line(result, *needles):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize("command", ["watch", "check"])
@pytest.mark.parametrize("kind,needle", [("missing", "model not found"), ("truncated", "truncated"),
                                         ("tampered", "tampered"), ("no-manifest", "no manifest")])
def test_bad_models(broken_models, sequence, command, kind, needle):
    one_error_line(runner.invoke(app, [command, "--model", str(broken_models[kind]), "--source", sequence]), needle)


def test_unknown_camera(model_path):
    one_error_line(runner.invoke(app, ["watch", "--model", str(model_path), "--camera", "57"]), "camera 57")


def test_unopenable_source(model_path, tmp_path):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"\0" * 1000)
    one_error_line(runner.invoke(app, ["watch", "--model", str(model_path), "--source", str(bad)]), "cannot open")
    one_error_line(runner.invoke(app, ["watch", "--model", str(model_path), "--source", "ftp://x/y"]), "scheme")


@pytest.mark.parametrize("yaml_text,needles", [
    ("alerts:\n  k: 2\n  n: 1\n", ["line 3", "alerts.n", "must be >= k (2)"]),
    ("capture:\n  read_timeout_s: fast\n", ["line 2", "capture.read_timeout_s"]),
    ("sinks:\n  mqtt:\n    prot: 1\n", ["line 3", "sinks.mqtt.prot", "unknown key"]),
    ("alerts: [\n", ["invalid YAML"]),
])
def test_bad_config(model_path, sequence, tmp_path, yaml_text, needles):
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(yaml_text)
    one_error_line(runner.invoke(app, ["watch", "--model", str(model_path), "--source", sequence,
                                       "--config", str(cfg)]), *needles)


def test_bad_override(model_path, sequence):
    one_error_line(runner.invoke(app, ["check", "--model", str(model_path), "--source", sequence,
                                       "--set", "metrics.port=99999"]), "metrics.port")


def test_check_describes_the_plan(model_path, sequence, tmp_path):
    result = runner.invoke(app, ["check", "--model", str(model_path), "--source", sequence,
                                 "--config", str(write_config(tmp_path / "a.yaml", tmp_path)),
                                 "--set", "alerts.threshold=0.7"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "CPUExecutionProvider" in out and "128x96" in out and "12 frames" in out
    assert "p_adv > 0.7000 (config)" in out and "camera:    front" in out
    assert "robustness: not audited" in out  # the fixture model ships no audit
    assert not (tmp_path / "alerts.jsonl").exists(), "check does not run the watch"


def test_watch_as_a_process(model_path, sequence, tmp_path):
    cfg = write_config(tmp_path / "a.yaml", tmp_path, sinks={"stdout": True, "jsonl": None})
    proc = subprocess.run([sys.executable, "-m", "agent", "watch", "--model", str(model_path), "--source", sequence,
                           "--config", str(cfg), "--max-frames", "10"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["frame_index"] for e in events] == [6]
    assert "stopping after 10 frames" in proc.stderr and "Traceback" not in proc.stderr


def test_metrics_port_in_use(model_path, sequence, tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = write_config(tmp_path / "a.yaml", tmp_path, metrics={"port": port})
        one_error_line(runner.invoke(app, ["watch", "--model", str(model_path), "--source", sequence,
                                           "--config", str(cfg)]), f"metrics endpoint 127.0.0.1:{port}")


def test_shipped_config_is_the_defaults():
    from pathlib import Path

    from agent.config import AgentConfig, load_agent_config

    shipped = load_agent_config(Path(__file__).parents[2] / "configs" / "agent.yaml")
    assert len(shipped.cameras) == 8, "the shipped config shows an 8-camera vehicle"
    assert shipped.model_copy(update={"cameras": []}) == AgentConfig()


def test_watch_scores_a_labelled_replay(model_path, tmp_path):
    source = write_sequence(tmp_path / "replay", make_frames(30, adversarial=[5, 6, 7, 20, 21]))
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"adversarial": [5, 6, 7, 20, 21]}))
    cfg = write_config(tmp_path / "agent.yaml", tmp_path)
    result = runner.invoke(app, ["watch", "--model", str(model_path), "--source", source, "--config", str(cfg),
                                 "--labels", str(labels)])
    assert result.exit_code == 0, result.output
    assert "summary: 30 frames" in result.stderr
    assert "detection rate on adversarial frames: 5/5 = 100.0%" in result.stderr
    assert "false alarms on clean frames:         0/25 = 0.0%" in result.stderr
    assert "alerts on adversarial frames: 2, elsewhere: 0" in result.stderr


def test_watch_reports_silent_misclassifications(model_path, tmp_path):
    frames = make_frames(30, adversarial=[5, 6, 7, 20, 21])
    source = write_sequence(tmp_path / "replay", frames)
    detector = Detector(verify_model(model_path), AgentConfig().inference)
    predicted = detector.infer(np.stack([detector.prepare(f) for f in frames]))[0].argmax(1)
    # Frame 8 is labelled adversarial but left clean, so it is not flagged: fooling there is silent.
    fooled = {6, 8, 20}
    classes = [int(c + 1) % 4 if i in fooled else int(c) for i, c in enumerate(predicted)]
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"adversarial": [5, 6, 7, 8, 20, 21], "classes": classes,
                                  "kinds": {"oblivious": [5, 6, 7, 8], "adaptive": [20, 21]}}))
    cfg = write_config(tmp_path / "agent.yaml", tmp_path)
    result = runner.invoke(app, ["watch", "--model", str(model_path), "--source", source, "--config", str(cfg),
                                 "--labels", str(labels)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-2:] == [
        "oblivious: 4 frames, 2 fooled the classifier, 1 of them flagged, 1 silent misclassifications",
        "adaptive: 2 frames, 1 fooled the classifier, 1 of them flagged, 0 silent misclassifications"]


def test_watch_rejects_a_bad_labels_file(model_path, sequence, tmp_path):
    bad = tmp_path / "labels.json"
    bad.write_text("[1, 2]")
    one_error_line(runner.invoke(app, ["watch", "--model", str(model_path), "--source", sequence,
                                       "--labels", str(bad)]), "labels file")
