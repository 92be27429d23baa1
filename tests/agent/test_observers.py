"""The watch loop's observers: every scored frame and event, in order, and a failing one harms nothing."""
from __future__ import annotations

import json

from agent.cameras import resolve
from agent.config import load_agent_config
from agent.observers import Observer
from agent.sinks.jsonl import JsonlSink
from agent.sinks.stdout import StdoutSink
from agent.watch import Watch
from conftest import write_config, write_sequence
from fixture_model import make_frames


class Recorder(Observer):
    def __init__(self) -> None:
        self.frames, self.events, self.closed = [], [], 0

    def on_frame(self, scored) -> None:
        self.frames.append((scored.camera, scored.frame.index, scored.p_adv, scored.over))

    def annotate(self, event: dict) -> None:
        event["seen_by_recorder"] = True

    def on_event(self, event: dict) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed += 1


class Broken(Observer):
    def on_frame(self, scored) -> None:
        raise RuntimeError("broken on_frame")

    def on_event(self, event: dict) -> None:
        raise RuntimeError("broken on_event")


def test_observers_see_every_scored_frame_and_event_and_a_broken_one_harms_nothing(tmp_path, model_path):
    frames = make_frames(20, adversarial=[3, 12])
    cfg = load_agent_config(write_config(tmp_path / "a.yaml", tmp_path))
    recorder = Recorder()
    watch = Watch(cfg, model_path, resolve(cfg, sources=["cam=" + write_sequence(tmp_path / "seq", frames)]),
                  score=Broken())
    watch.observers.add(recorder)
    assert [type(o) for o in watch.observers.observers[:1]] == [JsonlSink], "built from sinks.* (stdout off)"
    summary = watch.run()

    assert summary.frames == 20 and summary.alerts == 2
    assert [f[1] for f in recorder.frames] == list(range(20)), "every scored frame, in order"
    assert [f[1] for f in recorder.frames if f[3]] == [3, 12] and all(f[0] == "cam" for f in recorder.frames)
    assert [e["frame_index"] for e in recorder.events if e["event"] == "alert"] == [3, 12]
    logged = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [e["frame_index"] for e in logged] == [3, 12]
    assert all(e["seen_by_recorder"] for e in logged), "annotate runs before any on_event"
    assert recorder.closed == 1
    errors = watch.metrics.registry.get_sample_value("agent_sink_errors_total", {"sink": "Broken"})
    assert errors == 20 + 2, "each failure counted: 20 frames, 2 alerts"


def test_sinks_are_built_from_their_config_fields(tmp_path, model_path):
    cfg = load_agent_config(write_config(tmp_path / "a.yaml", tmp_path, sinks={"stdout": True, "jsonl": None}))
    watch = Watch(cfg, model_path, resolve(cfg, sources=["cam=" + write_sequence(tmp_path / "seq", make_frames(2))]))
    try:
        assert [type(o) for o in watch.observers.observers] == [StdoutSink]
    finally:
        watch.run()
