"""Destinations for alert events: stdout, a JSON-lines file and MQTT."""
from __future__ import annotations

import logging
from typing import Protocol

from agent.metrics import Metrics

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Receives alert events; `close` flushes whatever is pending."""

    def emit(self, event: dict) -> None: ...

    def close(self) -> None: ...


class FanOut:
    """Sends each event to every sink; one failing sink does not silence the others."""

    def __init__(self, sinks: list[Sink], metrics: Metrics | None = None) -> None:
        self.sinks = sinks
        self.metrics = metrics or Metrics()

    def emit(self, event: dict) -> None:
        """Deliver `event` to all sinks, logging (not raising) individual failures."""
        for sink in self.sinks:
            try:
                sink.emit(event)
            except OSError as exc:  # a full or read-only disk: one line, the other sinks still have it
                self.metrics.sink_errors.labels(type(sink).__name__).inc()
                log.error("sink %s failed on alert %s: %s", type(sink).__name__, event.get("id"), exc)
            except Exception:
                self.metrics.sink_errors.labels(type(sink).__name__).inc()
                log.exception("sink %s failed on alert %s", type(sink).__name__, event.get("id"))

    def close(self) -> None:
        """Close every sink, in order."""
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                log.exception("closing sink %s failed", type(sink).__name__)
