"""sd_notify: READY after warm-up, WATCHDOG only as frames are processed, STOPPING on SIGTERM."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from agent.systemd import Notifier
from conftest import write_config, write_video
from fixture_model import make_frames


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request, tmp_path):
    """A datagram socket like systemd's; yields (NOTIFY_SOCKET value, socket)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
        sock.bind(address)
        env_value = address
    else:
        name = f"agent-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        env_value = "@" + name
    sock.settimeout(0.05)
    yield env_value, sock
    sock.close()


def receive(sock, until: float) -> list[str]:
    messages = []
    while time.monotonic() < until:
        try:
            messages.append(sock.recv(4096).decode())
        except socket.timeout:
            if messages:
                break
    return messages


def test_notifier_messages_and_watchdog_tied_to_frames(notify_socket):
    address, sock = notify_socket
    n = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000"})
    assert n.enabled and n.watchdog_interval == pytest.approx(0.05)
    n.ready("watching")
    assert receive(sock, time.monotonic() + 1) == ["READY=1\nSTATUS=watching"]
    n.frame_processed()
    n.frame_processed()  # within the interval: no second ping
    assert receive(sock, time.monotonic() + 0.2) == ["WATCHDOG=1"]
    time.sleep(0.06)  # bounded: one watchdog interval
    assert receive(sock, time.monotonic() + 0.2) == [], "no frames, no ping"
    n.frame_processed()
    n.stopping()
    assert receive(sock, time.monotonic() + 1) == ["WATCHDOG=1", "STOPPING=1\nSTATUS=stopping: flushing alerts"]


def test_without_systemd_nothing_is_sent():
    n = Notifier({})
    assert not n.enabled and n.watchdog_interval is None
    n.ready("x")
    n.frame_processed()


def test_watchdog_for_another_pid_is_ignored():
    assert Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_interval is None


def test_agent_process_under_notify_socket(notify_socket, model_path, tmp_path):
    address, sock = notify_socket
    # A video file forced to live mode loops forever (each end is a reconnect): a stream that only SIGTERM ends.
    video = write_video(tmp_path / "v.avi", make_frames(20, adversarial=[5]))
    cfg = write_config(tmp_path / "a.yaml", tmp_path, capture={"mode": "live"})
    env = dict(os.environ, NOTIFY_SOCKET=address, WATCHDOG_USEC="200000")
    proc = subprocess.Popen([sys.executable, "-m", "agent", "watch", "--model", str(model_path), "--source", video,
                             "--config", str(cfg)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        messages: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and messages.count("WATCHDOG=1") < 2:
            messages += receive(sock, time.monotonic() + 0.5)
        assert messages[0].startswith("READY=1\n"), messages
        assert messages.count("WATCHDOG=1") >= 2, messages
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        messages += receive(sock, time.monotonic() + 1)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert any(m.startswith("STOPPING=1") for m in messages), messages
    assert "received SIGTERM" in stderr and "Traceback" not in stderr


def test_unit_file_has_what_the_agent_relies_on():
    from pathlib import Path

    unit = (Path(__file__).parents[2] / "configs" / "adversary-detector-agent.service").read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "DeviceAllow=char-video4linux rw",
                 "DeviceAllow=char-nvidia-frontend rw", "NoNewPrivileges=yes", "ProtectSystem=strict"):
        assert line in unit, line
