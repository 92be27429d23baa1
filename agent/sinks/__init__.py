"""Observers of the watch loop (`agent.observers`): alert sinks (stdout, JSON lines, MQTT) and the rest.

Every module here that defines `build(ctx) -> Observer | None` is built by `build_observers`;
a new one needs no other registration.
"""
from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod

from agent.observers import Context, Observer


class Sink(Observer, ABC):
    """An observer of events only: `emit` sends one, `close` flushes whatever is pending."""

    @abstractmethod
    def emit(self, event: dict) -> None:
        """Deliver `event`; raises OSError when it cannot."""

    def on_event(self, event: dict) -> None:
        """Every event is emitted."""
        self.emit(event)


def build_observers(ctx: Context) -> list[Observer]:
    """Every observer the config turns on: one per module of this package that defines `build`, by module name."""
    built = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        build = getattr(module, "build", None)
        if build is not None and (observer := build(ctx)) is not None:
            built.append(observer)
    return built
