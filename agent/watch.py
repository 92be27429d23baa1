"""The watch loop: frames -> detector -> debouncer -> alerts -> sinks, with metrics and sd_notify."""
from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.alerts import SnapshotWriter, make_event
from agent.capture import Frame, Source, SourceSpec
from agent.config import AgentConfig
from agent.debounce import Debouncer
from agent.errors import AgentError
from agent.metrics import Metrics
from agent.model import Detector, verify_model
from agent.scoring import LabelledScore
from agent.sinks import FanOut, Sink
from agent.sinks.jsonl import JsonlSink
from agent.sinks.mqtt import MqttSink
from agent.sinks.stdout import StdoutSink
from agent.systemd import Notifier

log = logging.getLogger(__name__)

STAGES = ("capture", "preprocess", "inference", "alerting", "end_to_end")


@dataclass
class Summary:
    """What a run did; `timings_ms` (per frame, per stage) only when recording was asked for."""

    frames: int = 0
    alerts: int = 0
    seconds: float = 0.0
    reconnects: int = 0
    dropped: int = 0
    provider: str = ""
    timings_ms: dict[str, list[float]] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        """Frames per second over the run."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def build_sinks(cfg: AgentConfig, camera: str) -> tuple[FanOut, MqttSink | None]:
    """The configured sinks, fanned out; the MQTT sink is also returned for its metrics."""
    sinks: list[Sink] = []
    mqtt = None
    if cfg.sinks.stdout:
        sinks.append(StdoutSink())
    if cfg.sinks.jsonl is not None:
        sinks.append(JsonlSink(cfg.sinks.jsonl))
    if cfg.sinks.mqtt.enabled:
        mqtt = MqttSink(cfg.sinks.mqtt, camera)
        sinks.append(mqtt)
    return FanOut(sinks), mqtt


class Watch:
    """One camera watched with one model; construct (verifies, opens, warms up), then `run()`.

    Setting `stop` (from a signal handler or another thread) ends `run()` cleanly.
    """

    def __init__(self, cfg: AgentConfig, model: str | Path, spec: SourceSpec, *,
                 stop: threading.Event | None = None, notifier: Notifier | None = None,
                 record: bool = False, score: LabelledScore | None = None) -> None:
        self.cfg = cfg
        self.score = score
        self.stop = stop or threading.Event()
        self.notifier = notifier or Notifier()
        self.record = record
        self.camera = cfg.camera.name or spec.label
        self._resources = ExitStack()
        try:
            self._setup(model, spec)
        except OSError as exc:  # unwritable output paths, metrics port in use, unreadable password file
            self._resources.close()
            raise AgentError(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")) from None
        except BaseException:
            self._resources.close()
            raise

    def _setup(self, model: str | Path, spec: SourceSpec) -> None:
        cfg = self.cfg
        self.info = verify_model(model)
        self.detector = Detector(self.info, cfg.inference)
        self.threshold = cfg.alerts.threshold if cfg.alerts.threshold is not None else self.info.threshold
        self.source = Source(spec, cfg.capture, stop=self.stop)
        self.source.open()
        self._resources.callback(self.source.stop)
        self.batch_size = 1 if spec.live else cfg.inference.batch_size

        self.metrics = Metrics()
        self.metrics.provider.labels(self.detector.provider).set(1)
        self.metrics.info.labels(self.camera, self.info.sha256).set(1)
        self.sinks, mqtt = build_sinks(cfg, self.camera)
        self._resources.callback(self.sinks.close)
        if mqtt is not None:
            self.metrics.spool_pending.set_function(mqtt.pending)
            self.metrics.mqtt_connected.set_function(lambda: float(mqtt.connected.is_set()))
        self.snapshots = SnapshotWriter(cfg.alerts.snapshot_dir)
        self.metrics.serve(cfg.metrics.address, cfg.metrics.port)
        self._resources.callback(self.metrics.close)
        # Registered last so it runs first on shutdown: STOPPING=1 before the spool flush.
        self._resources.callback(self.notifier.stopping)

        # Logged only once every input is known good, so a bad one ends with a single error line.
        log.info("model %s sha256 %s, input %dx%dx%d, provider %s, threshold %.4f (%s)", self.info.path,
                 self.info.sha256[:12], self.info.width, self.info.height, self.info.channels,
                 self.detector.provider, self.threshold,
                 "config" if cfg.alerts.threshold is not None else "model metadata")
        log.info("source %s opened (%s)", spec, "live: newest frame only" if spec.live else "every frame in order")
        a = cfg.alerts
        self.debouncer = Debouncer(a.k, a.n, a.clear_after, a.cooldown_frames)
        self._inputs = np.empty((self.batch_size, self.info.height, self.info.width, self.info.channels), np.uint8)
        start = time.perf_counter()
        self.detector.warmup(cfg.inference.warmup_runs, tuple(sorted({1, self.batch_size})))
        log.info("warm-up done in %.0f ms", (time.perf_counter() - start) * 1e3)

    def run(self, max_frames: int | None = None) -> Summary:
        """Process frames until the source ends, `max_frames` are done or `stop` is set."""
        summary = self.summary = Summary(provider=self.detector.provider)
        if self.record:
            summary.timings_ms = {stage: [] for stage in STAGES}
        self.metrics.ready.set(1)
        self.notifier.ready(f"watching {self.camera} with {self.detector.provider}")
        log.info("ready: watching %s", self.camera)
        start = self._stats_at = time.monotonic()
        self._stats_frames = 0
        try:
            with closing(self.source.frames()) as frames:
                batch: list[Frame] = []
                for frame in frames:
                    batch.append(frame)
                    limit_reached = max_frames is not None and summary.frames + len(batch) >= max_frames
                    if len(batch) == self.batch_size or limit_reached:
                        self._process(batch)
                        batch = []
                    if limit_reached or self.stop.is_set():
                        break
                if batch:
                    self._process(batch)
        finally:
            summary.seconds = time.monotonic() - start
            self._sync_source_counters()
            self.metrics.ready.set(0)
            log.info("stopping after %d frames (%.1f fps), %d alert(s), %d reconnect(s), %d dropped",
                     summary.frames, summary.fps, summary.alerts, summary.reconnects, summary.dropped)
            self._resources.close()
        return summary

    def _process(self, batch: list[Frame]) -> None:
        t0 = time.perf_counter()
        inputs = self._inputs[:len(batch)]
        for i, frame in enumerate(batch):
            inputs[i] = self.detector.prepare(frame.image)
        t1 = time.perf_counter()
        probs, p_adv = self.detector.infer(inputs)
        t2 = time.perf_counter()
        prep_ms = (t1 - t0) * 1e3 / len(batch)
        infer_ms = (t2 - t1) * 1e3 / len(batch)
        for i, frame in enumerate(batch):
            a0 = time.perf_counter()
            self._decide(frame, probs[i], float(p_adv[i]))
            a1 = time.perf_counter()
            latency_ms = (a1 - frame.perf_at) * 1e3
            self.metrics.inference_ms.observe(infer_ms)
            self.metrics.frame_latency_ms.observe(latency_ms)
            self.notifier.frame_processed()
            if self.record:
                t = self.summary.timings_ms
                t["capture"].append(frame.capture_ms)
                t["preprocess"].append(prep_ms)
                t["inference"].append(infer_ms)
                t["alerting"].append((a1 - a0) * 1e3)
                t["end_to_end"].append(latency_ms)
        self.summary.frames += len(batch)
        self.metrics.frames.inc(len(batch))
        self.metrics.p_adv.set(float(p_adv[-1]))
        self._sync_source_counters()
        self._maybe_report()

    def _decide(self, frame: Frame, probs: np.ndarray, p_adv: float) -> None:
        over = p_adv > self.threshold
        transition = self.debouncer.update(over)
        if self.score is not None:
            self.score.frame(frame.index, over)
        if transition == "clear":
            log.info("alert on %s cleared at frame %d", self.camera, frame.index)
        if transition != "raise":
            return
        try:
            snapshot = self.snapshots.write(frame.image, self.camera, frame.index, frame.captured_at)
        except OSError as exc:  # a full disk must not stop the alert itself
            log.error("%s", exc)
            snapshot = None
        event = make_event(camera=self.camera, frame_index=frame.index, captured_at=frame.captured_at,
                           p_adv=p_adv, threshold=self.threshold, probs=probs,
                           class_names=self.info.class_names, model_sha256=self.info.sha256, snapshot=snapshot)
        log.warning("ALERT %s frame %d p_adv=%.3f (threshold %.3f) predicted %s", self.camera, frame.index,
                    p_adv, self.threshold, event["predicted_class"])
        self.sinks.emit(event)
        if self.score is not None:
            self.score.alert(frame.index)
        self.summary.alerts += 1
        self.metrics.alerts.inc()

    def _sync_source_counters(self) -> None:
        """Copy the source's reconnect/drop counts into the summary and the Prometheus counters."""
        reconnects, dropped = self.source.reconnects, self.source.dropped
        self.metrics.reconnects.inc(reconnects - self.summary.reconnects)
        self.metrics.dropped.inc(dropped - self.summary.dropped)
        self.summary.reconnects, self.summary.dropped = reconnects, dropped

    def _maybe_report(self) -> None:
        now = time.monotonic()
        elapsed = now - self._stats_at
        if elapsed < self.cfg.logging.stats_interval_s:
            return
        fps = (self.summary.frames - self._stats_frames) / elapsed
        self._stats_at, self._stats_frames = now, self.summary.frames
        self.metrics.fps.set(fps)
        line = (f"{self.camera}: {fps:.1f} fps, {self.summary.frames} frames, {self.summary.alerts} alerts, "
                f"{self.summary.reconnects} reconnects, {self.summary.dropped} dropped")
        log.info("%s", line)
        self.notifier.status(line)
