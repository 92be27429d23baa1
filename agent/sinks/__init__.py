"""Observers of the watch loop (`agent.observers`): alert sinks (stdout, JSON lines, MQTT) and the rest.

Every module here that defines `build(ctx) -> Observer | None` is built by
`agent.observers.build_observers`; a new one needs no other registration.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from agent.observers import Observer


class Sink(Observer, ABC):
    """An observer of events only: `emit` sends one, `close` flushes whatever is pending."""

    @abstractmethod
    def emit(self, event: dict) -> None:
        """Deliver `event`; raises OSError when it cannot."""

    def on_event(self, event: dict) -> None:
        """Every event is emitted."""
        self.emit(event)
