"""MCAP recording of what the agent saw and decided, for Foxglove and the ROS 2 tools.

Per camera NAME the file holds four topics, JSON-encoded with JSON schemas:

- `/NAME/image`: the scored frames (every `every_n`th, downscaled by `scale`) as Foxglove's
  `foxglove.RawImage` (`bgr8`), which Foxglove's Image panel shows as it is;
- `/NAME/score`: every scored frame's `p_adv`, predicted class and familiarity (Plot panel: `.p_adv`);
- `/NAME/alerts`: the alert events the other sinks get;
- `/NAME/events`: the camera's other events (camera_degraded/recovered, scene_unfamiliar/familiar, ...).

Log and publish times are the frame's capture time (events: their `time`), in ns since the epoch.

An observer of the watch loop (`agent.observers`): `on_frame` and `emit` only queue; a writer
thread downscales, serialises and writes, so a slow disk costs recorded messages (counted in
`agent_mcap_errors{reason="full"}`), never scoring. The queue is bounded in bytes and messages.

A killed agent leaves a file readable up to its last complete chunk: this module ends each chunk
(at CHUNK_BYTES or after CHUNK_S) and writes it out at once, so SIGKILL, which keeps the page
cache, loses at most the chunk in progress (a torn record at the end, where readers stop) and the
queue. A chunk is not fsynced (that costs a disk flush per chunk); a file is when it is closed.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
from collections import deque
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from mcap.writer import CompressionType, Writer

from agent.alerts import MB, check_writable
from agent.config import McapConfig
from agent.errors import AgentError
from agent.metrics import Metrics
from agent.observers import Context, Scored
from agent.sinks import Sink

log = logging.getLogger(__name__)

# Small enough that a kill loses little and Foxglove seeks finely, large enough that LZ4 has
# context and per-chunk indexes stay a small share of the file.
CHUNK_BYTES = 1 * MB
# A quiet camera (only scores, a few events) still closes a chunk this often.
CHUNK_S = 1.0
# Frames waiting for the writer thread: they hold decoded images, so they are bounded in bytes.
QUEUE_BYTES = 64 * MB
QUEUE_ITEMS = 10_000
# After a failed write or open, the next file is tried this much later: a full disk gets a few
# empty files, not one per message.
RETRY_S = 10.0

_TIME = {"type": "object", "title": "time",
         "properties": {"sec": {"type": "integer", "minimum": 0},
                        "nsec": {"type": "integer", "minimum": 0, "maximum": 999999999}}}
# Foxglove's own schema (github.com/foxglove/foxglove-sdk, schemas/jsonschema/RawImage.json),
# descriptions left out: the panel picks it by name, tools that read the schema get its fields.
RAW_IMAGE = {
    "title": "foxglove.RawImage", "description": "A raw image", "type": "object",
    "properties": {
        "timestamp": _TIME, "frame_id": {"type": "string"},
        "width": {"type": "integer", "minimum": 0}, "height": {"type": "integer", "minimum": 0},
        "encoding": {"type": "string"}, "step": {"type": "integer", "minimum": 0},
        "data": {"type": "string", "contentEncoding": "base64"},
    },
}
FRAME_SCORE = {
    "title": "adversary_detector.FrameScore", "description": "The detector's output for one scored frame",
    "type": "object",
    "properties": {
        "timestamp": _TIME, "camera": {"type": "string"}, "frame_index": {"type": "integer", "minimum": 0},
        "p_adv": {"type": "number", "description": "probability that the frame was adversarially perturbed"},
        "threshold": {"type": "number"},
        "over_threshold": {"type": "boolean", "description": "judged, and p_adv over the threshold"},
        "unfamiliar": {"type": "boolean", "description": "unlike the training data: not judged for alerts"},
        "predicted_index": {"type": "integer", "minimum": 0}, "predicted_class": {"type": "string"},
        "class_probability": {"type": "number"},
    },
    "required": ["timestamp", "camera", "frame_index", "p_adv", "predicted_index"],
}
ALERT = {
    "title": "adversary_detector.Alert", "description": "An alert event, as the JSON-lines and MQTT sinks get it",
    "type": "object",
    "properties": {
        "event": {"type": "string", "const": "alert"}, "id": {"type": "string"},
        "time": {"type": "string", "format": "date-time"}, "camera": {"type": "string"},
        "frame_index": {"type": "integer"}, "p_adv": {"type": "number"}, "threshold": {"type": "number"},
        "predicted_class": {"type": "string"}, "predicted_index": {"type": "integer"},
        "class_probability": {"type": "number"}, "model_sha256": {"type": "string"},
        "snapshot": {"type": ["string", "null"]},
    },
    "required": ["event", "id", "time", "camera"],
}
EVENT = {
    "title": "adversary_detector.CameraEvent",
    "description": "A camera's event other than an alert: camera_degraded, camera_recovered, scene_unfamiliar, ...",
    "type": "object",
    "properties": {
        "event": {"type": "string"}, "id": {"type": "string"}, "time": {"type": "string", "format": "date-time"},
        "camera": {"type": "string"}, "reason": {"type": "string"}, "frame_index": {"type": "integer"},
    },
    "required": ["event", "id", "time", "camera"],
}
SCHEMAS = {"image": RAW_IMAGE, "score": FRAME_SCORE, "alerts": ALERT, "events": EVENT}
KIND = {"image": "image", "score": "score", "alerts": "alert", "events": "event"}  # topic -> metric label


def numbered(path: Path, number: int) -> Path:
    """The `number`th file of recording `path`: agent.mcap -> agent-000001.mcap."""
    return path.with_name(f"{path.stem}-{number:06d}{path.suffix}")


def existing_numbers(path: Path) -> list[int]:
    """Numbers of the files of recording `path` already in its folder."""
    pattern = re.compile(re.escape(path.stem) + r"-(\d{6,})" + re.escape(path.suffix) + "$")
    return sorted(int(m.group(1)) for p in path.parent.iterdir() if (m := pattern.match(p.name)))


def check_path(path: Path) -> None:
    """The recording's folder exists and takes new files; `AgentError` otherwise.

    The folder is not created: a recording path is usually a mounted data disk, and a missing
    one should stop the agent rather than fill the root filesystem.
    """
    folder = Path(path).parent
    if not folder.is_dir():
        raise AgentError(f"sinks.mcap.path: folder {folder} does not exist")
    try:
        check_writable(folder)
    except OSError as exc:
        raise AgentError(f"sinks.mcap.path: folder {folder} is not writable: {exc.strerror or exc}") from None


def _stamp(ns: int) -> str:
    return f'{{"sec":{ns // 1_000_000_000},"nsec":{ns % 1_000_000_000}}}'


def _event_ns(event: dict) -> int:
    """An event's `time` (ISO 8601 UTC, as alerts.utc_iso writes it) in ns; now if it has none."""
    try:  # fromisoformat takes a trailing Z only from Python 3.11
        return int(datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp() * 1e9)
    except (KeyError, TypeError, ValueError, AttributeError):
        return time.time_ns()


