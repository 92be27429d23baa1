"""The watch loop: every camera's frames -> frame health -> one detector -> per-camera debouncer -> observers.

One process watches all cameras of a vehicle with one ONNX Runtime session: each camera has
its own capture thread, and `agent.batching` forms each inference batch from the newest
frame of every camera. Per camera the loop keeps a debouncer, frame health, counters and
metric labels; a camera that is lost, degraded or ended leaves the others running. What is
done with each decision (sinks, evidence, recordings, scoring, timings) is an observer's job
(`agent.observers`).
"""
from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.alerts import SnapshotWriter, make_event, utc_iso
from agent.batching import Batcher, Feed
from agent.cameras import Camera
from agent.capture import Frame, Source
from agent.config import AgentConfig
from agent.debounce import Debouncer
from agent.errors import AgentError, SourceError
from agent.frame_health import FrameHealth, Hysteresis
from agent.metrics import Metrics
from agent.model import Detector, verify_model
from agent.observers import Context, Observer, Observers, Scored
from agent.sinks import build_observers
from agent.systemd import Notifier, writable_model_files
from agent.timings import LatencyHistogram, StageTimings
from common.robustness import describe as describe_robustness

log = logging.getLogger(__name__)


@dataclass
class CameraStats:
    """What one camera did during a run."""

    frames: int = 0  # taken from the camera, scored or not
    unhealthy: int = 0  # not scored: frozen, black, saturated, undecodable
    scored: int = 0  # run through the model
    unfamiliar: int = 0  # of those, unlike the training data: not judged for alerts
    alerts: int = 0
    reconnects: int = 0
    dropped: int = 0


@dataclass
class Summary:
    """What a run did per camera, and in total (summed over the cameras, e.g. `summary.frames`);
    `timings_ms` (per stage, every frame) only when recording."""

    seconds: float = 0.0
    provider: str = ""
    ended_early: list[str] = field(default_factory=list)  # files that ended before their last frame, and why
    cameras: dict[str, CameraStats] = field(default_factory=dict)
    timings_ms: dict[str, LatencyHistogram] = field(default_factory=dict)

    def _total(self, name: str) -> int:
        return sum(getattr(c, name) for c in self.cameras.values())

    frames = property(lambda self: self._total("frames"), doc="Frames taken from all cameras.")
    unhealthy = property(lambda self: self._total("unhealthy"), doc="Frames not scored: no scene.")
    scored = property(lambda self: self._total("scored"), doc="Frames run through the model.")
    unfamiliar = property(lambda self: self._total("unfamiliar"), doc="Scored frames not judged: unfamiliar.")
    alerts = property(lambda self: self._total("alerts"), doc="Alerts raised.")
    reconnects = property(lambda self: self._total("reconnects"), doc="Sources reopened.")
    dropped = property(lambda self: self._total("dropped"), doc="Live frames skipped for a newer one.")

    @property
    def fps(self) -> float:
        """Frames per second over the run, all cameras together."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def agent_name(cfg: AgentConfig, cameras: list[Camera]) -> str:
    """This agent's name for MQTT: `name`, else the only camera's, else the host's."""
    return cfg.name or (cameras[0].name if len(cameras) == 1 else socket.gethostname().split(".")[0])


def health_event(kind: str, camera: str, reason: str, at: float) -> dict:
    """A `camera_degraded` / `camera_recovered` event for the sinks."""
    return {"event": kind, "id": uuid.uuid4().hex, "time": utc_iso(at), "camera": camera, "reason": reason}


class CameraState:
    """One watched camera: its capture feed, debouncer, frame health and counters."""

    def __init__(self, camera: Camera, source: Source, feed: Feed, cfg: AgentConfig) -> None:
        self.name = camera.name
        self.spec = camera.spec
        self.source = source
        self.feed = feed
        a = cfg.alerts
        self.debouncer = Debouncer(a.k, a.n, a.clear_after, a.cooldown_frames)
        self.health = FrameHealth(cfg.health)
        self.scene = Hysteresis(cfg.health.degrade_after, cfg.health.recover_after)  # unfamiliar scene or not
        self.stats = CameraStats()
        self.lost = False  # disconnected and reconnecting, or ended with an error


def _open(camera: Camera, cfg: AgentConfig, stop: threading.Event, cond: threading.Condition) -> Source:
    source = Source(camera.spec, cfg.capture, stop=stop, cond=cond)
    try:
        source.open()
    except SourceError as exc:
        raise SourceError(f"camera {camera.name}: {exc}") from None
    return source


