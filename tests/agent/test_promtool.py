"""The agent's /metrics as the monitoring side reads it: the real `promtool check metrics` on a live agent."""
from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client import generate_latest

from agent.metrics import Metrics
from conftest import free_port, write_config, write_video
from fixture_model import make_frames

PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian package prometheus; "
                                             "scripts/setup.sh installs it)")
def test_promtool_accepts_a_live_agents_exposition(model_path, tmp_path):
    port = free_port()
    # A video file forced to live mode loops until SIGTERM, so the endpoint is still up when scraped.
    # Every frame perturbed: live mode skips frames, and whichever is scored first raises an alert.
    video = write_video(tmp_path / "v.avi", make_frames(12, adversarial=range(12)))
    cfg = write_config(tmp_path / "a.yaml", tmp_path, capture={"mode": "live"}, metrics={"port": port},
                       sinks={"stdout": True})
    proc = subprocess.Popen([sys.executable, "-m", "agent", "watch", "--model", str(model_path), "--source", video,
                             "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        # The first alert on stdout: frames have gone through every stage, so every series exists.
        # (Each loop of the file first ends in a camera_degraded/camera_recovered pair of lines.)
        line = ""
        while '"event":"alert"' not in line:
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready and proc.poll() is None, "no alert from the agent within 60 s"
            line = proc.stdout.readline()
        exposition = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    for series in ('agent_frame_latency_seconds_count{camera="v"}', "agent_inference_latency_seconds_bucket",
                   'agent_alerts_total{camera="v"}'):
        assert series.encode() in exposition, series
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition, capture_output=True)
    assert lint.returncode == 0, (lint.stdout + lint.stderr).decode()


def test_latencies_are_exported_in_seconds():
    """The loop hands milliseconds to `*_ms`; the exposition holds seconds, in seconds' buckets."""
    metrics = Metrics()
    metrics.inference_ms.observe(250.0)
    metrics.frame_latency_ms.labels("front").observe(4.0)
    text = generate_latest(metrics.registry).decode()
    assert "agent_inference_latency_seconds_sum 0.25" in text
    assert 'agent_inference_latency_seconds_bucket{le="0.25"} 1.0' in text
    assert 'agent_inference_latency_seconds_bucket{le="0.15"} 0.0' in text
    assert 'agent_frame_latency_seconds_sum{camera="front"} 0.004' in text
    assert "_ms" not in text
