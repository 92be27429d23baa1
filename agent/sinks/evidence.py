"""Alert evidence: the frames around each alert, lossless, with a manifest `agent replay` re-scores.

Each camera keeps a ring buffer of its last `alerts.evidence.pre_frames` scored frames (the
decoded images, not copies: the capture thread makes a new array per frame). An alert takes
the ring, then collects its own frame and the next `post_frames` scored frames of its camera;
the clip then goes to a writer thread through a bounded queue. Scoring never waits for the
disk: when the queue is full the clip is dropped, logged and counted
(`agent_evidence_dropped{reason="queue_full"}`); so is one that would leave less than
`alerts.min_free_mb` free (`low_space`) or that the disk fails to take (`write`).

The writer thread runs under SCHED_IDLE (nice 19 where that is refused): encoding PNG takes
only the CPU that decoding and inference leave.

A folder is written as `.NAME.partial` (PNG frames, then manifest.json, each fsynced) and
renamed to NAME when whole, so a folder without the dot is always complete. The alert event
says where its folder will be (`evidence: {path, sha256: null}`) as soon as the alert is
raised; when the folder is written, an `evidence` event carries the same path and the sha256 of
its manifest (or `error` when it was dropped). The manifest holds per frame its file, index,
capture time, sha256, p_adv and predicted class, and the model's sha256, threshold and
robustness, the agent's version and the sha256 of its resolved config.

Frames the loop did not score (unhealthy frames, live frames dropped for a newer one) have no
p_adv and are not in a clip. Retention is the snapshots': oldest folders first beyond
`max_mb` or `max_age_days`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import shutil
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata as package_metadata
from pathlib import Path

import cv2

from agent.alerts import MB, Retention, alert_name, check_writable, low_space, utc_iso
from agent.config import AgentConfig
from agent.observers import Context, Observer, Scored

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "adversary-detector-evidence/1"
PARTIAL = ".partial"
# At shutdown the writer gets this long for the clips still queued (systemd's stop timeout is 30 s,
# and the MQTT spool's flush comes after); what it has not written by then is counted as dropped.
CLOSE_TIMEOUT_S = 10.0
# PNG encoding costs ~17 ms of CPU per 768x576 frame: on a busy CPU the writer must take only what
# decoding and inference leave, not compete with them. Linux schedules threads one by one, so the
# writer alone runs under SCHED_IDLE (where that is refused, at the lowest nice). A writer that then
# falls behind fills its queue, and evidence is dropped and counted.
WRITER_NICE = 19


def agent_version() -> str:
    """The installed package's version ("unknown" when run from a source tree that is not installed)."""
    try:
        return package_metadata.version("adversary-detector")
    except package_metadata.PackageNotFoundError:
        return "unknown"