class _File:
    """One MCAP file of the recording: its writer, schemas and per-camera channels."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # O_EXCL: a file of another recording (or agent) is never overwritten.
        self.stream = open(path, "xb")
        # The writer never ends a chunk by itself: `end_chunk` does, by size or age, and writes it out.
        # LZ4: under half the CPU of zstd (level 3) on a 768x576 frame, 2.4 vs 5.7 ms; every MCAP reader takes both.
        self.writer = Writer(self.stream, chunk_size=1 << 62, compression=CompressionType.LZ4)
        self.writer.start(profile="", library="adversary-detector agent")
        self.schemas = {topic: self.writer.register_schema(schema["title"], "jsonschema",
                                                           json.dumps(schema).encode())
                        for topic, schema in SCHEMAS.items()}
        self.channels: dict[str, int] = {}
        self.pending = 0  # bytes in the chunk in progress
        self.pending_since = 0.0  # monotonic time of its first message
        self.pending_kinds: dict[str, int] = {}  # its messages per metric kind

    def channel(self, camera: str, topic: str) -> int:
        key = f"/{camera}/{topic}"
        if key not in self.channels:
            self.channels[key] = self.writer.register_channel(key, "json", self.schemas[topic])
        return self.channels[key]

    def add(self, camera: str, topic: str, ns: int, data: bytes) -> None:
        if not self.pending:
            self.pending_since = time.monotonic()
        self.writer.add_message(self.channel(camera, topic), log_time=ns, data=data, publish_time=ns)
        self.pending += len(data)
        self.pending_kinds[KIND[topic]] = self.pending_kinds.get(KIND[topic], 0) + 1

    def end_chunk(self) -> dict[str, int]:
        """Close the chunk in progress and hand it to the kernel; its messages per kind."""
        self.writer.flush()
        written, self.pending, self.pending_kinds = self.pending_kinds, 0, {}
        return written

    def finish(self) -> None:
        """Write the summary (indexes, statistics) and the closing magic, fsync, close."""
        try:
            self.writer.finish()
            self.stream.flush()
            os.fsync(self.stream.fileno())
        finally:
            self.stream.close()

    def abandon(self) -> None:
        """Close after a failed write: the file stays readable up to its last complete chunk."""
        try:
            self.stream.close()
        except OSError:
            pass


class McapSink(Sink):
    """Records scored frames (`on_frame`) and events (`emit`) into rotating MCAP files."""

    def __init__(self, cfg: McapConfig, metrics: Metrics | None, class_names: list[str], threshold: float) -> None:
        if cfg.path is None:
            raise ValueError("sinks.mcap.path is not set")
        self.path = Path(cfg.path)
        check_path(self.path)
        self.every_n = cfg.every_n
        self.scale = cfg.scale
        self.max_bytes = cfg.max_mb * MB
        # Rotation happens at a chunk's end: several chunks per file keep the overshoot small.
        self.chunk_bytes = min(CHUNK_BYTES, self.max_bytes / 8)
        self.metrics = metrics or Metrics()
        self.class_names = class_names
        self.threshold = threshold
        numbers = existing_numbers(self.path)
        self._number = numbers[-1] if numbers else 0
        self._seen: dict[str, int] = {}  # scored frames per camera, for every_n
        self._queue: deque = deque()
        self._queued_bytes = 0
        self._cond = threading.Condition()
        self._closing = False
        self._failed_at = float("-inf")  # when a file last failed to open, so retries are spaced
        self.files: list[Path] = []  # every file this sink started, in order
        # The first file is opened here, so an unwritable folder is an error at start-up.
        try:
            self._file: _File | None = self._open()
        except OSError as exc:
            raise AgentError(f"sinks.mcap.path: cannot create {numbered(self.path, self._number)}: "
                             f"{exc.strerror or exc}") from None
        self._thread = threading.Thread(target=self._run, name="mcap-writer", daemon=True)
        self._thread.start()

    # --- called from the watch loop: queue only ---

    def on_frame(self, scored: Scored) -> None:
        """Record one scored frame's score, and its image when it is an `every_n`th one of its camera."""
        camera, frame = scored.camera, scored.frame
        seen = self._seen.get(camera, 0)
        self._seen[camera] = seen + 1
        # The decoded image is never written to after decoding, so a reference is enough.
        image = frame.image if seen % self.every_n == 0 else None
        item = ("frame", camera, frame.index, image, int(frame.captured_at * 1e9), float(scored.p_adv),
                scored.predicted, float(scored.probs[scored.predicted]), not scored.judged, scored.over)
        self._put(item, image.nbytes if image is not None else 0)

    def emit(self, event: dict) -> None:
        """Record an alert or another camera event."""
        self._put(("event", event), 0)

    def _put(self, item: tuple, nbytes: int) -> None:
        with self._cond:
            if self._closing:
                return
            if len(self._queue) >= QUEUE_ITEMS:
                self.metrics.mcap_errors.labels("full").inc(1 + (nbytes > 0))
                return
            if nbytes and self._queued_bytes + nbytes > QUEUE_BYTES:
                # The image is what costs memory: its score is still recorded.
                item, nbytes = item[:3] + (None,) + item[4:], 0
                self.metrics.mcap_errors.labels("full").inc()
            self._queue.append((item, nbytes))
            self._queued_bytes += nbytes
            self._cond.notify()

    def close(self) -> None:
        """Write what is queued, finish the file in progress (summary, fsync) and stop the writer."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    # --- the writer thread ---

    def _open(self) -> _File:
        self._number += 1
        path = numbered(self.path, self._number)
        file = _File(path)
        self.files.append(path)
        log.info("MCAP recording to %s", path)
        return file

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    wait = None
                    if self._file is not None and self._file.pending:
                        wait = self._file.pending_since + CHUNK_S - time.monotonic()
                        if wait <= 0:
                            break
                    self._cond.wait(wait)
                items = list(self._queue)
                self._queue.clear()
                closing = self._closing
            for item, nbytes in items:
                try:
                    self._write(item)
                except Exception:  # a bug here must cost this message, not the rest of the recording
                    self.metrics.mcap_errors.labels("write").inc()
                    log.exception("MCAP: message of camera %s not recorded", item[1].get("camera")
                                  if item[0] == "event" else item[1])
                if nbytes:  # released only once written, so the queue's bound is the memory's
                    with self._cond:
                        self._queued_bytes -= nbytes
            if self._file is not None and self._file.pending and (
                    closing or self._file.pending >= self.chunk_bytes
                    or time.monotonic() - self._file.pending_since >= CHUNK_S):
                self._guarded(self._end_chunk)
            if closing:
                if self._file is not None:
                    self._guarded(self._file.finish)
                    self._file = None
                return

    def _end_chunk(self) -> None:
        for kind, n in self._file.end_chunk().items():
            self.metrics.mcap_written.labels(kind).inc(n)
        if self._file.stream.tell() >= self.max_bytes:
            file, self._file = self._file, None
            file.finish()
            log.info("MCAP file %s reached sinks.mcap.max_mb (%g): closed", file.path, self.max_bytes / MB)

    def _guarded(self, action) -> bool:
        """Run a write; on a failure count it, log it and drop the file in progress."""
        try:
            action()
            return True
        except OSError as exc:
            file, self._file = self._file, None
            # The messages of the chunk in progress are lost with it; the complete chunks are not.
            self.metrics.mcap_errors.labels("write").inc(sum(file.pending_kinds.values()) if file else 1)
            self._failed_at = time.monotonic()
            where = file.path if file is not None else self.path
            log.error("MCAP recording %s failed: %s; the file is readable up to its last complete chunk, "
                      "the next message starts a new one", where, exc.strerror or exc)
            if file is not None:
                file.abandon()
            return False

    def _write(self, item: tuple) -> None:
        if self._file is None:
            if time.monotonic() - self._failed_at < RETRY_S:
                self.metrics.mcap_errors.labels("write").inc(1 + (item[0] == "frame" and item[3] is not None))
                return
            try:
                self._file = self._open()
            except OSError as exc:
                self._failed_at = time.monotonic()
                self.metrics.mcap_errors.labels("write").inc()
                log.error("MCAP file %s not opened: %s", numbered(self.path, self._number), exc.strerror or exc)
                return
        for camera, topic, ns, data in self._serialise(item):
            if not self._guarded(lambda: self._file.add(camera, topic, ns, data)):
                return
        if self._file.pending >= self.chunk_bytes:
            self._guarded(self._end_chunk)

    def _serialise(self, item: tuple) -> list[tuple[str, str, int, bytes]]:
        if item[0] == "event":
            event = item[1]
            topic = "alerts" if event.get("event") == "alert" else "events"
            data = json.dumps(event, separators=(",", ":")).encode()
            return [(str(event.get("camera", "agent")), topic, _event_ns(event), data)]
        _, camera, index, image, ns, p_adv, predicted, probability, unfamiliar, over = item
        score = {"camera": camera, "frame_index": index, "p_adv": p_adv, "threshold": self.threshold,
                 "over_threshold": over, "unfamiliar": unfamiliar,
                 "predicted_index": predicted,
                 "predicted_class": self.class_names[predicted] if predicted < len(self.class_names) else str(predicted),
                 "class_probability": probability}
        out = [(camera, "score", ns, f'{{"timestamp":{_stamp(ns)},{json.dumps(score)[1:]}'.encode())]
        if image is not None:
            out.append((camera, "image", ns, self._image(camera, image, ns)))
        return out

    def _image(self, camera: str, image: np.ndarray, ns: int) -> bytes:
        if self.scale < 1:
            h, w = image.shape[:2]
            size = (max(1, round(w * self.scale)), max(1, round(h * self.scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        # Decoded frames are BGR (OpenCV's order) or grey.
        mono = image.ndim == 2 or image.shape[2] == 1
        h, w = image.shape[:2]
        head = (f'{{"timestamp":{_stamp(ns)},"frame_id":{json.dumps(camera)},"width":{w},"height":{h},'
                f'"encoding":"{"mono8" if mono else "bgr8"}","step":{w * (1 if mono else 3)},"data":"')
        return head.encode() + base64.b64encode(np.ascontiguousarray(image).data) + b'"}'


def build(ctx: Context) -> McapSink | None:
    """`sinks.mcap`, when its path is set."""
    cfg = ctx.cfg.sinks.mcap
    return McapSink(cfg, ctx.metrics, ctx.model.class_names, ctx.threshold) if cfg.path is not None else None
