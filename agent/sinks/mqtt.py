"""Alerts to an MQTT broker: QoS 1, in order, none lost while the broker is away.

Every alert goes into the durable `Spool` first; one publisher thread sends the oldest
spooled message, waits for the broker's PUBACK and only then deletes it and sends the
next. One message in flight keeps the order strict; alerts are rare, so throughput is
not the concern. The status topic is retained: "online" after each connect, "offline"
on a clean stop and, through the last will, when the agent dies or loses its link.

No alert is lost or silently late: when the spool cannot store an alert (full disk) it
is kept in memory and published directly, counted in `agent_mqtt_spool_errors`; a
message the broker can never take goes to the dead-letter table with a log line and
`agent_mqtt_dead_letters`; a publisher that fails is restarted by its supervisor; every
failed connection attempt is counted and logged (repeats of one reason once a minute).
"""
from __future__ import annotations

import json
import logging
import sqlite3
import sys
import threading
import time
from collections import deque

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import MqttConfig
from agent.errors import AgentError
from agent.metrics import Metrics
from agent.observers import Context
from agent.sinks import Sink
from agent.sinks.spool import Spool

log = logging.getLogger(__name__)


class MqttSink(Sink):
    """Publishes alert events from a durable spool; see the module docstring."""

    def __init__(self, cfg: MqttConfig, agent: str, metrics: Metrics | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics or Metrics()
        self.agent = agent  # names the client and the status topic; alerts go to their camera's topic
        self.status_topic = cfg.status_topic.format(camera=agent)
        self.spool = Spool(cfg.spool_path)
        # Alerts the spool could not store, oldest first; while any wait here, new alerts
        # queue behind them so the order holds.
        self._memory: deque[tuple[str, bytes]] = deque()
        self._memory_lock = threading.Lock()
        self._last_failure = ("", float("-inf"))  # (reason, when logged)
        self._left_at_close: int | None = None
        # Spooled rows up to this id are delivered; on a full disk deleting them can fail (SQLite
        # needs room even to delete), and they must not be sent again and again meanwhile.
        self._delivered_upto = 0
        self._ack_failing = False
        self.connected = threading.Event()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._deadline = float("inf")  # set by close(): stop delivering after it
        # mid -> when its PUBACK came; mids wrap around, so an ack only counts when it
        # came after the publish (status messages leave entries nobody waits for).
        self._acked: dict[int, float] = {}
        self._acked_cond = threading.Condition()

        client = make_client(cfg, cfg.client_id or f"adversary-detector-{agent}")
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=cfg.reconnect_min_s, max_delay=cfg.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client
        pending = len(self.spool)
        if pending:
            log.info("MQTT spool %s holds %d undelivered alert(s) from before; sending them first",
                     cfg.spool_path, pending)
        client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        client.loop_start()
        self._publisher = threading.Thread(target=self._supervise, name="mqtt-publisher", daemon=True)
        self._publisher.start()

    # paho callbacks run on paho's network thread.
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._connect_failed(f"broker refused the connection: {reason_code}")
            return
        log.info("MQTT connected to %s:%d", self.cfg.host, self.cfg.port)
        client.publish(self.status_topic, "online", qos=1, retain=True)
        self.connected.set()
        self._wake.set()

    def _on_connect_fail(self, client, userdata) -> None:
        # paho calls this inside its `except OSError` (refused, unreachable, TLS handshake).
        exc = sys.exc_info()[1]
        self._connect_failed(f"{type(exc).__name__}: {exc}" if exc else "connection failed")

    def _connect_failed(self, reason: str) -> None:
        self.metrics.mqtt_connect_failures.inc()
        last_reason, logged_at = self._last_failure
        now = time.monotonic()
        if reason != last_reason or now - logged_at >= 60:
            self._last_failure = (reason, now)
            log.warning("MQTT cannot connect to %s:%d (%s); retrying, %d alert(s) waiting",
                        self.cfg.host, self.cfg.port, reason, self.pending())

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._closing.is_set():
            pass
        elif self.connected.is_set():
            log.warning("MQTT disconnected from %s:%d (%s); alerts are spooled until it is back",
                        self.cfg.host, self.cfg.port, reason_code)
        else:  # closed before CONNACK: e.g. a client certificate rejected after the TLS 1.3 handshake
            self._connect_failed(f"closed before accepting the connection: {reason_code}; "
                                 "does it require a client certificate?")
        self.connected.clear()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._acked_cond:
            self._acked[mid] = time.monotonic()
            self._acked_cond.notify_all()

    def _wait_ack(self, mid: int, since: float) -> bool:
        """Wait for the PUBACK of `mid` sent after `since`; paho resends it itself after a reconnect."""
        with self._acked_cond:
            while self._acked.get(mid, -1.0) < since:
                if time.monotonic() > self._deadline:
                    return False
                self._acked_cond.wait(0.2)
            del self._acked[mid]
            return True

    def _supervise(self) -> None:
        """Run the publisher; if it fails, log, count and restart it (it resumes at the oldest message)."""
        while True:
            try:
                self._publish_loop()
                return
            except Exception:
                log.exception("MQTT publisher failed; restarting it")
                self.metrics.mqtt_publisher_restarts.inc()
                if self._closing.wait(1.0) and time.monotonic() > self._deadline:
                    return

    def _oldest(self) -> tuple[int | None, str, bytes] | None:
        """The next message to send: spooled rows first (they are older), then those held in memory."""
        row = self.spool.head(after=self._delivered_upto)
        if row is not None:
            return row
        with self._memory_lock:
            return (None, *self._memory[0]) if self._memory else None

    def _done(self, row_id: int | None) -> None:
        if row_id is None:
            with self._memory_lock:
                self._memory.popleft()
            return
        self._delivered_upto = row_id
        try:
            self.spool.ack(row_id)
        except sqlite3.Error as exc:
            if not self._ack_failing:
                log.warning("MQTT spool %s cannot remove delivered alerts (%s); after a restart they may "
                            "arrive twice", self.cfg.spool_path, exc)
            self._ack_failing = True
        else:
            self._ack_failing = False

    def _publish_loop(self) -> None:
        while True:
            if self._closing.is_set() and (time.monotonic() > self._deadline or not self.pending()):
                return
            if not self.connected.wait(0.2):
                continue
            message = self._oldest()
            if message is None:
                self._wake.wait(0.2)
                self._wake.clear()
                continue
            row_id, topic, payload = message
            since = time.monotonic()
            try:
                info = self.client.publish(topic, payload, qos=1)
            except ValueError as exc:  # a wildcard or empty topic, an oversized payload: never deliverable
                self._dead_letter(row_id, topic, payload, str(exc))
                continue
            if not self._wait_ack(info.mid, since):
                return
            self._done(row_id)

    def _dead_letter(self, row_id: int | None, topic: str, payload: bytes, error: str) -> None:
        self.metrics.mqtt_dead_letters.inc()
        if row_id is not None:
            try:
                self.spool.dead_letter(row_id, error)
                where = f"moved to the dead_letter table of {self.cfg.spool_path}"
            except sqlite3.Error as exc:
                self._delivered_upto = row_id  # skipped in this run, so the rows behind it are not blocked
                where = f"not storable in the dead_letter table ({exc}): {payload.decode(errors='replace')}"
        else:
            self._done(None)
            where = f"dropped from memory: {payload.decode(errors='replace')}"
        log.error("MQTT cannot publish an alert on topic %r (%s); %s", topic, error, where)

    def emit(self, event: dict) -> None:
        """Spool `event` durably; the publisher thread delivers it when the broker is reachable.

        If the spool cannot store it, it waits in memory for direct publishing instead.
        """
        topic = self.cfg.alert_topic.format(camera=event.get("camera", self.agent))  # each camera its topic
        payload = json.dumps(event, separators=(",", ":")).encode()
        with self._memory_lock:
            if not self._memory:
                try:
                    self.spool.put(topic, payload)
                    self._wake.set()
                    return
                except sqlite3.Error as exc:
                    spool_error = exc
            else:
                spool_error = "alerts before it wait in memory"
            self._memory.append((topic, payload))
        self.metrics.mqtt_spool_errors.inc()
        log.error("MQTT spool %s cannot store alert %s (%s); keeping it in memory and publishing it directly",
                  self.cfg.spool_path, event.get("id"), spool_error)
        self._wake.set()

    def pending(self) -> int:
        """Alerts spooled or held in memory, not yet acknowledged by the broker."""
        if self._left_at_close is not None:
            return self._left_at_close
        with self._memory_lock:
            held = len(self._memory)
        return self.spool.count(after=self._delivered_upto) + held

    def close(self) -> None:
        """Deliver what is spooled for up to `flush_timeout_s`, announce offline, disconnect."""
        self._deadline = time.monotonic() + self.cfg.flush_timeout_s
        self._closing.set()
        self._wake.set()
        self._publisher.join()
        self._spool_memory()
        left = self.pending()
        if left:
            log.warning("%d alert(s) not delivered to MQTT; they stay in %s for the next start", left, self.cfg.spool_path)
        if self.connected.is_set():
            since = time.monotonic()
            info = self.client.publish(self.status_topic, "offline", qos=1, retain=True)
            with self._acked_cond:
                self._acked_cond.wait_for(lambda: self._acked.get(info.mid, -1.0) >= since, timeout=2.0)
        self.client.disconnect()
        self.client.loop_stop()
        self._left_at_close = left
        self.spool.close()

    def _spool_memory(self) -> None:
        """At exit, move alerts still held in memory into the spool, if it can take them now."""
        with self._memory_lock:
            while self._memory:
                try:
                    self.spool.put(*self._memory[0])
                except sqlite3.Error as exc:
                    log.error("%d alert(s) neither delivered to MQTT nor storable in %s (%s): lost to MQTT",
                              len(self._memory), self.cfg.spool_path, exc)
                    return
                self._memory.popleft()


def make_client(cfg: MqttConfig, client_id: str) -> mqtt.Client:
    """A paho client with the configured credentials and TLS; `AgentError` if one of their files is unusable."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=True)
    try:
        if cfg.username:
            password = cfg.password_file.read_text().strip() if cfg.password_file else None
            client.username_pw_set(cfg.username, password)
        if cfg.tls:
            client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None,
                           certfile=str(cfg.cert_file) if cfg.cert_file else None,
                           keyfile=str(cfg.key_file) if cfg.key_file else None)
    except OSError as exc:  # also ssl.SSLError: a certificate or key that does not load
        raise AgentError(f"MQTT credentials or TLS files: {exc.strerror or exc}"
                         + (f": {exc.filename}" if getattr(exc, "filename", None) else "")) from None
    return client


def build(ctx: Context) -> MqttSink | None:
    """`sinks.mqtt`, with its spool and connection state as metrics."""
    if not ctx.cfg.sinks.mqtt.enabled:
        return None
    sink = MqttSink(ctx.cfg.sinks.mqtt, ctx.agent, ctx.metrics)
    ctx.metrics.spool_pending.set_function(sink.pending)
    ctx.metrics.mqtt_connected.set_function(lambda: float(sink.connected.is_set()))
    return sink
