"""Destinations for alert events: stdout, a JSON-lines file and MQTT."""
from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Receives alert events; `close` flushes whatever is pending."""

    def emit(self, event: dict) -> None: ...

    def close(self) -> None: ...


class FanOut:
    """Sends each event to every sink; one failing sink does not silence the others."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks

    def emit(self, event: dict) -> None:
        """Deliver `event` to all sinks, logging (not raising) individual failures."""
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception:
                log.exception("sink %s failed on alert %s", type(sink).__name__, event.get("id"))

    def close(self) -> None:
        """Close every sink, in order."""
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                log.exception("closing sink %s failed", type(sink).__name__)
