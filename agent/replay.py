"""`agent replay EVIDENCE_DIR`: re-score an alert's evidence and show that it gives the recorded p_adv.

Every frame's file is checked against the sha256 in the manifest, decoded (PNG: the very pixels
the agent scored), and run through the model the manifest names (or another given one, which
must have the same sha256) with ONNX Runtime. A frame whose replayed p_adv differs from the
recorded one by more than `TOLERANCE`, a missing or altered frame, or another model is an error.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from agent.config import InferenceConfig
from agent.errors import AgentError
from agent.model import Detector, verify_model
from agent.sinks.evidence import FORMAT, MANIFEST
from common.files import sha256_file

TOLERANCE = 1e-5


@dataclass(frozen=True)
class Replayed:
    """One frame: its index, p_adv as recorded and as replayed now."""

    index: int
    recorded: float
    replayed: float

    @property
    def matches(self) -> bool:
        """Within `TOLERANCE`."""
        return abs(self.replayed - self.recorded) <= TOLERANCE


def read_manifest(folder: Path) -> tuple[dict, str]:
    """The evidence manifest and its sha256 (what the alert's `evidence` event carries)."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AgentError(f"{path}: not a readable evidence manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise AgentError(f"{path}: not an evidence manifest of format {FORMAT}")
    return manifest, sha256_file(path)


def replay(folder: Path, model: Path | None, inference: InferenceConfig) -> tuple[dict, str, list[Replayed]]:
    """Re-score every frame of `folder`; (manifest, its sha256, frames). Raises `AgentError` on a missing
    or altered frame or a model other than the manifest's; mismatching p_adv are left to the caller."""
    folder = Path(folder)
    manifest, manifest_sha = read_manifest(folder)
    recorded_model = manifest["model"]
    info = verify_model(model if model is not None else recorded_model["path"])
    if info.sha256 != recorded_model["sha256"]:
        raise AgentError(f"model {info.path} has sha256 {info.sha256[:12]}..., the evidence was scored by "
                         f"{recorded_model['sha256'][:12]}... ({recorded_model['path']}); give that model with --model")
    detector = Detector(info, inference)
    frames = []
    for entry in manifest["frames"]:
        path = folder / entry["file"]
        if not path.is_file():
            raise AgentError(f"frame {entry['index']}: {path} is missing")
        if sha256_file(path) != entry["sha256"]:
            raise AgentError(f"frame {entry['index']}: {path} does not have the recorded sha256 (altered)")
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise AgentError(f"frame {entry['index']}: {path} cannot be decoded")
        _, p_adv, _ = detector.infer(detector.prepare(image)[np.newaxis])
        frames.append(Replayed(entry["index"], float(entry["p_adv"]), float(p_adv[0])))
    return manifest, manifest_sha, frames
