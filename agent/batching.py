"""One inference batch from many cameras, as NVIDIA DeepStream's nvstreammux forms it.

Each camera's `Source` runs on its own capture thread (a `Feed`) and decodes into the camera's
one buffer, which keeps what inference has not taken yet: the newest frame only for a live
camera (older ones count as dropped), a bounded FIFO for a file (nothing is skipped). `Batcher.next_batch` waits for the first
frame, then at most `timeout_s` for every connected live camera to have one, and takes the
newest frame of each live camera plus up to `batch_size` file frames, round-robin. A camera
that stalls, reconnects, ends or fails only drops out of the batches; the others go on.
"""
from __future__ import annotations

import logging
import threading
import time

from agent.capture import Frame, Source

log = logging.getLogger(__name__)


class Feed:
    """One camera's capture thread, and the batcher's view of the camera's `FrameBuffer`.

    The buffer (`agent.capture.FrameBuffer`, shared condition) is the only place the camera's
    frames wait and are dropped; this thread runs `Source.run`, which keeps it filled.
    """

    def __init__(self, name: str, source: Source) -> None:
        self.name = name
        self.source = source
        self.buffer = source.buffer
        self.live = source.spec.live
        self.capacity = self.buffer.capacity
        self.done = False  # the source ended, was stopped or failed
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name=f"capture-{name}", daemon=True)

    def start(self) -> None:
        """Start reading (the source must be open)."""
        self.thread.start()

    def _run(self) -> None:
        try:
            self.source.run()
        except Exception as exc:  # a failing camera must never take the others down
            log.exception("camera %s failed", self.name)
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            with self.buffer.cond:
                self.done = True
                self.buffer.cond.notify_all()

    @property
    def waiting(self) -> int:
        """Frames held for the batcher (call with the condition held)."""
        return self.buffer.waiting

    @property
    def streaming(self) -> bool:
        """Connected and still running: the batcher waits for this camera's next frame."""
        return not self.done and self.source.connected

    def take(self) -> Frame | None:
        """The oldest held frame (the only one, for live), or None (call with the condition held)."""
        return self.buffer.take()

    @property
    def finished(self) -> bool:
        """Ended and emptied (call with the condition held)."""
        return self.done and not self.buffer.waiting


class Batcher:
    """Forms batches of (feed, frame) across feeds; see the module docstring."""

    def __init__(self, feeds: list[Feed], cond: threading.Condition, batch_size: int, timeout_s: float,
                 stop: threading.Event) -> None:
        self.feeds = feeds
        self._cond = cond  # the one every feed's buffer was made with
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self._stop = stop
        self._live = [f for f in feeds if f.live]
        self._files = [f for f in feeds if not f.live]

    def _complete(self) -> bool:
        """Every connected live camera has a frame, and the files have a full batch or all they will give."""
        if not all(f.waiting for f in self._live if f.streaming):
            return False
        ready = sum(f.waiting for f in self._files)
        return ready >= self.batch_size or all(f.done or f.waiting >= f.capacity for f in self._files)

    def next_batch(self, idle_s: float = 0.5) -> list[tuple[Feed, Frame]] | None:
        """The next batch; [] when no camera gave a frame for `idle_s`; None once every feed
        has finished or `stop` is set."""
        idle_until = time.monotonic() + idle_s
        with self._cond:
            while not any(f.waiting for f in self.feeds):
                if self._stop.is_set() or all(f.done for f in self.feeds):
                    return None
                if time.monotonic() >= idle_until:
                    return []
                self._cond.wait(0.1)  # sliced so that stop is seen without a notify
            deadline = time.monotonic() + self.timeout_s
            while not self._complete() and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = [(f, f.take()) for f in self._live if f.waiting]
            taken = 0
            while taken < self.batch_size:
                progress = False
                for f in self._files:
                    if taken < self.batch_size and f.waiting:
                        batch.append((f, f.take()))
                        taken += 1
                        progress = True
                if not progress:
                    break
        return batch
