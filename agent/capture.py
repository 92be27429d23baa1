"""Video sources: cameras, network streams, video files and image sequences.

A reader thread per connection decodes frames while the caller runs inference. Live
sources keep only the newest frame (a slow consumer skips frames instead of lagging
further behind, and the skipped ones are counted); files and image sequences hand over
every frame in order through a bounded queue. A source that is lost or stalls is
reopened with exponential backoff; files resume at the frame after the last one read.
"""
from __future__ import annotations

import logging
import queue
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from agent.config import CaptureConfig
from agent.errors import SourceError

log = logging.getLogger(__name__)

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")


@dataclass(frozen=True)
class SourceSpec:
    """What to open: a camera index, a URL, a video file or an image-sequence pattern."""

    kind: str  # camera | url | file | sequence
    target: int | str
    live: bool

    @property
    def label(self) -> str:
        """A default camera name usable in topics and file names."""
        if self.kind == "camera":
            return f"camera{self.target}"
        if self.kind == "url":
            return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(self.target).split("://", 1)[1]).strip("_") or "stream"
        path = Path(str(self.target))
        name = path.parent.name if self.kind == "sequence" else path.stem
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or self.kind

    def __str__(self) -> str:
        return f"camera {self.target}" if self.kind == "camera" else str(self.target)


@dataclass
class Frame:
    """One decoded frame; `index` counts frames from the start of the source (gaps = skipped)."""

    index: int
    image: np.ndarray
    captured_at: float  # time.time() when decoded
    perf_at: float  # time.perf_counter() when decoded, for latency
    capture_ms: float  # time spent in the decoder


def parse_source(camera: int | None, uri: str | None, mode: str = "auto") -> SourceSpec:
    """Classify `--camera`/`--source` and check what can be checked without opening it."""
    if (camera is None) == (uri is None):
        raise SourceError("give exactly one of --camera INDEX or --source URI")
    if camera is not None:
        if camera < 0:
            raise SourceError(f"camera index must be >= 0, got {camera}")
        # V4L2 names devices /dev/videoN; a missing node is a clear "no such camera".
        if sys.platform.startswith("linux") and not Path(f"/dev/video{camera}").exists():
            raise SourceError(f"camera {camera} not found: /dev/video{camera} does not exist")
        spec = SourceSpec("camera", camera, live=True)
    else:
        scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
        if scheme in URL_SCHEMES:
            spec = SourceSpec("url", uri, live=True)
        elif scheme:
            raise SourceError(f"unsupported source scheme {scheme!r} in {uri}")
        elif "%" in uri:
            folder = Path(uri).parent
            if not folder.is_dir():
                raise SourceError(f"image sequence folder not found: {folder}")
            spec = SourceSpec("sequence", uri, live=False)
        else:
            if not Path(uri).is_file():
                raise SourceError(f"video file not found: {uri}")
            spec = SourceSpec("file", uri, live=False)
    if mode != "auto":
        spec = SourceSpec(spec.kind, spec.target, live=mode == "live")
    return spec


def open_capture(spec: SourceSpec, cfg: CaptureConfig) -> cv2.VideoCapture:
    """Open `spec` with OpenCV (may block; `Source` bounds it with the open timeout)."""
    if spec.kind == "camera":
        cap = cv2.VideoCapture(int(spec.target))
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, cfg.width), (cv2.CAP_PROP_FRAME_HEIGHT, cfg.height),
                            (cv2.CAP_PROP_FPS, cfg.fps)):
            if value is not None:
                cap.set(prop, value)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # driver-side queue adds lag on a live view
    elif spec.kind == "url":
        cap = cv2.VideoCapture(str(spec.target), cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(cfg.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(cfg.read_timeout_s * 1000)])
    elif spec.kind == "sequence":
        cap = cv2.VideoCapture(str(spec.target), cv2.CAP_IMAGES)
    else:
        cap = cv2.VideoCapture(str(spec.target))
    return cap


_END = object()  # the reader's capture returned no frame