def config_sha256(cfg: AgentConfig) -> str:
    """sha256 of the resolved config (every value, defaults included), as canonical JSON."""
    return hashlib.sha256(json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


@dataclass
class Clip:
    """One alert's frames on their way to disk."""

    alert: dict
    folder: Path
    frames: list[Scored]  # the ring's, then the alert's own and those after it
    post_frames: int
    collected: int = 0  # frames after the ring's

    @property
    def complete(self) -> bool:
        """The alert's frame and all `post_frames` after it are in."""
        return self.collected >= self.post_frames + 1


class EvidenceRecorder(Observer):
    """Ring buffers, clips and the writer thread; see the module docstring."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg.alerts.evidence
        self.min_free_mb = ctx.cfg.alerts.min_free_mb
        self.metrics = ctx.metrics
        self.folder = Path(self.cfg.dir)
        check_writable(self.folder)
        self.retention = Retention(self.cfg.max_mb * MB, self.cfg.max_age_days, self.metrics)
        self.retention.track(self._existing())
        self._rings: dict[str, deque[Scored]] = {c: deque(maxlen=self.cfg.pre_frames) for c in ctx.cameras}
        self._open: dict[str, list[Clip]] = {c: [] for c in ctx.cameras}  # collecting post frames
        self._queue: queue.Queue[Clip | None] = queue.Queue(maxsize=self.cfg.queue)
        self._static = {
            "model": {"path": str(ctx.model.path), "sha256": ctx.model.sha256, "threshold": ctx.threshold,
                      "robustness": _robustness(ctx.model.metadata)},
            "agent": {"version": agent_version(), "config_sha256": config_sha256(ctx.cfg)},
        }
        self.writer_priority = "normal"  # what the writer thread got: SCHED_IDLE, nice 19 or normal
        self._writer = threading.Thread(target=self._write_loop, name="evidence-writer", daemon=True)
        self._writer.start()

    def _existing(self) -> list[tuple[float, Path, int]]:
        """Folders already here, for retention; a `.partial` one is what a crash left: removed."""
        found = []
        for path in self.folder.iterdir():
            if not path.is_dir():
                continue
            if path.name.startswith(".") and path.name.endswith(PARTIAL):
                shutil.rmtree(path, ignore_errors=True)
                continue
            size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
            found.append((path.stat().st_mtime, path, size))
        return found

    # ------------------------------------------------------------ the watch loop's thread

    def annotate(self, event: dict) -> None:
        """An alert opens a clip of its camera and says where its folder will be."""
        camera = event.get("camera")
        if event.get("event") != "alert" or camera not in self._rings:
            return
        captured_at = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
        clip = Clip(alert=event, folder=self.folder / alert_name(camera, event["frame_index"], captured_at),
                    frames=list(self._rings[camera]), post_frames=self.cfg.post_frames)
        self._open[camera].append(clip)
        event["evidence"] = {"path": str(clip.folder), "sha256": None}

    def on_frame(self, scored: Scored) -> None:
        """Into the camera's ring, and into each of its clips still collecting."""
        clips = self._open[scored.camera]
        if clips:
            for clip in clips:
                clip.frames.append(scored)
                clip.collected += 1
            while clips and clips[0].complete:
                self._submit(clips.pop(0))
        self._rings[scored.camera].append(scored)

    def _submit(self, clip: Clip) -> None:
        try:
            self._queue.put_nowait(clip)
        except queue.Full:
            self._dropped(clip, "queue_full", f"the writer is {self.cfg.queue} clip(s) behind (slow or full disk)")

    def _dropped(self, clip: Clip, reason: str, why: str) -> None:
        self.metrics.evidence_dropped.labels(reason).inc()
        log.error("evidence of alert %s (%s frame %d) dropped: %s", clip.alert["id"], clip.alert["camera"],
                  clip.alert["frame_index"], why)
        self.ctx.post(self._event(clip, None, error=f"{reason}: {why}"))

    def close(self) -> None:
        """Write the clips still collecting (a camera that ended), then let the writer finish its queue."""
        for clips in self._open.values():
            while clips:
                clip = clips.pop(0)
                if clip.collected:  # without its alert frame there is nothing to replay the alert with
                    self._submit(clip)
                else:
                    self._dropped(clip, "write", "the run ended before the alert's frame was scored")
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        try:
            self._queue.put(None, timeout=CLOSE_TIMEOUT_S)
        except queue.Full:
            pass
        self._writer.join(max(0.0, deadline - time.monotonic()))
        if self._writer.is_alive():
            while True:
                try:
                    clip = self._queue.get_nowait()
                except queue.Empty:
                    break
                if clip is not None:
                    self._dropped(clip, "write", f"not written within {CLOSE_TIMEOUT_S:.0f} s of shutdown")

    # ------------------------------------------------------------ the writer thread

    def _write_loop(self) -> None:
        tid = threading.get_native_id()
        try:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
            self.writer_priority = "SCHED_IDLE"
        except (OSError, AttributeError):  # not Linux, or a seccomp filter that forbids it
            try:
                os.setpriority(os.PRIO_PROCESS, tid, WRITER_NICE)
                self.writer_priority = f"nice {WRITER_NICE}"
            except OSError as exc:
                log.warning("evidence writer keeps normal CPU priority: %s", exc)
        while (clip := self._queue.get()) is not None:
            try:
                self._write(clip)
            except Exception as exc:  # the writer must outlive any one clip
                log.exception("evidence writer failed on alert %s", clip.alert["id"])
                self._dropped(clip, "write", f"{type(exc).__name__}: {exc}")

    def _write(self, clip: Clip) -> None:
        encoded = []
        for s in clip.frames:
            # Level 1: PNG is lossless at every level; the fast one keeps the writer ahead.
            ok, data = cv2.imencode(".png", s.frame.image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
            if not ok:
                raise ValueError(f"cannot encode frame {s.frame.index} as PNG")
            encoded.append(data.tobytes())
        manifest = self._manifest(clip, encoded)
        need = sum(map(len, encoded)) + len(manifest)
        if (why := low_space(self.folder, need, self.min_free_mb)) is not None:
            self._dropped(clip, "low_space", why)
            return
        partial = clip.folder.with_name(f".{clip.folder.name}{PARTIAL}")
        try:
            partial.mkdir()
            for s, data in zip(clip.frames, encoded):
                _write_file(partial / _frame_file(s), data)
            _write_file(partial / MANIFEST, manifest)
            _fsync_dir(partial)
            os.rename(partial, clip.folder)
            _fsync_dir(self.folder)
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            self._dropped(clip, "write", f"{exc.strerror or exc}")
            return
        self.metrics.evidence_written.inc()
        self.retention.add(clip.folder, need)
        self.ctx.post(self._event(clip, hashlib.sha256(manifest).hexdigest()))

    def _manifest(self, clip: Clip, encoded: list[bytes]) -> bytes:
        names = self.ctx.model.class_names
        alert = clip.alert
        frames = [{
            "file": _frame_file(s), "index": s.frame.index, "time": utc_iso(s.frame.captured_at),
            "captured_at": s.frame.captured_at, "sha256": hashlib.sha256(data).hexdigest(),
            "p_adv": s.p_adv, "predicted_index": s.predicted,
            "predicted_class": names[s.predicted] if s.predicted < len(names) else str(s.predicted),
            "judged": s.judged, "over_threshold": s.over, "alert_frame": s.frame.index == alert["frame_index"],
        } for s, data in zip(clip.frames, encoded)]
        return json.dumps({
            "format": FORMAT, "camera": alert["camera"],
            "alert": {k: alert[k] for k in ("id", "time", "frame_index", "p_adv", "threshold", "predicted_class")},
            "pre_frames": self.cfg.pre_frames, "post_frames": self.cfg.post_frames,
            "complete": clip.complete, **self._static, "frames": frames,
        }, indent=1).encode()

    def _event(self, clip: Clip, sha256: str | None, error: str | None = None) -> dict:
        alert = clip.alert
        event = {"event": "evidence", "id": uuid.uuid4().hex, "time": alert["time"], "camera": alert["camera"],
                 "alert_id": alert["id"], "frame_index": alert["frame_index"],
                 "evidence": {"path": str(clip.folder) if error is None else None, "sha256": sha256}}
        if error is not None:
            event["error"] = error
        return event


def _frame_file(s: Scored) -> str:
    return f"{s.frame.index:09d}.png"


def _robustness(meta: dict[str, str]):
    """The model's `robustness` metadata, parsed (None without an audit)."""
    text = meta.get("robustness")
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return text


def build(ctx: Context) -> EvidenceRecorder | None:
    """`alerts.evidence`."""
    return EvidenceRecorder(ctx) if ctx.cfg.alerts.evidence.enabled else None
