"""Several cameras in one `agent watch`: shared batches, per-camera alerts and health, bad entries."""
from __future__ import annotations

import json
import shutil
import threading
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from agent.cameras import resolve
from agent.cli import app
from agent.config import CameraConfig, load_agent_config
from agent.errors import SourceError
from agent.watch import Watch
from conftest import free_port, write_config, write_sequence, write_video
from fixture_model import make_frames, smooth_frame
from test_cli import one_error_line

runner = CliRunner()


def events_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_until(predicate, what: str, timeout: float = 30.0) -> None:
    """Poll `predicate`; the timeout only bounds a failing test, nothing is asserted on time."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_cameras_share_batches_and_keep_their_own_alerts(tmp_path, model_path):
    a = write_sequence(tmp_path / "a", make_frames(20, adversarial=[3, 12]))
    b = write_video(tmp_path / "b.avi", make_frames(20, adversarial=[7]))
    cfg = load_agent_config(write_config(tmp_path / "agent.yaml", tmp_path))
    watch = Watch(cfg, model_path, resolve(cfg, sources=[f"left={a}", f"right={b}"]))
    summary = watch.run()
    assert summary.cameras["left"].frames == 20 and summary.cameras["right"].frames == 20
    alerts = [(e["camera"], e["frame_index"]) for e in events_of(tmp_path / "alerts.jsonl")]
    assert sorted(alerts) == [("left", 3), ("left", 12), ("right", 7)]
    batches = watch.metrics.batch_size.collect()[0].samples
    count = next(s.value for s in batches if s.name.endswith("_count"))
    assert count < 40, "frames of both cameras went through shared inference calls"


def test_a_lost_camera_is_degraded_and_the_others_go_on(tmp_path, model_path):
    good = write_sequence(tmp_path / "good", make_frames(30, adversarial=[5, 25]))
    doomed = tmp_path / "doomed"
    write_sequence(doomed, make_frames(30))
    cfg = load_agent_config(write_config(tmp_path / "agent.yaml", tmp_path,
                                         capture={"read_timeout_s": 0.5, "file_queue": 2}))
    cfg.cameras = [CameraConfig(name="good", source=good),
                   CameraConfig(name="doomed", source=str(doomed / "%04d.png"), mode="live")]
    watch = Watch(cfg, model_path, resolve(cfg))
    shutil.rmtree(doomed)  # opened, then gone for good: every reopen fails
    runner_thread = threading.Thread(target=watch.run)
    runner_thread.start()
    try:
        wait_until(lambda: any(e["event"] == "camera_degraded" and e["camera"] == "doomed"
                               for e in events_of(tmp_path / "alerts.jsonl")), "the degraded event")
        wait_until(lambda: watch.summary.cameras["good"].frames == 30, "the good camera's frames")
    finally:
        watch.stop.set()
        runner_thread.join(30)
    events = events_of(tmp_path / "alerts.jsonl")
    assert [e["frame_index"] for e in events if e["event"] == "alert"] == [5, 25]
    degraded = next(e for e in events if e["event"] == "camera_degraded")
    assert degraded["reason"] == "lost" and watch.summary.cameras["doomed"].reconnects >= 1


def test_unhealthy_frames_are_not_scored_and_the_camera_recovers(tmp_path, model_path):
    h, w = 96, 128
    clean = [smooth_frame(i) for i in range(40)]
    frames = (clean[:5] + [np.zeros((h, w, 3), np.uint8)] * 4 + clean[5:10]  # black, then recovery
              + [clean[10]] * 5 + clean[11:16]  # frozen: the same frame again and again
              + [np.full((h, w, 3), 255, np.uint8)] * 4 + clean[16:20]  # saturated
              + [np.full((h, w, 3), (0, 135, 0), np.uint8)] * 4 + clean[20:24])  # a decoder's flat fill
    cfg = load_agent_config(write_config(tmp_path / "agent.yaml", tmp_path,
                                         alerts={"threshold": 0.0}))  # every scored frame would alert
    summary = Watch(cfg, model_path, resolve(cfg, sources=[f"cam={write_sequence(tmp_path / 's', frames)}"])).run()
    events = [e for e in events_of(tmp_path / "alerts.jsonl") if e["event"] != "alert"]
    assert [(e["event"], e["reason"]) for e in events] == [
        ("camera_degraded", "black"), ("camera_recovered", "recovered"),
        ("camera_degraded", "frozen"), ("camera_recovered", "recovered"),
        ("camera_degraded", "saturated"), ("camera_recovered", "recovered"),
        ("camera_degraded", "undecodable"), ("camera_recovered", "recovered")]
    assert summary.unhealthy == 4 + 4 + 4 + 4  # the first copy of the frozen frame is a picture
    assert summary.frames == len(frames)


def test_bad_camera_entries_name_the_camera(model_path, tmp_path):
    seq = write_sequence(tmp_path / "seq", make_frames(3))
    one_error_line(runner.invoke(app, ["watch", "--model", str(model_path), "--source", f"front={seq}",
                                       "--camera", "rear=57"]), "camera rear", "/dev/video57")
    one_error_line(runner.invoke(app, ["watch", "--model", str(model_path), "--source", f"front={seq}",
                                       "--source", f"front={seq}"]), "camera front", "duplicate")
    cfg = write_config(tmp_path / "a.yaml", tmp_path, capture={"open_timeout_s": 2})
    unreachable = f"rtsp://127.0.0.1:{free_port()}/none"
    one_error_line(runner.invoke(app, ["watch", "--model", str(model_path), "--source", f"front={seq}",
                                       "--source", f"side={unreachable}", "--config", str(cfg)]),
                   "camera side", "cannot open")
    with pytest.raises(SourceError, match="no camera"):
        resolve(load_agent_config(None))


def test_check_reports_every_camera(model_path, tmp_path):
    a = write_sequence(tmp_path / "a", make_frames(4))
    b = write_video(tmp_path / "b.avi", make_frames(6))
    yaml_cfg = tmp_path / "agent.yaml"
    yaml_cfg.write_text(f"cameras:\n  - {{name: left, source: '{a}'}}\n  - {{name: right, source: '{b}', mode: live}}\n")
    result = runner.invoke(app, ["check", "--model", str(model_path), "--config", str(yaml_cfg)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("camera:")]
    assert len(lines) == 2 and "left:" in lines[0] and "4 frames" in lines[0]
    assert "right:" in lines[1] and "live" in lines[1]
    assert "one session for 2 camera(s)" in result.stdout


def test_unfamiliar_scenes_raise_scene_unfamiliar_instead_of_alerts(tmp_path):
    from fixture_model import build_fixture_model, perturb

    model = build_fixture_model(tmp_path / "familiar.onnx", familiarity_threshold=200.0)
    bright = [np.clip(smooth_frame(i).astype(int) + 150, 0, 254).astype(np.uint8) for i in range(10)]
    frames = ([smooth_frame(i) for i in range(5)] + [perturb(f, seed=i) for i, f in enumerate(bright)]
              + [perturb(smooth_frame(20), seed=20)] + [smooth_frame(i) for i in range(21, 26)])
    cfg = load_agent_config(write_config(tmp_path / "agent.yaml", tmp_path))
    watch = Watch(cfg, model, resolve(cfg, sources=[f"cam={write_sequence(tmp_path / 's', frames)}"]))
    summary = watch.run()
    events = events_of(tmp_path / "alerts.jsonl")
    # The noisy bright frames would alert, but they are unlike the training data: not judged.
    assert [e["frame_index"] for e in events if e["event"] == "alert"] == [15]
    unfamiliar = [e for e in events if e["event"] == "scene_unfamiliar"]
    familiar = [e for e in events if e["event"] == "scene_familiar"]
    assert [e["frame_index"] for e in unfamiliar] == [5 + 2] and [e["frame_index"] for e in familiar] == [15 + 2]
    assert summary.unfamiliar == 10 and summary.cameras["cam"].scored == len(frames)
    share = watch.metrics.unfamiliar_share.labels("cam")._value.get()
    assert share == pytest.approx(10 / len(frames))


def test_tensorrt_engines_are_cached_per_model_gpu_and_tensorrt_version(model_path, tmp_path):
    from agent.config import InferenceConfig
    from agent.model import gpu_name, tensorrt_version, trt_cache_dir, verify_model

    info = verify_model(model_path)
    folder = trt_cache_dir(InferenceConfig(trt_cache_dir=tmp_path / "trt"), info)
    assert folder.parent == tmp_path / "trt", "outside the agent's writable state, where configured"
    assert folder.name.startswith(info.sha256 + "-") and folder.name.endswith(tensorrt_version()), \
        "the whole sha256 of the verified model: no other model's engine can share the folder"
    assert gpu_name().replace(" ", "_") in folder.name
    assert InferenceConfig().trt_cache_dir.is_absolute(), "the default does not sit in the working directory"
