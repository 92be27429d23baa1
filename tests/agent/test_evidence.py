"""Alert evidence: lossless frames around each alert, its manifest, `agent replay`, and a disk that fails."""
from __future__ import annotations

import hashlib
import json
import shutil
import threading

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from agent.cameras import resolve
from agent.cli import app
from agent.config import load_agent_config
from agent.sinks.evidence import EvidenceRecorder
from agent.watch import Watch
from conftest import write_config, write_sequence
from fixture_model import build_fixture_model, make_frames
from test_cli import one_error_line
from test_faults import fill, mount  # noqa: F401 (fixture)

runner = CliRunner()
ADVERSARIAL = [12, 30]  # two alerts (k=1 of n=1), far enough apart for 8 frames before and after each


@pytest.fixture(scope="module")
def frames():
    return make_frames(45, adversarial=ADVERSARIAL)


def evidence_config(tmp_path, folder=None, **evidence):
    return load_agent_config(write_config(
        tmp_path / "a.yaml", tmp_path,
        alerts={"k": 1, "n": 1, "clear_after": 1, "cooldown_frames": 0, "snapshot_dir": str(tmp_path / "snapshots"),
                "min_free_mb": 0,
                "evidence": {"enabled": True, "dir": str(folder or tmp_path / "evidence"), "pre_frames": 8,
                             "post_frames": 8, **evidence}}))


def events(tmp_path):
    return [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]


def recorder(watch: Watch) -> EvidenceRecorder:
    return next(o for o in watch.observers.observers if isinstance(o, EvidenceRecorder))


def counter(watch: Watch, name: str, **labels) -> float:
    return watch.metrics.registry.get_sample_value(name, labels) or 0.0


def test_evidence_is_written_whole_losslessly_and_replays(tmp_path, model_path, frames):
    cfg = evidence_config(tmp_path)
    watch = Watch(cfg, model_path, resolve(cfg, sources=["cam=" + write_sequence(tmp_path / "seq", frames)]))
    summary = watch.run()
    assert summary.alerts == 2 and summary.frames == 45
    assert all(len(ring) <= 8 for ring in recorder(watch)._rings.values()), "the ring buffer's bound"
    assert recorder(watch).writer_priority == "SCHED_IDLE", "PNG encoding must not compete with scoring"

    logged = events(tmp_path)
    alerts = [e for e in logged if e["event"] == "alert"]
    done = {e["alert_id"]: e for e in logged if e["event"] == "evidence"}
    assert [a["frame_index"] for a in alerts] == ADVERSARIAL and set(done) == {a["id"] for a in alerts}
    for alert in alerts:
        folder = alert["evidence"]["path"]
        assert alert["evidence"]["sha256"] is None, "known only once the folder is written"
        assert done[alert["id"]]["evidence"]["path"] == folder
        manifest_bytes = (tmp_path / "evidence" / folder.rsplit("/", 1)[1] / "manifest.json").read_bytes()
        assert done[alert["id"]]["evidence"]["sha256"] == hashlib.sha256(manifest_bytes).hexdigest()
        manifest = json.loads(manifest_bytes)
        at = alert["frame_index"]
        assert [f["index"] for f in manifest["frames"]] == list(range(at - 8, at + 9)), "8 before, alert, 8 after"
        assert manifest["complete"] and manifest["camera"] == "cam"
        assert manifest["model"]["sha256"] == alert["model_sha256"] and manifest["model"]["threshold"] == 0.5
        assert len(manifest["agent"]["config_sha256"]) == 64 and manifest["agent"]["version"]
        for f in manifest["frames"]:
            png = (tmp_path / "evidence" / folder.rsplit("/", 1)[1] / f["file"]).read_bytes()
            assert hashlib.sha256(png).hexdigest() == f["sha256"]
            decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(decoded, frames[f["index"]]), "lossless: the decoded frame, bit-exact"
        assert [f["alert_frame"] for f in manifest["frames"]].index(True) == 8
        assert counter(watch, "agent_evidence_written_total") == 2

        result = runner.invoke(app, ["replay", folder])
        assert result.exit_code == 0, result.output
        assert f"all 17 frames replay to their recorded p_adv within 1e-05" in result.output
        assert sum(line.strip().startswith(str(at)) for line in result.output.splitlines()) == 1


