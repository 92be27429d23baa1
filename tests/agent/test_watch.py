"""End to end through `Watch`: generated streams with adversarial frames at known indices."""
from __future__ import annotations

import json
import urllib.request

import cv2
import numpy as np
import pytest

from agent.cameras import resolve
from agent.config import load_agent_config
from agent.watch import Watch
from conftest import free_port, write_config, write_sequence, write_video
from fixture_model import make_frames

ADVERSARIAL = [4, 9, 17, 18, 30]


@pytest.fixture(scope="module")
def frames():
    return make_frames(40, adversarial=ADVERSARIAL)


def run_watch(tmp_path, model_path, uri, overrides=(), **sections):
    cfg = load_agent_config(write_config(tmp_path / "agent.yaml", tmp_path, **sections), list(overrides))
    summary = Watch(cfg, model_path, resolve(cfg, sources=[uri]), record=True).run()
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines() if (tmp_path / "alerts.jsonl").exists() else []
    return summary, [json.loads(line) for line in lines]


@pytest.mark.parametrize("container", ["sequence", "video"])
def test_alerts_fire_on_adversarial_frames_only(tmp_path, model_path, frames, container):
    uri = (write_sequence(tmp_path / "seq", frames) if container == "sequence"
           else write_video(tmp_path / "v.avi", frames))
    summary, events = run_watch(tmp_path, model_path, uri)
    assert summary.frames == 40
    # k=1 of n=1, clear after 1: every adversarial run starts one alert
    assert [e["frame_index"] for e in events] == [4, 9, 17, 30]
    e = events[0]
    assert e["camera"] in ("seq", "v") and e["p_adv"] > 0.5 and e["threshold"] == 0.5
    assert e["model_sha256"] and e["predicted_class"] in ("t-shirt", "trouser", "pullover", "dress")
    snapshot = cv2.imread(e["snapshot"], cv2.IMREAD_UNCHANGED)
    assert np.array_equal(snapshot, frames[4]), "snapshot is the full frame, bit-exact"
    assert set(summary.timings_ms) == {"capture", "preprocess", "inference", "alerting", "end_to_end"}
    assert all(t.count == 40 for t in summary.timings_ms.values())


def test_k_of_n_suppresses_isolated_frames(tmp_path, model_path, frames):
    summary, events = run_watch(tmp_path, model_path, write_sequence(tmp_path / "seq", frames),
                                alerts={"k": 2, "n": 3, "clear_after": 2, "cooldown_frames": 0})
    assert [e["frame_index"] for e in events] == [18]


def test_threshold_override_and_max_frames(tmp_path, model_path, frames):
    summary, events = run_watch(tmp_path, model_path, write_sequence(tmp_path / "seq", frames),
                                overrides=["alerts.threshold=1.0"])
    assert events == [] and summary.frames == 40
    cfg = load_agent_config(write_config(tmp_path / "b.yaml", tmp_path / "b"))
    summary = Watch(cfg, model_path, resolve(cfg, sources=[write_sequence(tmp_path / "seq", frames)])).run(max_frames=10)
    assert summary.frames == 10


def test_prometheus_endpoint(tmp_path, model_path, frames):
    port = free_port()
    cfg = load_agent_config(write_config(tmp_path / "agent.yaml", tmp_path, metrics={"port": port}))
    watch = Watch(cfg, model_path, resolve(cfg, sources=[write_sequence(tmp_path / "seq", frames)]))
    scraped = {}
    original = watch._decide

    def decide_and_scrape(camera, frame, probs, p_adv):  # scrape while the endpoint is up, near the end
        original(camera, frame, probs, p_adv)
        if frame.index == 35:
            scraped["text"] = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()

    watch._decide = decide_and_scrape
    watch.run()
    text = scraped["text"]
    assert 'agent_inference_provider{provider="CPUExecutionProvider"} 1.0' in text
    assert 'agent_alerts_total{camera="seq"} 4.0' in text
    assert 'agent_camera_degraded{camera="seq"} 0.0' in text
    assert 'agent_inference_latency_seconds_bucket{le="0.001"}' in text
    for name in ("agent_frames_total", "agent_fps", "agent_source_reconnects_total", "agent_dropped_frames_total"):
        assert name in text
