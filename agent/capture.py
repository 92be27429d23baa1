"""Video sources: cameras, network streams, video files and image sequences.

A reader thread per connection decodes frames into the camera's one `FrameBuffer` while the
caller runs inference. The buffer owns the drop policy: live sources keep only the newest
frame (a slow consumer skips frames instead of lagging further behind, and the skipped ones
are counted); files and image sequences hand over every frame in order through a bounded
queue. A source that is lost or stalls is reopened with exponential backoff; files resume at
the frame after the last one decoded.
"""
from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections import deque
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


class FrameBuffer:
    """The one place a camera's decoded frames wait for inference, with the camera's drop policy.

    Live: the newest frame only; a new frame replaces an unread one, counted in `dropped` (a
    slow consumer skips frames instead of lagging further behind). File: a bounded FIFO; the
    decoder waits for room, so nothing is skipped. The buffer outlives reconnects, so its
    counters are the camera's. `cond` may be shared by several buffers (the batcher waits on
    all cameras at once); every method but `put` expects it held.
    """

    def __init__(self, live: bool, capacity: int, cond: threading.Condition | None = None) -> None:
        self.live = live
        self.capacity = 1 if live else capacity
        self.cond = cond or threading.Condition()
        self._frames: deque[Frame] = deque()
        self.dropped = 0
        self.next_index = 0  # index after the last frame taken in: where a reopened file resumes

    def put(self, frame: Frame, stopped: threading.Event) -> bool:
        """Hand over a decoded frame; False when `stopped` was set first (the frame is not kept)."""
        with self.cond:
            if self.live and self._frames:
                self._frames.popleft()
                self.dropped += 1
            while len(self._frames) >= self.capacity and not stopped.is_set():
                self.cond.wait(0.2)  # file: wait for the consumer to make room
            if stopped.is_set():
                return False
            self._frames.append(frame)
            self.next_index = frame.index + 1
            self.cond.notify_all()
            return True

    @property
    def waiting(self) -> int:
        """Frames held for the consumer."""
        return len(self._frames)

    def take(self) -> Frame | None:
        """The oldest held frame (the only one, for live), or None; wakes a decoder waiting for room."""
        if not self._frames:
            return None
        self.cond.notify_all()
        return self._frames.popleft()