def test_replay_refuses_altered_missing_frames_another_model_and_other_numbers(tmp_path, model_path, frames):
    cfg = evidence_config(tmp_path, pre_frames=2, post_frames=2)
    Watch(cfg, model_path, resolve(cfg, sources=["cam=" + write_sequence(tmp_path / "seq", frames)])).run()
    pristine = next(e["evidence"]["path"] for e in events(tmp_path) if e["event"] == "evidence")
    copies = {name: shutil.copytree(pristine, tmp_path / name) for name in ("altered", "missing", "other", "numbers")}
    manifest = json.loads((copies["altered"] / "manifest.json").read_text())
    alert_file = next(f["file"] for f in manifest["frames"] if f["alert_frame"])

    image = cv2.imread(str(copies["altered"] / alert_file), cv2.IMREAD_UNCHANGED)
    image[0, 0, 0] ^= 1  # one bit of one pixel
    cv2.imwrite(str(copies["altered"] / alert_file), image)
    one_error_line(runner.invoke(app, ["replay", str(copies["altered"])]), "altered")

    (copies["missing"] / manifest["frames"][0]["file"]).unlink()
    one_error_line(runner.invoke(app, ["replay", str(copies["missing"])]), "missing")

    other = build_fixture_model(tmp_path / "model" / "other.onnx", gain=0.7)
    one_error_line(runner.invoke(app, ["replay", str(copies["other"]), "--model", str(other)]),
                   "the evidence was scored by")

    manifest["frames"][-1]["p_adv"] += 1e-4  # intact frames, a number the model does not give
    (copies["numbers"] / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(app, ["replay", str(copies["numbers"])])
    one_error_line(result, "1 of 5 frames do not replay")
    assert "MISMATCH" in result.output

    assert runner.invoke(app, ["replay", pristine]).exit_code == 0


def test_a_stuck_writer_drops_evidence_never_frames_or_alerts(tmp_path, model_path):
    frames = make_frames(60, adversarial=range(0, 60, 3))  # an alert every third frame
    cfg = evidence_config(tmp_path, pre_frames=1, post_frames=1, queue=1)
    watch = Watch(cfg, model_path, resolve(cfg, sources=["cam=" + write_sequence(tmp_path / "seq", frames)]))
    evidence = recorder(watch)
    gate, write, close = threading.Event(), evidence._write, evidence.close

    def stuck_write(clip) -> None:  # a disk that takes no data until the run is over
        gate.wait()
        write(clip)

    def release_and_close() -> None:
        gate.set()
        close()

    evidence._write, evidence.close = stuck_write, release_and_close
    summary = watch.run()
    assert summary.frames == 60 and summary.dropped == 0 and summary.alerts == 20
    logged = events(tmp_path)
    assert len([e for e in logged if e["event"] == "alert"]) == 20
    dropped = counter(watch, "agent_evidence_dropped_total", reason="queue_full")
    written = counter(watch, "agent_evidence_written_total")
    assert dropped >= 20 - 2 and written + dropped == 20, "one clip in the writer and one queued at most"
    failed = [e for e in logged if e["event"] == "evidence" and e.get("error")]
    assert len(failed) == dropped and all(e["error"].startswith("queue_full") for e in failed)


@pytest.mark.parametrize("disk_size, full, reason", [("128k", True, "low_space"), ("2m,nr_inodes=8", False, "write")],
                         ids=["no-room", "no-inodes-mid-write"])
def test_a_full_disk_drops_evidence_never_frames_or_alerts(tmp_path, model_path, frames, mount, disk_size, full,
                                                           reason):
    disk = mount("evidence", disk_size)
    cfg = evidence_config(tmp_path, folder=disk / "evidence")
    watch = Watch(cfg, model_path, resolve(cfg, sources=["cam=" + write_sequence(tmp_path / "seq", frames)]))
    if full:
        fill(disk, leave=16 << 10)
    summary = watch.run()
    assert summary.frames == 45 and summary.dropped == 0 and summary.alerts == 2
    logged = events(tmp_path)
    assert [e["frame_index"] for e in logged if e["event"] == "alert"] == ADVERSARIAL
    assert counter(watch, "agent_evidence_dropped_total", reason=reason) == 2
    assert counter(watch, "agent_evidence_written_total") == 0
    assert [p.name for p in (disk / "evidence").iterdir()] == [], "no folder, whole or partial, is left"
    failed = [e for e in logged if e["event"] == "evidence"]
    assert len(failed) == 2 and all(e["error"].startswith(reason) for e in failed)


def test_bad_evidence_values_are_one_error_line(tmp_path, model_path, frames):
    sequence = write_sequence(tmp_path / "seq", frames[:3])
    for key, value in (("pre_frames", -1), ("post_frames", -8), ("queue", 0)):
        one_error_line(runner.invoke(app, ["watch", "--model", str(model_path), "--source", sequence,
                                           "--set", f"alerts.evidence.{key}={value}"]), f"alerts.evidence.{key}")
