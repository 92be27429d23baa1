"""Fixtures for the agent tests: a tiny contract-conforming model, generated streams, a broker."""
from __future__ import annotations

import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from fixture_model import build_fixture_model  # noqa: E402

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


@pytest.fixture(scope="session")
def model_path(tmp_path_factory) -> Path:
    """The tiny noise-detecting model with its manifest (threshold 0.5 in its metadata)."""
    return build_fixture_model(tmp_path_factory.mktemp("model") / "fixture.onnx")


def write_sequence(folder: Path, frames: list[np.ndarray]) -> str:
    """Write frames as a lossless PNG sequence; returns the `%04d` pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), frame)
    return str(folder / "%04d.png")


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> str:
    """Write frames as a lossless FFV1 video; returns its path."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write FFV1"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return str(path)


def write_config(path: Path, tmp: Path, **sections) -> Path:
    """An agent config for tests: quiet, fast timeouts, outputs under `tmp`; `sections` deep-merge."""
    cfg = {
        "capture": {"open_timeout_s": 5, "read_timeout_s": 2, "reconnect_initial_s": 0.05, "reconnect_max_s": 0.2},
        "inference": {"warmup_runs": 1, "intra_op_threads": 1, "batch_size": 4},
        # Evidence off unless a test turns it on: its `evidence` events would join every event count.
        "alerts": {"k": 1, "n": 1, "clear_after": 1, "cooldown_frames": 0, "snapshot_dir": str(tmp / "snapshots"),
                   "evidence": {"enabled": False, "dir": str(tmp / "evidence")}},
        "sinks": {"stdout": False, "jsonl": str(tmp / "alerts.jsonl")},
        "metrics": {"port": 0},
        "logging": {"stats_interval_s": 0.5},
    }
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(cfg))
    return path


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1, below the kernel's ephemeral range.

    A client that keeps reconnecting to a stopped server's port from an ephemeral port can, by chance, be
    given that very port and connect to itself (TCP simultaneous open), holding it: the restarted server
    then fails with "Address already in use". A listening port outside the range cannot be taken so.
    """
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low = int(ephemeral.read_text().split()[0]) if ephemeral.is_file() else 32768
    for port in random.Random().sample(range(max(1024, low - 12000), low), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port below {low}")


class Broker:
    """A real Mosquitto on 127.0.0.1:port that a test can stop and start again."""

    def __init__(self, folder: Path, persistent: bool = False) -> None:
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        # Persistence only where a test restarts the broker and its subscriber's durable
        # session (and the QoS 1 messages queued for it) must survive the restart. `user root`
        # keeps the user that runs the tests: started as root, mosquitto would otherwise switch
        # to `mosquitto`, which cannot write tmp_path, and restart with every session lost.
        self.db = folder / "mosquitto.db" if persistent else None
        persistence = (f"persistence true\npersistence_location {folder}/\nuser root\n" if persistent
                       else "persistence false\n")
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{persistence}")
        self.log = folder / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        with self.log.open("a") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert self.proc.poll() is None, self.log.read_text()
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        """Terminate it (sessions and queued messages survive only if persistent)."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
            assert self.db is None or self.db.exists(), f"mosquitto did not save its sessions:\n{self.log.read_text()}"


@pytest.fixture
def broker(tmp_path):
    """A running Mosquitto (persistent across its own restarts); skipped only where the binary is absent."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed")
    b = Broker(tmp_path, persistent=True)
    b.start()
    yield b
    b.stop()
