"""The MCAP recording (agent/sinks/mcap.py), read back with the `mcap` package's own readers."""
from __future__ import annotations

import base64
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from mcap.exceptions import EndOfFile
from mcap.reader import make_reader
from mcap.records import Channel, Chunk, Message, Schema
from mcap.stream_reader import StreamReader, breakup_chunk

from agent.config import McapConfig
from agent.errors import AgentError
from agent.capture import Frame
from agent.metrics import Metrics
from agent.observers import Scored
from agent.sinks.mcap import McapSink, numbered
from typer.testing import CliRunner

from agent.cli import app
from conftest import write_config, write_video
from fixture_model import make_frames
from test_faults import mount, one_error_line, video  # noqa: F401 (fixtures)

CLASSES = ["a", "b", "c"]
T0 = 1_700_000_000.0


class WholeReads:
    """A file whose short read (only at its end) is `EndOfFile`: mcap's reader parses a record cut by
    the end of the file from what is there, and fails later with an error of any kind (a short
    struct, a bad CRC); this way a torn record, and only that, ends the reading."""

    def __init__(self, f) -> None:
        self.f = f

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        if 0 < n != len(data):
            raise EndOfFile()
        return data


def read_stream(path) -> tuple[dict[str, Schema], list[tuple[str, Message]], bool]:
    """Every message of an MCAP file in file order, as a reader without seeking sees it: (schema per
    topic, [(topic, message)], whether the file ended cleanly). A file cut short by a crash yields the
    messages of its complete chunks."""
    schemas, channels, messages = {}, {}, []
    complete = False
    with open(path, "rb") as f:
        try:
            for record in StreamReader(WholeReads(f), validate_crcs=True).records:
                if isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    channels[record.id] = record
                elif isinstance(record, Message):
                    messages.append((channels[record.channel_id].topic, record))
            complete = True
        except EndOfFile:
            pass
    return {c.topic: schemas[c.schema_id] for c in channels.values()}, messages, complete