class _Reader:
    """Decodes from one opened capture on a thread into the camera's buffer until it fails, ends or is abandoned."""

    def __init__(self, cap: cv2.VideoCapture, buffer: FrameBuffer, first_index: int) -> None:
        self.cap = cap
        self.buffer = buffer
        self.stopped = threading.Event()
        self.finished = threading.Event()  # the thread is done: the capture gave no frame, or it was abandoned
        self._reading_since: float | None = None  # time.monotonic() when the pending cap.read() began
        self._index = first_index
        self.thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self.thread.start()

    def stalled(self, timeout_s: float) -> bool:
        """One read has been in the decoder for over `timeout_s` (time waiting for room in the buffer is not a stall)."""
        since = self._reading_since
        return since is not None and time.monotonic() - since > timeout_s

    def _run(self) -> None:
        try:
            while not self.stopped.is_set():
                self._reading_since = time.monotonic()
                start = time.perf_counter()
                ok, image = self.cap.read()
                end = time.perf_counter()
                self._reading_since = None
                if self.stopped.is_set():
                    break
                if not ok or image is None:
                    break
                frame = Frame(self._index, image, time.time(), end, (end - start) * 1e3)
                if not self.buffer.put(frame, self.stopped):
                    break
                self._index += 1
        finally:
            self.cap.release()
            with self.buffer.cond:
                self.finished.set()
                self.buffer.cond.notify_all()

    @property
    def ended(self) -> bool:
        """The thread is done (no frame, or abandoned)."""
        return self.finished.is_set()

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
    """Frames from one source into its `buffer`, reconnecting on loss; call `stop()` from any thread.

    Either iterate `frames()` (which takes the frames from the buffer), or run `run()` on a
    thread of its own while a consumer takes them from `buffer` (as the batcher does).
    """

    def __init__(self, spec: SourceSpec, cfg: CaptureConfig,
                 opener: Callable[[SourceSpec, CaptureConfig], cv2.VideoCapture] = open_capture,
                 stop: threading.Event | None = None, cond: threading.Condition | None = None) -> None:
        self.spec = spec
        self.cfg = cfg
        self._opener = opener
        # Shared with whoever may end the run (e.g. a SIGTERM handler), so setting it is all it takes.
        self._stop = stop or threading.Event()
        self.buffer = FrameBuffer(spec.live, cfg.file_queue, cond)
        self._reader: _Reader | None = None
        self.frame_count = 0  # files: frames the container declares (0 = unknown)
        self.fps = 0.0
        self.reconnects = 0
        self.connected = False  # False from a loss or stall until the reopen succeeds
        self.reopened_at: float | None = None  # time.monotonic() of the last successful reopen
        self.ended_early = ""  # why a file stopped giving frames before its declared count, if it did

    @property
    def dropped(self) -> int:
        """Live frames replaced by a newer one before inference got to them."""
        return self.buffer.dropped

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
        resume = self.buffer.next_index
        if not self.spec.live and resume:
            cap.set(cv2.CAP_PROP_POS_FRAMES, resume)
        self._reader = _Reader(cap, self.buffer, resume)
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
                log.info("reopened %s at frame %d", self.spec, self.buffer.next_index)
                self._start(cap)
                self.reopened_at = time.monotonic()
                return True
        return False

    def _trouble(self) -> str | None:
        """Why the current connection must be replaced ("lost", "stalled ..."), or None while it delivers."""
        if self._reader.ended:
            return "lost"
        if self._reader.stalled(self.cfg.read_timeout_s):
            return f"stalled (no frame for {self.cfg.read_timeout_s:.1f}s)"
        return None

    def _recover(self, why: str, failures: list[int]) -> bool:
        """Reopen after `why`; False when the source is over (a file at its end or given up on, or stopped).

        `failures` holds [frame index, consecutive failures there], kept by the caller across calls.
        """
        at = self.buffer.next_index
        if not self.spec.live:
            if 0 < self.frame_count <= at:
                return False
            failures[:] = [at, failures[1] + 1 if failures[0] == at else 1]
            if failures[1] > self.cfg.file_retries:
                log.warning("%s gives no frame %d after %d reopenings; treating it as ended",
                            self.spec, at, self.cfg.file_retries)
                if at < self.frame_count:
                    self.ended_early = (f"{self.spec} ended early: no frame after {at} of "
                                        f"the {self.frame_count} it declares (truncated or damaged file)")
                return False
        return self._reconnect(why)

    def run(self) -> None:
        """Keep frames coming into `buffer` until the file ends or `stop()`; reconnects on loss or stall.

        The consumer takes frames from `buffer` on its own thread; this one only watches the reader.
        """
        if self._reader is None:
            self.open()
        failures = [-1, 0]
        try:
            while not self._stop.is_set():
                # Polled in short slices: a stall and `stop()` (e.g. on SIGTERM) are seen within 0.1 s.
                self._reader.finished.wait(0.1)
                why = self._trouble()
                if why is not None and not self._recover(why, failures):
                    return
        finally:
            self._reader.stop(wait=self.cfg.read_timeout_s)

    def frames(self) -> Iterator[Frame]:
        """Yield frames until the file ends, `stop()` is called, or forever for a live source."""
        if self._reader is None:
            self.open()
        failures = [-1, 0]
        buffer = self.buffer
        try:
            while not self._stop.is_set():
                why = None
                with buffer.cond:
                    # Frames decoded before a loss are handed out before it is dealt with.
                    while not buffer.waiting and not self._stop.is_set():
                        why = self._trouble()
                        if why is not None:
                            break
                        buffer.cond.wait(0.1)
                    frame = buffer.take()
                if frame is not None:
                    yield frame
                elif why is None or not self._recover(why, failures):
                    return
        finally:
            if self._reader is not None:
                self._reader.stop(wait=self.cfg.read_timeout_s)

    def stop(self) -> None:
        """Make `frames()` and `run()` return soon (within the read timeout at most)."""
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

