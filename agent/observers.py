"""What follows a decision: every scored frame and every event goes to the run's observers.

The watch loop (`agent.watch`) only scores frames and decides (health, familiarity, debounced
alerts). Everything done with the outcome is an observer: the alert sinks (stdout, JSON lines,
MQTT), alert evidence, MCAP recording, the labelled-stream score (`agent.scoring`) and the
stage timings of a benchmark run (`agent.timings`).

The protocol (override what you need; the defaults do nothing):

- `on_frame(scored)`: every scored frame (`Scored`: camera, the decoded frame, probs, p_adv,
  predicted class, whether it was judged and over the threshold, stage timings), on the watch
  loop's thread, after its decision, in each camera's frame order. Frames that were not scored
  (unhealthy, dropped by a live camera's newest-frame policy) do not come here. It runs inside
  the frame path: anything slower than a copy (disk, network, encoding) goes to a thread of the
  observer's own through a bounded queue, and what that queue cannot take is dropped and counted.
- `annotate(event)`: every event, before any observer's `on_event` sees it; an observer may add
  fields (evidence adds `evidence` to an alert, telling where its frames will be).
- `on_event(event)`: every event, a JSON-serialisable dict with `event` (alert, evidence,
  camera_degraded, camera_recovered, scene_unfamiliar, scene_familiar), `id`, `time`, `camera`.
  An alert comes before the `on_frame` of the frame that raised it.
- `close()`: once, after the last frame and event; flush and release. Observers are closed in
  order (by module name), and events posted while one closes still reach those not yet closed.

An observer's own thread must not call other observers: it hands an event to `ctx.post`, and
the watch loop emits it (annotate, on_event) on its thread after the current batch.

One new sink or observer is one new module in `agent/sinks/` that defines
`build(ctx: Context) -> Observer | None` (None: its config says off) plus its config field
(`sinks.NAME` in `agent/config.py`); `agent.sinks.build_observers` finds every module there
with a `build`. The sinks depend on this module, never the other way round.
An observer that raises is logged and counted in `agent_sink_errors{sink=CLASS}`; scoring and
the other observers go on.
"""
from __future__ import annotations

import logging
import queue
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from agent.capture import Frame
from agent.config import AgentConfig
from agent.metrics import Metrics

if TYPE_CHECKING:
    from agent.model import ModelInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scored:
    """One scored frame of one camera and what the watch loop decided on it."""

    camera: str
    frame: Frame  # frame.image is the decoded frame, full resolution, as the camera gave it
    probs: np.ndarray  # [K] class probabilities
    p_adv: float
    predicted: int  # argmax of probs
    judged: bool  # False: the scene is unlike the training data (unfamiliar), so p_adv was not judged
    over: bool  # judged and p_adv over the threshold
    prep_ms: float  # per-frame share of the batch's preprocessing and inference
    infer_ms: float
    alerting_ms: float  # the decision: debouncer, and the alert's events when one was raised
    latency_ms: float  # decode to decision


@dataclass(frozen=True)
class Context:
    """What an observer may need to build itself."""

    cfg: AgentConfig
    agent: str  # this agent's name (MQTT client id, status topic)
    metrics: Metrics
    model: "ModelInfo"
    threshold: float
    cameras: tuple[str, ...]
    post: Callable[[dict], None]  # thread-safe: emit this event from the watch loop's thread


class Observer:
    """Receives scored frames and events; see the module docstring for the contract."""

    def on_frame(self, scored: Scored) -> None:
        """One scored frame (fast: no I/O on this thread)."""

    def annotate(self, event: dict) -> None:
        """Add fields to `event` before any observer's `on_event` sees it."""

    def on_event(self, event: dict) -> None:
        """One event."""

    def close(self) -> None:
        """Flush and release; called once, last."""


class Observers:
    """Hands frames and events to every observer; one failing observer does not silence the others."""

    def __init__(self, observers: list[Observer], metrics: Metrics | None = None) -> None:
        self.observers = list(observers)
        self.metrics = metrics or Metrics()
        self._failing: set[int] = set()  # observers whose on_frame failed (logged once each)
        self._posted: queue.SimpleQueue[dict] = queue.SimpleQueue()

    def add(self, observer: Observer) -> None:
        """Observe from now on."""
        self.observers.append(observer)

    def _failed(self, observer: Observer, what: str, exc: BaseException, quiet: bool = False) -> None:
        name = type(observer).__name__
        self.metrics.sink_errors.labels(name).inc()
        if isinstance(exc, OSError):  # a full or read-only disk: one line, the others still have it
            log.error("%s failed on %s: %s", name, what, exc)
        elif not quiet:
            log.error("%s failed on %s", name, what, exc_info=exc)

    def frame(self, scored: Scored) -> None:
        """`on_frame` of every observer."""
        for observer in self.observers:
            try:
                observer.on_frame(scored)
            except Exception as exc:
                # Once per observer: a broken one would otherwise log on every frame.
                self._failed(observer, f"frame {scored.frame.index} of {scored.camera}", exc,
                             quiet=id(observer) in self._failing)
                self._failing.add(id(observer))

    def emit(self, event: dict, to: list[Observer] | None = None) -> None:
        """`annotate`, then `on_event`, of every observer (or of those in `to`)."""
        for stage in ("annotate", "on_event"):
            for observer in self.observers if to is None else to:
                try:
                    getattr(observer, stage)(event)
                except Exception as exc:
                    self._failed(observer, f"{event.get('event')} {event.get('id')}", exc)

    def post(self, event: dict) -> None:
        """Queue `event` for `drain` (from any thread)."""
        self._posted.put(event)

    def drain(self, to: list[Observer] | None = None) -> None:
        """Emit the events posted so far (on the watch loop's thread)."""
        while not self._posted.empty():
            self.emit(self._posted.get(), to)

    def close(self) -> None:
        """Close every observer, in order; what one posts while closing goes to the rest."""
        self.drain()
        for i, observer in enumerate(self.observers):
            try:
                observer.close()
            except Exception:
                log.exception("closing %s failed", type(observer).__name__)
            self.drain(self.observers[i + 1:])
