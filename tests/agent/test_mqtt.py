"""A real Mosquitto receives every alert, in order, across broker outages and agent restarts."""
from __future__ import annotations

import json
import sqlite3
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.cameras import resolve
from agent.config import MqttConfig, load_agent_config
from agent.sinks.mqtt import MqttSink
from agent.sinks.spool import Spool
from agent.watch import Watch
from conftest import write_config, write_sequence
from fixture_model import make_frames

TOPIC = "adversary-detector/cam/alerts"
STATUS = "adversary-detector/cam/status"


class Subscriber:
    """A durable (clean_session=False) QoS 1 subscriber that records alert ids and status values.

    While it reconnects, the broker queues the alerts for its session; a reconnect that finds
    the session gone would silently miss them, so `wait_for` fails on it.
    """

    def __init__(self, port: int) -> None:
        self.ids: list[str] = []
        self.status: list[str] = []
        self.sessions: list[bool] = []  # per CONNACK: did the broker still hold the session?
        self.cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-subscriber", clean_session=False)
        self.client.reconnect_delay_set(0.05, 0.2)
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        with self.cond:
            self.sessions.append(flags.session_present)
            self.cond.notify_all()
        if flags.session_present:
            self.subscribed.set()
        else:
            client.subscribe([(TOPIC, 1), (STATUS, 1)])

    def _on_message(self, client, userdata, msg) -> None:
        with self.cond:
            if msg.topic == TOPIC:
                self.ids.append(json.loads(msg.payload)["id"])
            else:
                self.status.append(msg.payload.decode())
            self.cond.notify_all()

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:
        """Wait until `predicate(self)` holds, re-checked on each message and every 50 ms; fail
        whatever it says if a reconnect found the session gone (the alerts meanwhile are lost)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (held := predicate(self)) and time.monotonic() < deadline:
                self.cond.wait(0.05)
            assert all(self.sessions[1:]), f"a reconnect found the durable session gone: {self.sessions}"
            return held

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def subscriber(broker):
    sub = Subscriber(broker.port)
    assert sub.subscribed.wait(10)
    yield sub
    sub.close()


def sink_config(broker, tmp_path, **kw) -> MqttConfig:
    return MqttConfig(enabled=True, host="127.0.0.1", port=broker.port, spool_path=tmp_path / "spool.sqlite3",
                      reconnect_min_s=0.05, reconnect_max_s=0.2, flush_timeout_s=kw.pop("flush_timeout_s", 5), **kw)


def alert(n: int) -> dict:
    return {"event": "alert", "id": f"alert-{n}", "frame_index": n}


def firsts(ids: list[str]) -> list[str]:
    """Ids in order of first arrival (QoS 1 is at-least-once: a duplicate is allowed, a gap is not)."""
    seen: dict[str, None] = {}
    for i in ids:
        seen.setdefault(i)
    return list(seen)


def test_durable_subscriber_away_across_a_broker_restart_gets_what_it_missed(broker, subscriber, tmp_path):
    """The premise of the outage tests: an alert the broker took while the subscriber was still
    reconnecting waits in its durable session. Once, the broker could not save its sessions and
    alert 2 of the outage test, delivered before the subscriber was back, was gone."""
    subscriber.client.loop_stop()  # away until reconnected below
    broker.stop()
    broker.start()
    sink = MqttSink(sink_config(broker, tmp_path, flush_timeout_s=30), "cam")
    sink.emit(alert(1))
    sink.close()
    assert sink.pending() == 0, "the broker acknowledged the alert"
    subscriber.client.reconnect()
    subscriber.client.loop_start()
    assert subscriber.wait_for(lambda s: len(s.sessions) == 2)  # fails at once if the session is gone
    assert subscriber.wait_for(lambda s: "alert-1" in s.ids), subscriber.ids


def test_alerts_during_a_broker_outage_arrive_in_order(broker, subscriber, tmp_path):
    sink = MqttSink(sink_config(broker, tmp_path), "cam")
    assert sink.connected.wait(30)
    sink.emit(alert(1))
    assert subscriber.wait_for(lambda s: "alert-1" in s.ids)
    broker.stop()
    assert subscriber.wait_for(lambda s: not sink.connected.is_set())
    for n in (2, 3, 4):
        sink.emit(alert(n))
    assert sink.pending() == 3
    broker.start()
    sink.emit(alert(5))
    assert subscriber.wait_for(lambda s: len(set(s.ids)) == 5), subscriber.ids
    assert firsts(subscriber.ids) == [f"alert-{n}" for n in range(1, 6)]
    sink.close()
    assert subscriber.wait_for(lambda s: s.status and s.status[-1] == "offline")
    assert sink.spool is not None and len(Spool(tmp_path / "spool.sqlite3")) == 0


def test_alerts_spooled_before_an_agent_restart_are_delivered(broker, tmp_path):
    broker.stop()
    first = MqttSink(sink_config(broker, tmp_path, flush_timeout_s=0.3), "cam")
    for n in (1, 2, 3):
        first.emit(alert(n))
    first.close()  # broker unreachable: the alerts stay in the spool file
    with sqlite3.connect(tmp_path / "spool.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM spool").fetchone()[0] == 3

    broker.start()
    sub = Subscriber(broker.port)
    try:
        assert sub.subscribed.wait(10)
        second = MqttSink(sink_config(broker, tmp_path), "cam")
        second.emit(alert(4))
        assert sub.wait_for(lambda s: len(set(s.ids)) == 4), sub.ids
        assert firsts(sub.ids) == [f"alert-{n}" for n in range(1, 5)]
        assert "online" in sub.status
        second.close()
    finally:
        sub.close()


def test_last_will_marks_a_dead_agent_offline(broker, subscriber, tmp_path):
    sink = MqttSink(sink_config(broker, tmp_path, keepalive_s=5), "cam")
    assert subscriber.wait_for(lambda s: s.status[-1:] == ["online"])
    # The link dies without DISCONNECT, as when the process is killed; no reconnect follows.
    sink.client.loop_stop()
    sink.client.socket().close()
    assert subscriber.wait_for(lambda s: s.status[-1:] == ["offline"])


def test_watch_publishes_every_alert(broker, subscriber, model_path, tmp_path):
    frames = make_frames(30, adversarial=[3, 10, 22])
    cfg = load_agent_config(write_config(
        tmp_path / "a.yaml", tmp_path,
        sinks={"stdout": False, "jsonl": str(tmp_path / "alerts.jsonl"),
               "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port,
                        "spool_path": str(tmp_path / "spool.sqlite3")}}))
    summary = Watch(cfg, model_path, resolve(cfg, sources=["cam=" + write_sequence(tmp_path / "seq", frames)])).run()
    assert summary.alerts == 3
    expected = [json.loads(line)["id"] for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert subscriber.wait_for(lambda s: len(set(s.ids)) == 3)
    assert firsts(subscriber.ids) == expected


def test_alerts_of_a_run_without_broker_arrive_after_the_agent_restarts(broker, model_path, tmp_path):
    sinks = {"stdout": False, "jsonl": str(tmp_path / "alerts.jsonl"),
             "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port, "reconnect_min_s": 0.05,
                      "reconnect_max_s": 0.2, "spool_path": str(tmp_path / "spool.sqlite3")}}
    first_cfg = write_config(tmp_path / "a.yaml", tmp_path, sinks=sinks)
    cfg = load_agent_config(first_cfg, ["sinks.mqtt.flush_timeout_s=0.2"])
    uri = write_sequence(tmp_path / "seq", make_frames(20, adversarial=[2, 12]))
    broker.stop()
    assert Watch(cfg, model_path, resolve(cfg, sources=["cam=" + uri])).run().alerts == 2  # spooled, broker down

    broker.start()
    sub = Subscriber(broker.port)
    try:
        assert sub.subscribed.wait(10)
        assert Watch(load_agent_config(first_cfg), model_path, resolve(cfg, sources=["cam=" + uri])).run().alerts == 2
        expected = [json.loads(line)["id"] for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
        assert len(expected) == 4
        assert sub.wait_for(lambda s: len(set(s.ids)) == 4), sub.ids
        assert firsts(sub.ids) == expected
    finally:
        sub.close()