class Watch:
    """All cameras watched with one model; construct (verifies, opens, warms up), then `run()`.

    Setting `stop` (from a signal handler or another thread) ends `run()` cleanly.
    """

    def __init__(self, cfg: AgentConfig, model: str | Path, cameras: list[Camera], *,
                 stop: threading.Event | None = None, notifier: Notifier | None = None,
                 record: bool = False, score: Observer | None = None) -> None:
        self.cfg = cfg
        self.stop = stop or threading.Event()
        self.notifier = notifier or Notifier()
        # Observers of this run only, added after the configured ones: a labelled-stream score, timings.
        self._extra = [o for o in (score, StageTimings() if record else None) if o is not None]
        self._resources = ExitStack()
        try:
            self._setup(model, cameras)
        except OSError as exc:  # unwritable output paths, metrics port in use or bad address, full disk
            self._resources.close()
            raise AgentError(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")) from None
        except BaseException:
            self._resources.close()
            raise

    def _setup(self, model: str | Path, cameras: list[Camera]) -> None:
        cfg = self.cfg
        self.info = verify_model(model, cfg.model.sha256, cfg.model.public_key)
        if self.notifier.enabled and (writable := writable_model_files(self.info.path)):
            log.warning("the service can write %s: it could replace its own model; install the model "
                        "read-only as the unit file shows", ", ".join(map(str, writable)))
        self.detector = Detector(self.info, cfg.inference)
        self.threshold = cfg.alerts.threshold if cfg.alerts.threshold is not None else self.info.threshold
        self.familiarity_threshold = self.info.familiarity_threshold
        # One condition for every camera's buffer: the batcher waits for frames of all of them at once.
        self._cond = threading.Condition()
        # Opened side by side: a vehicle's cameras start together, and a slow one must not add up.
        with ThreadPoolExecutor(len(cameras)) as pool:
            opened = [pool.submit(_open, camera, cfg, self.stop, self._cond) for camera in cameras]
        for future in opened:  # every camera is closed on the way out, even when one failed to open
            if future.exception() is None:
                self._resources.callback(future.result().close)
        sources = [future.result() for future in opened]  # raises the first camera's error, in config order
        self.cameras = [CameraState(c, s, Feed(c.name, s), cfg) for c, s in zip(cameras, sources)]
        self._by_feed = {c.feed: c for c in self.cameras}
        self._resources.callback(self._join_feeds)
        self.batcher = Batcher([c.feed for c in self.cameras], self._cond, cfg.inference.batch_size,
                               cfg.inference.batch_timeout_ms / 1e3, self.stop)
        most = sum(c.spec.live for c in self.cameras) + (cfg.inference.batch_size
                                                          if any(not c.spec.live for c in self.cameras) else 0)

        self.metrics = Metrics()
        self.metrics.provider.labels(self.detector.provider).set(1)
        for c in self.cameras:
            self.metrics.info.labels(c.name, self.info.sha256).set(1)
            self.metrics.degraded.labels(c.name).set(0)
            # Every per-camera series exists from the start, at 0: a scrape never misses one that has not moved yet.
            self.metrics.frames.labels(c.name)
            self.metrics.alerts.labels(c.name)
            self.metrics.frame_latency_ms.labels(c.name)
        self.observers = Observers([], self.metrics)
        self._resources.callback(self.observers.close)
        context = Context(cfg, agent_name(cfg, cameras), self.metrics, self.info, self.threshold,
                          tuple(c.name for c in self.cameras), self.observers.post)
        for observer in build_observers(context) + self._extra:
            self.observers.add(observer)  # one by one: those built before a failing one are still closed
        self.snapshots = SnapshotWriter(cfg.alerts, self.metrics)
        self.metrics.serve(cfg.metrics.address, cfg.metrics.port)
        self._resources.callback(self.metrics.close)
        # Registered last so it runs first on shutdown: STOPPING=1 before the spool flush.
        self._resources.callback(self.notifier.stopping)

        # Logged only once every input is known good, so a bad one ends with a single error line.
        log.info("model %s sha256 %s, input %dx%dx%d, provider %s, threshold %.4f (%s)", self.info.path,
                 self.info.sha256[:12], self.info.width, self.info.height, self.info.channels,
                 self.detector.provider, self.threshold,
                 "config" if cfg.alerts.threshold is not None else "model metadata")
        log.info("robustness: %s", describe_robustness(self.info.metadata))
        for c in self.cameras:
            log.info("camera %s: %s opened (%s)", c.name, c.spec,
                     "live: newest frame only" if c.spec.live else "every frame in order")
        self._inputs = np.empty((most, self.info.height, self.info.width, self.info.channels), np.uint8)
        start = time.perf_counter()
        # Every batch size the loop can form is warmed, so no shape's first run lands on a live frame.
        self.detector.warmup(cfg.inference.warmup_runs, tuple(range(1, most + 1)))
        log.info("warm-up done in %.0f ms", (time.perf_counter() - start) * 1e3)

    def _join_feeds(self) -> None:
        for c in self.cameras:
            c.source.stop()
        for c in self.cameras:
            if c.feed.thread.is_alive():
                c.feed.thread.join(self.cfg.capture.read_timeout_s + 1)

    def run(self, max_frames: int | None = None) -> Summary:
        """Process frames until every camera has ended, `max_frames` are done or `stop` is set."""
        summary = self.summary = Summary(provider=self.detector.provider,
                                         cameras={c.name: c.stats for c in self.cameras})
        for observer in self._extra:
            if isinstance(observer, StageTimings):
                summary.timings_ms = observer.histograms
        self.metrics.ready.set(1)
        names = ", ".join(c.name for c in self.cameras)
        self.notifier.ready(f"watching {names} with {self.detector.provider}")
        log.info("ready: watching %s", names)
        start = self._stats_at = time.monotonic()
        self._stats_frames = {c.name: 0 for c in self.cameras}
        try:
            for c in self.cameras:
                c.feed.start()
            while not self.stop.is_set():
                batch = self.batcher.next_batch()
                if batch is None:
                    break
                if max_frames is not None:
                    batch = batch[:max_frames - summary.frames]
                if batch:
                    self._process(batch)
                self.observers.drain()
                self._sync_cameras()
                self._maybe_report()
                if max_frames is not None and summary.frames >= max_frames:
                    break
        finally:
            try:
                summary.seconds = time.monotonic() - start
                self._sync_cameras()
                summary.ended_early = [c.source.ended_early for c in self.cameras if c.source.ended_early]
                for why in summary.ended_early:
                    log.error("%s", why)
                self.metrics.ready.set(0)
                log.info("stopping after %d frames (%.1f fps), %d alert(s), %d reconnect(s), %d dropped, "
                         "%d not scored", summary.frames, summary.fps, summary.alerts, summary.reconnects,
                         summary.dropped, summary.unhealthy)
            finally:  # even after a failure above: spooled alerts flushed, capture threads joined
                self._resources.close()
        return summary

    def _process(self, batch: list[tuple[Feed, Frame]]) -> None:
        by_feed = self._by_feed
        t0 = time.perf_counter()
        scored: list[tuple[CameraState, Frame]] = []
        for feed, frame in batch:
            camera = by_feed[feed]
            camera.stats.frames += 1
            verdict = camera.health.judge(frame.image)
            self._health_transition(camera, camera.health.state.update(verdict), frame.captured_at)
            if verdict is None:
                scored.append((camera, frame))
            else:
                camera.stats.unhealthy += 1
                self.metrics.unhealthy.labels(camera.name, verdict).inc()
        # Pinged for every batch taken, scored or not: a covered lens is a degraded camera, not a hung agent.
        self.notifier.frame_processed()
        if not scored:
            return
        inputs = self._inputs[:len(scored)]
        for i, (_, frame) in enumerate(scored):
            inputs[i] = self.detector.prepare(frame.image)
        t1 = time.perf_counter()
        probs, p_adv, unfamiliarity = self.detector.infer(inputs)
        t2 = time.perf_counter()
        prep_ms = (t1 - t0) * 1e3 / len(scored)
        infer_ms = (t2 - t1) * 1e3 / len(scored)
        self.metrics.batch_size.observe(len(scored))
        for i, (camera, frame) in enumerate(scored):
            a0 = time.perf_counter()
            p = float(p_adv[i])
            unfamiliar = unfamiliarity is not None and unfamiliarity[i] > self.familiarity_threshold
            self._familiarity(camera, frame, unfamiliar, p)
            # p_adv means nothing on a scene unlike the training data: such frames are not judged.
            over = not unfamiliar and self._decide(camera, frame, probs[i], p)
            a1 = time.perf_counter()
            latency_ms = (a1 - frame.perf_at) * 1e3
            self.metrics.inference_ms.observe(infer_ms)
            self.metrics.frame_latency_ms.labels(camera.name).observe(latency_ms)
            self.metrics.frames.labels(camera.name).inc()
            self.metrics.p_adv.labels(camera.name).set(p)
            self.observers.frame(Scored(camera.name, frame, probs[i], p, int(np.argmax(probs[i])), not unfamiliar,
                                        over, prep_ms, infer_ms, (a1 - a0) * 1e3, latency_ms))

    def _familiarity(self, camera: CameraState, frame: Frame, unfamiliar: bool, p_adv: float) -> None:
        """Count an unfamiliar frame; report the camera's scene turning unfamiliar (and familiar again)."""
        s = camera.stats
        s.scored += 1
        s.unfamiliar += unfamiliar
        self.metrics.unfamiliar_share.labels(camera.name).set(s.unfamiliar / s.scored)
        change = camera.scene.update("unfamiliar" if unfamiliar else None)
        if change is None:
            return
        kind = "scene_unfamiliar" if change == "on" else "scene_familiar"
        log.warning("%s: %s at frame %d (p_adv %.3f is not judged on it)", camera.name, kind, frame.index, p_adv)
        event = health_event(kind, camera.name, "familiarity score above the model's threshold" if change == "on"
                             else "familiar again", frame.captured_at)
        self.observers.emit({**event, "frame_index": frame.index})

    def _health_transition(self, camera: CameraState, change: str | None, at: float, reason: str = "") -> None:
        """Publish a camera's move to or from the degraded state (event, metric, log)."""
        if change is None:
            return
        reason = reason or camera.health.state.reason or "recovered"
        degraded = change == "on"
        self.metrics.degraded.labels(camera.name).set(1 if degraded else 0)
        if degraded:
            log.warning("camera %s degraded: %s", camera.name, reason)
        else:
            log.info("camera %s recovered", camera.name)
        self.observers.emit(health_event("camera_degraded" if degraded else "camera_recovered", camera.name,
                                         reason, at))

    def _decide(self, camera: CameraState, frame: Frame, probs: np.ndarray, p_adv: float) -> bool:
        """Judge one frame: debounce, and raise an alert when due; whether p_adv is over the threshold."""
        over = p_adv > self.threshold
        transition = camera.debouncer.update(over)
        if transition == "clear":
            log.info("alert on %s cleared at frame %d", camera.name, frame.index)
        if transition != "raise":
            return over
        try:
            snapshot = self.snapshots.write(frame.image, camera.name, frame.index, frame.captured_at)
        except OSError as exc:  # a full disk must not stop the alert itself
            log.error("%s", exc)
            snapshot = None
        event = make_event(camera=camera.name, frame_index=frame.index, captured_at=frame.captured_at,
                           p_adv=p_adv, threshold=self.threshold, probs=probs,
                           class_names=self.info.class_names, model_sha256=self.info.sha256, snapshot=snapshot)
        log.warning("ALERT %s frame %d p_adv=%.3f (threshold %.3f) predicted %s", camera.name, frame.index,
                    p_adv, self.threshold, event["predicted_class"])
        # Counted first: whoever sees the alert (stdout, MQTT) and then scrapes /metrics finds it counted.
        camera.stats.alerts += 1
        self.metrics.alerts.labels(camera.name).inc()
        self.observers.emit(event)
        return over

    def _sync_cameras(self) -> None:
        """Copy reconnect/drop counts into the stats and metrics; report cameras lost or back."""
        for c in self.cameras:
            s = c.stats
            reconnects, dropped = c.source.reconnects, c.source.dropped
            self.metrics.reconnects.labels(c.name).inc(reconnects - s.reconnects)
            self.metrics.dropped.labels(c.name).inc(dropped - s.dropped)
            s.reconnects, s.dropped = reconnects, dropped
            lost = (not c.source.connected and not c.feed.done) or c.feed.error is not None
            if lost != c.lost and c.health.state.reason is None:
                c.lost = lost
                self._health_transition(c, "on" if lost else "off", time.time(),
                                        reason=(c.feed.error or "lost") if lost else "")

    def _maybe_report(self) -> None:
        now = time.monotonic()
        elapsed = now - self._stats_at
        if elapsed < self.cfg.logging.stats_interval_s:
            return
        self._stats_at = now
        parts = []
        for c in self.cameras:
            fps = (c.stats.frames - self._stats_frames[c.name]) / elapsed
            self._stats_frames[c.name] = c.stats.frames
            self.metrics.fps.labels(c.name).set(fps)
            state = "lost" if c.lost else (f"degraded ({c.health.state.reason})" if c.health.state.reason else "ok")
            state += ", scene unfamiliar" if c.scene.reason else ""
            parts.append(f"{c.name} {fps:.1f} fps {state}")
        s = self.summary
        line = (f"{s.frames} frames, {s.alerts} alerts, {s.reconnects} reconnects, {s.dropped} dropped, "
                f"{s.unhealthy} not scored; " + ", ".join(parts))
        log.info("%s", line)
        self.notifier.status(line)
