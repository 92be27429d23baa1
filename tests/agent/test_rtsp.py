"""Real RTSP: footage served by GStreamer's RTSP server on 127.0.0.1, which the tests restart and stall."""
from __future__ import annotations

import itertools
import json
import threading
import time

import pytest

from agent.cameras import resolve
from agent.capture import backoff
from agent.config import CaptureConfig, load_agent_config
from agent.watch import Watch
from conftest import free_port, write_config
from rtsp import RtspServer, encode, footage, missing

# Small frames keep the encode and decode cheap; the agent resizes whatever arrives.
BEFORE, AFTER = (160, 120), (192, 144)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    why = missing()
    if why:
        pytest.skip(why)
    tree = footage("tree.avi")
    if tree is None:
        pytest.skip("OpenCV sample footage (opencv-doc) is not unpacked; see scripts/setup.sh")
    folder = tmp_path_factory.mktemp("clips")
    return {size: encode(tree, folder / f"tree-{size[0]}x{size[1]}.mkv", *size) for size in (BEFORE, AFTER)}


def wait_until(predicate, what: str, timeout: float = 45.0) -> None:
    """Poll `predicate`; the timeout only bounds a failing test, nothing is asserted on time."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


class Watching:
    """`agent watch` on one RTSP camera in a thread, recording the size of every frame it scores."""

    def __init__(self, tmp_path, model_path, url: str) -> None:
        self.cfg = load_agent_config(write_config(
            tmp_path / "agent.yaml", tmp_path,
            capture={"open_timeout_s": 3, "read_timeout_s": 1.0, "reconnect_initial_s": 0.1, "reconnect_max_s": 0.5}))
        self.jsonl = tmp_path / "alerts.jsonl"
        self.watch = Watch(self.cfg, model_path, resolve(self.cfg, sources=[f"cam={url}"]))
        self.sizes: list[tuple[int, int]] = []
        prepare = self.watch.detector.prepare

        def recording(image):
            self.sizes.append((image.shape[1], image.shape[0]))
            return prepare(image)

        self.watch.detector.prepare = recording
        self.thread = threading.Thread(target=self.watch.run)
        self.thread.start()

    @property
    def source(self):
        return self.watch.cameras[0].source

    def events(self, kind: str) -> list[dict]:
        lines = self.jsonl.read_text().splitlines() if self.jsonl.exists() else []
        return [e for e in map(json.loads, lines) if e["event"] == kind]

    def close(self) -> None:
        self.watch.stop.set()
        self.thread.join(30)


def test_backoff_is_capped_so_a_camera_that_is_back_is_seen_within_the_cap():
    cfg = CaptureConfig()
    delays = list(itertools.islice(backoff(cfg), 12))
    assert delays[0] == cfg.reconnect_initial_s and max(delays) == cfg.reconnect_max_s
    assert all(b == min(2 * a, cfg.reconnect_max_s) for a, b in zip(delays, delays[1:]))
    # An attempt starts at most reconnect_max_s after the server is back; it then needs one open.
    assert cfg.reconnect_max_s <= 1.0, "the 2 s reconnect target leaves 1 s for the open"


def test_server_restart_reconnects_and_takes_the_new_resolution(tmp_path, model_path, clips):
    server = RtspServer(free_port(), {"cam": clips[BEFORE]})
    server.start()
    watching = None
    try:
        watching = Watching(tmp_path, model_path, server.url("cam"))
        wait_until(lambda: BEFORE in watching.sizes, "frames before the restart")
        server.stop()
        wait_until(lambda: watching.events("camera_degraded"), "the camera to be reported lost")
        assert watching.events("camera_degraded")[0]["reason"] == "lost"
        server.mounts["cam"] = clips[AFTER]  # the camera comes back with another resolution
        server.start()
        back_at = time.monotonic()
        wait_until(lambda: AFTER in watching.sizes, "frames after the restart")
        assert watching.source.reopened_at >= back_at, "the reconnect is the one after the server came back"
        wait_until(lambda: watching.events("camera_recovered"), "the camera to be reported back")
        assert watching.sizes.index(AFTER) > watching.sizes.index(BEFORE)
        assert set(watching.sizes) == {BEFORE, AFTER}
    finally:
        if watching is not None:
            watching.close()
        server.stop()
    assert watching.watch.summary.reconnects >= 1


def test_a_stream_that_stalls_without_closing_is_reconnected(tmp_path, model_path, clips):
    server = RtspServer(free_port(), {"cam": clips[BEFORE]})
    server.start()
    watching = None
    try:
        watching = Watching(tmp_path, model_path, server.url("cam"))
        wait_until(lambda: len(watching.sizes) >= 5, "the first frames")
        server.stall()  # the TCP connection stays open, no frame arrives
        wait_until(lambda: watching.source.reconnects >= 1, "the read timeout to trigger a reconnect")
        wait_until(lambda: watching.events("camera_degraded"), "the camera to be reported lost")
        assert watching.events("camera_degraded")[0]["reason"] == "lost"
        server.stall(False)
        scored = len(watching.sizes)
        wait_until(lambda: len(watching.sizes) > scored + 5, "frames after the stall")
        wait_until(lambda: watching.events("camera_recovered"), "the camera to be reported back")
    finally:
        if watching is not None:
            watching.close()
        server.stop()