class _Latest:
    """Single-slot mailbox: a new frame replaces an unread one (counted as dropped).

    The end marker does not replace an unread frame: the last frame before a loss is
    still worth inspecting.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._ended = False
        self.dropped = 0

    def put(self, item, stopped: threading.Event) -> None:
        with self._cond:
            if item is _END:
                self._ended = True
            else:
                if self._frame is not None:
                    self.dropped += 1
                self._frame = item
            self._cond.notify()

    def get(self, timeout: float):
        with self._cond:
            if not self._cond.wait_for(lambda: self._frame is not None or self._ended, timeout):
                raise queue.Empty
            if self._frame is not None:
                frame, self._frame = self._frame, None
                return frame
            return _END


class _Ordered:
    """Bounded FIFO: the reader waits for the consumer, so no frame of a file is skipped."""

    def __init__(self, size: int) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self.dropped = 0

    def put(self, item, stopped: threading.Event) -> None:
        while not stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self, timeout: float):
        return self._queue.get(timeout=timeout)


class _Reader:
    """Decodes from one opened capture on a thread until it fails, ends or is abandoned."""

    def __init__(self, cap: cv2.VideoCapture, mailbox, first_index: int) -> None:
        self.cap = cap
        self.mailbox = mailbox
        self.stopped = threading.Event()
        self._index = first_index
        self.thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stopped.is_set():
                start = time.perf_counter()
                ok, image = self.cap.read()
                end = time.perf_counter()
                if self.stopped.is_set():
                    break
                if not ok or image is None:
                    self.mailbox.put(_END, self.stopped)
                    break
                self.mailbox.put(Frame(self._index, image, time.time(), end, (end - start) * 1e3), self.stopped)
                self._index += 1
        finally:
            self.cap.release()

    def stop(self, wait: float = 0.0) -> None:
        """Abandon the connection, waiting up to `wait` seconds for the thread to finish.

        A read stuck in the driver releases the capture when it returns. Waiting matters at
        exit: a thread killed inside OpenCV's C++ code aborts the interpreter.
        """
        self.stopped.set()
        if wait:
            self.thread.join(wait)


def backoff(cfg: CaptureConfig) -> Iterator[float]:
    """Delays before successive reopen attempts: doubling from `reconnect_initial_s`, capped at `reconnect_max_s`.

    The cap bounds how long a camera that is back stays unnoticed: at most `reconnect_max_s`
    plus the time one open takes.
    """
    delay = cfg.reconnect_initial_s
    while True:
        yield delay
        delay = min(delay * 2, cfg.reconnect_max_s)


class Source:
    """Frames from one source, reconnecting on loss; iterate `frames()`, call `stop()` from any thread."""

    def __init__(self, spec: SourceSpec, cfg: CaptureConfig,
                 opener: Callable[[SourceSpec, CaptureConfig], cv2.VideoCapture] = open_capture,
                 stop: threading.Event | None = None) -> None:
        self.spec = spec
        self.cfg = cfg
        self._opener = opener
        # Shared with whoever may end the run (e.g. a SIGTERM handler), so setting it is all it takes.
        self._stop = stop or threading.Event()
        self._reader: _Reader | None = None
        self._next_index = 0
        self.frame_count = 0  # files: frames the container declares (0 = unknown)
        self.fps = 0.0
        self.reconnects = 0
        self.connected = False  # False from a loss or stall until the reopen succeeds
        self.reopened_at: float | None = None  # time.monotonic() of the last successful reopen
        self.ended_early = ""  # why a file stopped giving frames before its declared count, if it did
        self._dropped_closed = 0  # drops counted by readers already replaced
        # The capture thread replaces the reader while the watch loop reads `dropped`; unlocked,
        # the old reader's drops could be counted twice for a moment and the counter go back.
        self._counts = threading.Lock()

    @property
    def dropped(self) -> int:
        """Live frames replaced by a newer one before inference got to them."""
        with self._counts:
            current = self._reader.mailbox.dropped if self._reader else 0
            return self._dropped_closed + current

    def _open(self) -> cv2.VideoCapture | None:
        """Open within the open timeout; None when it failed or hung (the hung attempt is abandoned)."""
        box: dict = {}
        abandoned = threading.Event()

        def attempt() -> None:
            try:
                cap = self._opener(self.spec, self.cfg)
            except cv2.error as exc:  # some backends raise instead of returning a closed capture
                log.debug("opening %s raised %s", self.spec, exc)
                return
            if abandoned.is_set() or not cap.isOpened():
                cap.release()
                return
            box["cap"] = cap

        worker = threading.Thread(target=attempt, name="capture-open", daemon=True)
        worker.start()
        worker.join(self.cfg.open_timeout_s)
        if worker.is_alive():
            abandoned.set()
            log.warning("opening %s timed out after %.1fs", self.spec, self.cfg.open_timeout_s)
        return box.get("cap")

    def _start(self, cap: cv2.VideoCapture) -> None:
        if not self.spec.live and self._next_index:
            cap.set(cv2.CAP_PROP_POS_FRAMES, self._next_index)
        mailbox = _Latest() if self.spec.live else _Ordered(self.cfg.file_queue)
        with self._counts:
            if self._reader is not None:
                self._dropped_closed += self._reader.mailbox.dropped
            self._reader = _Reader(cap, mailbox, self._next_index)
        self.connected = True

    def open(self) -> None:
        """First open; raises `SourceError` (there is nothing to reconnect to yet)."""
        cap = self._open()
        if cap is None:
            raise SourceError(f"cannot open {self.spec}")
        self.frame_count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))) if not self.spec.live else 0
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._start(cap)

    def _reconnect(self, why: str) -> bool:
        """Reopen with backoff until it works or the source is stopped; False when stopped."""
        self._reader.stop()
        self.connected = False
        for delay in backoff(self.cfg):
            if self._stop.is_set():
                break
            self.reconnects += 1
            log.warning("%s %s; reconnecting in %.1fs (reconnect #%d)", self.spec, why, delay, self.reconnects)
            if self._stop.wait(delay):
                return False
            cap = self._open()
            if cap is not None:
                log.info("reopened %s at frame %d", self.spec, self._next_index)
                self._start(cap)
                self.reopened_at = time.monotonic()
                return True
        return False

    def _next_item(self):
        """The reader's next item, or None after the read timeout or on stop.

        Waits in short slices so that `stop()` (e.g. on SIGTERM) is honoured quickly even
        with a long read timeout.
        """
        deadline = time.monotonic() + self.cfg.read_timeout_s
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                return self._reader.mailbox.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
        return None

    def frames(self) -> Iterator[Frame]:
        """Yield frames until the file ends, `stop()` is called, or forever for a live source."""
        if self._reader is None:
            self.open()
        failures_here = 0  # consecutive failures of a file at the same frame
        try:
            while not self._stop.is_set():
                item = self._next_item()
                if item is None:
                    if self._stop.is_set():
                        return
                    why = f"stalled (no frame for {self.cfg.read_timeout_s:.1f}s)"
                else:
                    if isinstance(item, Frame):
                        self._next_index = item.index + 1
                        failures_here = 0
                        yield item
                        continue
                    if not self.spec.live and 0 < self.frame_count <= self._next_index:
                        return
                    why = "lost"
                if not self.spec.live:
                    failures_here += 1
                    if failures_here > self.cfg.file_retries:
                        log.warning("%s gives no frame %d after %d reopenings; treating it as ended",
                                    self.spec, self._next_index, self.cfg.file_retries)
                        if self._next_index < self.frame_count:
                            self.ended_early = (f"{self.spec} ended early: no frame after {self._next_index} of "
                                                f"the {self.frame_count} it declares (truncated or damaged file)")
                        return
                if not self._reconnect(why):
                    return
        finally:
            if self._reader is not None:
                self._reader.stop(wait=self.cfg.read_timeout_s)

    def stop(self) -> None:
        """Make `frames()` return soon (within the read timeout at most)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        """True once `stop()` was called (or the shared stop event set)."""
        return self._stop.is_set()

    def close(self) -> None:
        """Stop and wait for the reader thread: one still decoding at exit aborts the interpreter."""
        self._stop.set()
        if self._reader is not None:
            self._reader.stop(wait=self.cfg.read_timeout_s + self.cfg.open_timeout_s)


def probe(spec: SourceSpec, cfg: CaptureConfig) -> dict:
    """Open `spec`, read one frame and describe it (for `agent check`); raises `SourceError`."""
    source = Source(spec, cfg)
    source.open()
    frames = source.frames()
    try:
        frame = next(frames, None)
    finally:
        frames.close()
    if frame is None:
        raise SourceError(f"{spec} opened but gave no frame")
    height, width = frame.image.shape[:2]
    return {"width": width, "height": height, "fps": source.fps, "frame_count": source.frame_count}

