"""Alerts to an MQTT broker: QoS 1, in order, none lost while the broker is away.

Every alert goes into the durable `Spool` first; one publisher thread sends the oldest
spooled message, waits for the broker's PUBACK and only then deletes it and sends the
next. One message in flight keeps the order strict; alerts are rare, so throughput is
not the concern. The status topic is retained: "online" after each connect, "offline"
on a clean stop and, through the last will, when the agent dies or loses its link.
"""
from __future__ import annotations

import json
import logging
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import MqttConfig
from agent.sinks.spool import Spool

log = logging.getLogger(__name__)


class MqttSink:
    """Publishes alert events from a durable spool; see the module docstring."""

    def __init__(self, cfg: MqttConfig, agent: str) -> None:
        self.cfg = cfg
        self.agent = agent  # names the client and the status topic; alerts go to their camera's topic
        self.status_topic = cfg.status_topic.format(camera=agent)
        self.spool = Spool(cfg.spool_path)
        self.connected = threading.Event()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._deadline = float("inf")  # set by close(): stop delivering after it
        # mid -> when its PUBACK came; mids wrap around, so an ack only counts when it
        # came after the publish (status messages leave entries nobody waits for).
        self._acked: dict[int, float] = {}
        self._acked_cond = threading.Condition()

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.client_id or f"adversary-detector-{agent}",
                             protocol=mqtt.MQTTv311, clean_session=True)
        if cfg.username:
            password = cfg.password_file.read_text().strip() if cfg.password_file else None
            client.username_pw_set(cfg.username, password)
        if cfg.ca_file:
            client.tls_set(ca_certs=str(cfg.ca_file))
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=cfg.reconnect_min_s, max_delay=cfg.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client
        pending = len(self.spool)
        if pending:
            log.info("MQTT spool %s holds %d undelivered alert(s) from before; sending them first",
                     cfg.spool_path, pending)
        client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        client.loop_start()
        self._publisher = threading.Thread(target=self._publish_loop, name="mqtt-publisher", daemon=True)
        self._publisher.start()

    # paho callbacks run on paho's network thread.
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker %s:%d refused the connection: %s", self.cfg.host, self.cfg.port, reason_code)
            return
        log.info("MQTT connected to %s:%d", self.cfg.host, self.cfg.port)
        client.publish(self.status_topic, "online", qos=1, retain=True)
        self.connected.set()
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected.is_set():
            log.warning("MQTT disconnected from %s:%d (%s); alerts are spooled until it is back",
                        self.cfg.host, self.cfg.port, reason_code)
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

    def _publish_loop(self) -> None:
        while True:
            if self._closing.is_set() and (time.monotonic() > self._deadline or not len(self.spool)):
                return
            if not self.connected.wait(0.2):
                continue
            row = self.spool.head()
            if row is None:
                self._wake.wait(0.2)
                self._wake.clear()
                continue
            row_id, topic, payload = row
            since = time.monotonic()
            info = self.client.publish(topic, payload, qos=1)
            if not self._wait_ack(info.mid, since):
                return
            self.spool.ack(row_id)

    def emit(self, event: dict) -> None:
        """Spool `event` durably; the publisher thread delivers it when the broker is reachable."""
        topic = self.cfg.alert_topic.format(camera=event.get("camera", self.agent))  # each camera its topic
        self.spool.put(topic, json.dumps(event, separators=(",", ":")).encode())
        self._wake.set()

    def pending(self) -> int:
        """Alerts spooled but not yet acknowledged by the broker."""
        return len(self.spool)

    def close(self) -> None:
        """Deliver what is spooled for up to `flush_timeout_s`, announce offline, disconnect."""
        self._deadline = time.monotonic() + self.cfg.flush_timeout_s
        self._closing.set()
        self._wake.set()
        self._publisher.join()
        left = len(self.spool)
        if left:
            log.warning("%d alert(s) not delivered to MQTT; they stay in %s for the next start", left, self.cfg.spool_path)
        if self.connected.is_set():
            since = time.monotonic()
            info = self.client.publish(self.status_topic, "offline", qos=1, retain=True)
            with self._acked_cond:
                self._acked_cond.wait_for(lambda: self._acked.get(info.mid, -1.0) >= since, timeout=2.0)
        self.client.disconnect()
        self.client.loop_stop()
        self.spool.close()
