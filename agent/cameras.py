"""Which cameras to watch: the config's `cameras` list, or `--camera`/`--source`, named and checked.

Every problem with one entry (unknown index, missing file, bad scheme, duplicate name) is
one `SourceError` line that names the camera, so a vehicle's operator knows which to fix.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from agent.capture import SourceSpec, parse_source
from agent.config import AgentConfig, CameraConfig
from agent.errors import SourceError

_NAMED = re.compile(r"^([A-Za-z0-9_.-]+)=(.+)$")


@dataclass(frozen=True)
class Camera:
    """One named camera and what to open for it."""

    name: str
    spec: SourceSpec


def from_cli(cameras: list[str], sources: list[str]) -> list[CameraConfig]:
    """`--camera [NAME=]INDEX` and `--source [NAME=]URI` entries as config entries (cameras first)."""
    entries = []
    for text, is_index in [(c, True) for c in cameras] + [(s, False) for s in sources]:
        match = _NAMED.match(text)
        # A URL's query string also holds '=': only a plain name before the first '=' names the camera.
        name, target = (match.group(1), match.group(2)) if match and "://" not in match.group(1) else (None, text)
        if is_index:
            try:
                target = int(target)
            except ValueError:
                raise SourceError(f"--camera {text}: expected [NAME=]INDEX, e.g. front=0") from None
        entries.append(CameraConfig(name=name, source=target))
    return entries


def resolve(cfg: AgentConfig, cameras: list[str] = (), sources: list[str] = ()) -> list[Camera]:
    """The cameras to watch: the command line's if it names any, else the config's; raises `SourceError`."""
    entries = from_cli(list(cameras), list(sources)) if cameras or sources else cfg.cameras
    if not entries:
        raise SourceError("no camera: give --camera/--source, or list cameras in the config")
    resolved: list[Camera] = []
    for entry in entries:
        index, uri = (entry.source, None) if isinstance(entry.source, int) else (None, entry.source)
        label = entry.name or (f"camera{index}" if index is not None else None)
        try:
            spec = parse_source(index, uri, entry.mode or cfg.capture.mode)
        except SourceError as exc:
            raise SourceError(f"camera {label or uri}: {exc}") from None
        name = entry.name or spec.label
        if any(c.name == name for c in resolved):
            raise SourceError(f"camera {name}: duplicate name (give each camera its own name)")
        resolved.append(Camera(name, spec))
    return resolved