def frame_image(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def probs_for(i: int) -> np.ndarray:
    p = np.full(len(CLASSES), 0.1, np.float32)
    p[i % len(CLASSES)] = 0.8
    return p


def scored(camera: str, i: int, image: np.ndarray, at: float, p_adv: float = 0.1, judged: bool = True) -> Scored:
    probs = probs_for(i)
    return Scored(camera, Frame(i, image, at, 0.0, 0.0), probs, p_adv, int(np.argmax(probs)), judged,
                  judged and p_adv > 0.5, 0.0, 0.0, 0.0, 0.0)


def sink(tmp_path, metrics=None, **cfg) -> McapSink:
    return McapSink(McapConfig(path=tmp_path / "rec.mcap", **cfg), metrics, CLASSES, threshold=0.5)


def test_recording_reads_back_with_channels_counts_and_timestamps(tmp_path):
    metrics = Metrics()
    rec = sink(tmp_path, metrics, every_n=3, scale=0.5)
    counts = {"front": 10, "rear": 7}
    for i in range(max(counts.values())):
        for camera, n in counts.items():
            if i < n:
                rec.on_frame(scored(camera, i, frame_image(i), T0 + i * 0.04, p_adv=i / 10, judged=i != 2))
    alert = {"event": "alert", "id": "x1", "time": "2023-11-14T22:13:20.120Z", "camera": "front",
             "frame_index": 3, "p_adv": 0.3}
    rec.emit(alert)
    rec.emit({"event": "camera_degraded", "id": "x2", "time": "2023-11-14T22:13:20.200Z", "camera": "rear",
              "reason": "frozen"})
    rec.close()
    assert rec.files == [numbered(tmp_path / "rec.mcap", 1)] == [tmp_path / "rec-000001.mcap"]

    with open(rec.files[0], "rb") as f:  # the seeking reader: summary, statistics and indexes are whole
        reader = make_reader(f)
        summary = reader.get_summary()
        topics = {c.topic: c for c in summary.channels.values()}
        assert set(topics) == {"/front/score", "/front/image", "/front/alerts", "/rear/score", "/rear/image",
                               "/rear/events"}
        assert {c.message_encoding for c in topics.values()} == {"json"}
        names = {t: summary.schemas[c.schema_id].name for t, c in topics.items()}
        assert names["/front/image"] == "foxglove.RawImage"
        assert names["/front/score"] == "adversary_detector.FrameScore"
        assert {summary.schemas[c.schema_id].encoding for c in topics.values()} == {"jsonschema"}
        by_topic = {t: summary.statistics.channel_message_counts[c.id] for t, c in topics.items()}
        assert by_topic == {"/front/score": 10, "/rear/score": 7, "/front/image": math.ceil(10 / 3),
                            "/rear/image": math.ceil(7 / 3), "/front/alerts": 1, "/rear/events": 1}
        messages = [(channel.topic, message) for _, channel, message in reader.iter_messages(log_time_order=True)]
    assert len(messages) == sum(by_topic.values())
    times = [m.log_time for _, m in messages]
    assert times == sorted(times)

    scores = [(m.log_time, json.loads(m.data)) for t, m in messages if t == "/front/score"]
    for i, (log_time, score) in enumerate(scores):
        assert log_time == int((T0 + i * 0.04) * 1e9)
        assert score["timestamp"]["sec"] * 10**9 + score["timestamp"]["nsec"] == log_time
        assert score["frame_index"] == i and score["p_adv"] == pytest.approx(i / 10)
        assert score["predicted_class"] == CLASSES[i % 3] and score["over_threshold"] == (i / 10 > 0.5 and i != 2)
        assert score["unfamiliar"] == (i == 2)

    images = [(m.log_time, json.loads(m.data)) for t, m in messages if t == "/rear/image"]
    assert [t for t, _ in images] == [int((T0 + i * 0.04) * 1e9) for i in (0, 3, 6)]
    for (_, image), i in zip(images, (0, 3, 6)):
        expected = cv2.resize(frame_image(i), (32, 24), interpolation=cv2.INTER_AREA)
        assert (image["width"], image["height"], image["encoding"], image["step"]) == (32, 24, "bgr8", 96)
        assert image["frame_id"] == "rear"
        decoded = np.frombuffer(base64.b64decode(image["data"]), np.uint8).reshape(24, 32, 3)
        np.testing.assert_array_equal(decoded, expected)

    [(alert_time, recorded)] = [(m.log_time, json.loads(m.data)) for t, m in messages if t == "/front/alerts"]
    assert recorded == alert and alert_time == 1_700_000_000_120_000_000

    # The stream reader (no seeking, what a crash leaves is read with) sees the same file, ended cleanly.
    schemas, streamed, complete = read_stream(rec.files[0])
    assert complete and len(streamed) == len(messages)
    assert json.loads(schemas["/front/image"].data)["title"] == "foxglove.RawImage"

    written = {s.labels["kind"]: s.value for s in metrics.mcap_written.collect()[0].samples
               if s.name.endswith("_total")}
    assert written == {"score": 17, "image": 7, "alert": 1, "event": 1}


def test_files_rotate_past_max_mb_and_a_restart_numbers_on(tmp_path):
    rec = sink(tmp_path, max_mb=0.05, every_n=1, scale=1)  # a 48x64 frame is ~12 kB in base64: a few per file
    n = 40
    for i in range(n):
        rec.on_frame(scored("cam", i, frame_image(i), T0 + i))
    rec.close()
    assert len(rec.files) >= 3
    assert [p.name for p in rec.files] == [f"rec-{k:06d}.mcap" for k in range(1, len(rec.files) + 1)]
    indices = []
    for path in rec.files:
        _, messages, complete = read_stream(path)
        assert complete, f"{path} was not finished"
        indices += [json.loads(m.data)["frame_index"] for t, m in messages if t == "/cam/score"]
        # Rotation happens at a chunk's end, so a file passes max_mb by about one chunk (an eighth).
        assert path.stat().st_size < 0.05 * (1 << 20) * 1.5
    assert indices == list(range(n))

    again = sink(tmp_path)
    again.close()
    assert again.files == [tmp_path / f"rec-{len(rec.files) + 1:06d}.mcap"]


def test_missing_folder_is_an_agent_error(tmp_path):
    with pytest.raises(AgentError, match="sinks.mcap.path: folder .*nowhere does not exist"):
        McapSink(McapConfig(path=tmp_path / "nowhere" / "rec.mcap"), None, CLASSES, 0.5)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("command", ["check", "watch"])
def test_bad_values_are_one_error_line_and_exit_2(model_path, video, tmp_path, command, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outputs with relative default paths stay out of the checkout
    path = f"sinks.mcap.path={tmp_path / 'rec.mcap'}"
    cases = {
        "sinks.mcap.path: folder": [f"sinks.mcap.path={tmp_path / 'missing' / 'rec.mcap'}"],
        "sinks.mcap.max_mb: Input should be greater than 0": [path, "sinks.mcap.max_mb=0"],
        "sinks.mcap.every_n: Input should be greater than or equal to 1": [path, "sinks.mcap.every_n=0"],
        "sinks.mcap.scale: Input should be greater than 0": [path, "sinks.mcap.scale=-0.5"],
    }
    for needle, overrides in cases.items():
        args = [command, "--model", str(model_path), "--source", video, "--set", "metrics.port=0",
                "--set", f"alerts.snapshot_dir={tmp_path / 'snaps'}", "--set", "sinks.jsonl=null"]
        one_error_line(CliRunner().invoke(app, args + [a for o in overrides for a in ("--set", o)]), needle)
    assert not list(tmp_path.glob("*.mcap"))


def test_check_names_the_recording(model_path, video, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["check", "--model", str(model_path), "--source", video, "--set", "metrics.port=0",
                                      "--set", f"sinks.mcap.path={tmp_path / 'rec.mcap'}", "--set", "sinks.mcap.every_n=5",
                                      "--set", "sinks.mcap.scale=0.5"])
    assert result.exit_code == 0, result.output
    assert f"mcap {tmp_path / 'rec.mcap'} (every 5 frame(s) at scale 0.5, new file past 1024 MB)" in result.stdout


def test_full_disk_counts_errors_and_keeps_complete_chunks(mount):
    disk = mount("mcap", "256k")
    metrics = Metrics()
    # max_mb sets chunks of 32 kB, so some complete ones fit on the disk before it is full.
    rec = McapSink(McapConfig(path=disk / "rec.mcap", max_mb=0.25, every_n=1, scale=1), metrics, CLASSES, 0.5)
    n = 200  # 200 x ~49 kB of base64 frames: far more than the disk holds
    for i in range(n):
        rec.on_frame(scored("cam", i, frame_image(i, 96, 128), T0 + i))
    rec.close()  # returns: a full disk never hangs or raises into the watch loop
    errors = sum(s.value for s in metrics.mcap_errors.collect()[0].samples if s.name.endswith("_total"))
    written = sum(s.value for s in metrics.mcap_written.collect()[0].samples if s.name.endswith("_total"))
    assert errors > 0 and written > 0
    assert written + errors == 2 * n  # every message is either in a complete chunk or counted lost
    # Retries are spaced, so a full disk does not fill the folder with one file per message.
    assert len(rec.files) <= 2
    _, messages, complete = read_stream(rec.files[0])
    assert not complete and messages
    assert len(messages) <= written


def test_a_file_cut_anywhere_reads_to_its_last_whole_chunk(tmp_path):
    rec = sink(tmp_path, max_mb=0.4, every_n=1, scale=1)  # 50 kB chunks: a few frames each
    for i in range(30):
        rec.on_frame(scored("cam", i, frame_image(i), T0 + i))
    rec.close()
    data = rec.files[0].read_bytes()
    ends, messages = [], 0  # (offset just after each chunk, messages in it and the chunks before)
    with open(rec.files[0], "rb") as f:
        for record in StreamReader(f, emit_chunks=True).records:
            if isinstance(record, Chunk):
                messages += sum(isinstance(r, Message) for r in breakup_chunk(record))
                ends.append((f.tell(), messages))
    assert len(ends) >= 4 and messages == 60
    cut_file = tmp_path / "cut.mcap"
    for cut in np.linspace(0, len(data) - 1, 60).astype(int):  # into headers, chunks, indexes and the summary
        cut_file.write_bytes(data[:cut])
        _, read, complete = read_stream(cut_file)
        assert not complete
        # Every message of the chunks before the cut, none of the one it tore.
        assert len(read) == max((n for end, n in ends if end <= cut), default=0), cut


def complete_chunks(path) -> int:
    """Chunks of a file being written that are there whole."""
    count = 0
    try:
        with open(path, "rb") as f:
            for record in StreamReader(WholeReads(f), emit_chunks=True).records:
                count += isinstance(record, Chunk)
    except (EndOfFile, FileNotFoundError):
        pass
    return count


def test_killed_agent_leaves_a_file_readable_to_its_last_chunk(model_path, tmp_path):
    # A video file forced to live mode loops forever: only a signal ends the agent.
    video = write_video(tmp_path / "v.avi", make_frames(20, adversarial=[5, 6, 7]))
    cfg = write_config(tmp_path / "a.yaml", tmp_path, capture={"mode": "live"},
                       sinks={"stdout": False, "jsonl": None, "mcap": {"path": str(tmp_path / "rec.mcap"), "max_mb": 64,
                                                                   "every_n": 1, "scale": 1}})
    # In tmp_path: outputs with relative default paths stay out of the checkout.
    proc = subprocess.Popen([sys.executable, "-m", "agent", "watch", "--model", str(model_path), "--source",
                             f"front={video}", "--config", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    path = tmp_path / "rec-000001.mcap"  # 1 MiB chunks: it is killed long before it reaches max_mb
    try:
        deadline = time.monotonic() + 60
        while complete_chunks(path) < 3:
            try:  # the poll's wait; an agent that ended on its own fails the test
                proc.wait(timeout=0.1)
                pytest.fail(f"agent ended ({proc.returncode}): {proc.stderr.read()[-2000:]}")
            except subprocess.TimeoutExpired:
                assert time.monotonic() < deadline, "no 3 complete chunks within 60 s"
        _, before, _ = read_stream(path)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    schemas, messages, complete = read_stream(path)  # CRCs checked chunk by chunk
    assert not complete  # no summary or footer: the kill cut the file, and it is still read
    assert len(messages) >= len(before) >= 3
    topics = {t for t, _ in messages}
    assert {"/front/score", "/front/image", "/front/alerts"} <= topics
    assert schemas["/front/image"].name == "foxglove.RawImage"
    for topic in topics:
        times = [m.log_time for t, m in messages if t == topic and topic != "/front/events"]
        assert times == sorted(times), topic
    scores = [json.loads(m.data) for t, m in messages if t == "/front/score"]
    images = [json.loads(m.data) for t, m in messages if t == "/front/image"]
    assert len(images) == len(scores)  # every_n 1: each scored frame with its image
    assert all(s["predicted_class"] for s in scores)
    decoded = np.frombuffer(base64.b64decode(images[-1]["data"]), np.uint8)
    assert decoded.size == images[-1]["height"] * images[-1]["step"] == 96 * 128 * 3
