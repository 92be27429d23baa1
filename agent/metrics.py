"""Prometheus metrics of one agent, in its own registry."""
from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
# Seconds, Prometheus's base unit (promtool rejects names with abbreviated units such as _ms).
LATENCY_BUCKETS_S = (0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
                     0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


class Milliseconds:
    """A histogram in seconds fed with milliseconds: the watch loop times in ms for its summary,
    so the unit changes here, once, at the edge of the exposition."""

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram

    def labels(self, *values: str) -> "Milliseconds":
        return Milliseconds(self.histogram.labels(*values))

    def observe(self, ms: float) -> None:
        self.histogram.observe(ms / 1e3)


class Metrics:
    """Counters, gauges and latency histograms (seconds; `*_ms` attributes take milliseconds) the watch loop updates."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        cam = ["camera"]
        self.frames = Counter("agent_frames", "Frames run through the detector", cam, registry=r)
        self.fps = Gauge("agent_fps", "Frames per second over the last stats interval", cam, registry=r)
        self.inference_seconds = Histogram("agent_inference_latency_seconds", "ONNX Runtime time per frame",
                                           buckets=LATENCY_BUCKETS_S, registry=r)
        self.inference_ms = Milliseconds(self.inference_seconds)
        self.batch_size = Histogram("agent_batch_size", "Frames per inference call", buckets=BATCH_BUCKETS, registry=r)
        self.frame_latency_seconds = Histogram("agent_frame_latency_seconds", "Decode to alert decision per frame",
                                               cam, buckets=LATENCY_BUCKETS_S, registry=r)
        self.frame_latency_ms = Milliseconds(self.frame_latency_seconds)
        self.alerts = Counter("agent_alerts", "Alerts raised", cam, registry=r)
        self.reconnects = Counter("agent_source_reconnects", "Times the source was reopened", cam, registry=r)
        self.dropped = Counter("agent_dropped_frames", "Live frames skipped because a newer one arrived", cam,
                               registry=r)
        self.p_adv = Gauge("agent_p_adv", "p_adv of the latest frame", cam, registry=r)
        self.degraded = Gauge("agent_camera_degraded", "1 while the camera gives no usable frames "
                              "(lost, frozen, black, saturated, undecodable)", cam, registry=r)
        self.unfamiliar_share = Gauge("agent_unfamiliar_share", "Share of the scored frames unlike the model's "
                                      "training data (not judged for alerts)", cam, registry=r)
        self.unhealthy = Counter("agent_unhealthy_frames", "Frames not scored, by reason", ["camera", "reason"],
                                 registry=r)
        self.provider = Gauge("agent_inference_provider", "ONNX Runtime execution provider in use (1)",
                              ["provider"], registry=r)
        self.info = Gauge("agent_info", "Camera and model being watched (1)", ["camera", "model_sha256"], registry=r)
        self.ready = Gauge("agent_ready", "1 once warm-up is done and frames are being processed", registry=r)
        self.spool_pending = Gauge("agent_mqtt_spool_pending", "Alerts waiting for the MQTT broker", registry=r)
        self.mqtt_connected = Gauge("agent_mqtt_connected", "1 while connected to the MQTT broker", registry=r)
        self.sink_errors = Counter("agent_sink_errors", "Alert events a sink failed to take", ["sink"], registry=r)
        self.snapshot_errors = Counter("agent_snapshot_errors", "Alert snapshots not saved (write failed or "
                                       "too little free space)", ["reason"], registry=r)
        self.retention_deleted = Counter("agent_retention_deleted_files", "Old snapshots and alert logs removed "
                                         "by retention", registry=r)
        self.mqtt_spool_errors = Counter("agent_mqtt_spool_errors", "Alerts the spool could not store (kept in "
                                         "memory and published directly)", registry=r)
        self.mqtt_dead_letters = Counter("agent_mqtt_dead_letters", "Alerts the broker can never take, moved to "
                                         "the spool's dead_letter table", registry=r)
        self.mqtt_connect_failures = Counter("agent_mqtt_connect_failures", "Failed MQTT connection attempts",
                                             registry=r)
        self.mqtt_publisher_restarts = Counter("agent_mqtt_publisher_restarts", "Times the MQTT publisher "
                                               "thread failed and was restarted", registry=r)
        self.mcap_written = Counter("agent_mcap_messages", "Messages written to the MCAP recording, by kind "
                                    "(image, score, alert, event)", ["kind"], registry=r)
        self.mcap_errors = Counter("agent_mcap_errors", "MCAP messages lost, by reason (write: the disk failed, "
                                   "the file in progress is closed; full: the writer fell behind)", ["reason"],
                                   registry=r)
        self.evidence_written = Counter("agent_evidence_written", "Alert evidence folders written whole",
                                        registry=r)
        self.evidence_dropped = Counter("agent_evidence_dropped", "Alert evidence not written, by reason (queue_full: "
                                        "the writer fell behind; low_space: below alerts.min_free_mb; write: the "
                                        "disk failed)", ["reason"], registry=r)
        self._server = None

    def serve(self, address: str, port: int) -> None:
        """Expose /metrics on address:port (port 0: not at all)."""
        if port:
            try:
                self._server, _ = start_http_server(port, addr=address, registry=self.registry)
            except OSError as exc:
                raise OSError(exc.errno, f"metrics endpoint {address}:{port}: {exc.strerror}") from None
            log.info("metrics on http://%s:%d/metrics", address, port)

    def close(self) -> None:
        """Stop the HTTP endpoint."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
