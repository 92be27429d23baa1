"""What RUN/detectors/<NAME>/detector.pt holds: one typed model for the detector stage that writes it and its readers.

The file stays a plain dict of primitives and tensors (`to_dict`), so `weights_only` loads it and
run directories written before this type still load (`from_dict`); the field names live here only.
Keys this type does not name (the validation number a detector was selected by, keys of older
versions) are kept, so a checkpoint read and written again loses nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from common.metadata import Threshold
from trainer import checkpoint


class DetectorCheckpoint(BaseModel):
    """A trained, calibrated detector: how to build it, its weights, its thresholds and test-set numbers."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    point: int  # attached at AD(point)
    arch: str = "fig1"  # Fig. 1's detector was the only one before `arch` existed
    members: int = 1  # > 1: an Either of that many detectors of `arch` (config `either`)
    width: Optional[int] = None  # the frame detector's first maps (config `width`); None = its default
    in_channels: int
    adversary: dict[str, Any]  # the attack it was trained against: name and set parameters
    mode: str
    state_dict: dict[str, Any]  # tensors, on the device it was loaded to
    thresholds: list[Threshold]
    threshold: float  # the default alert threshold on p_adv
    threshold_fpr: float
    detectability: float
    auroc: float
    calibration_set: Optional[dict[str, Any]] = None  # the images thresholds were set on; absent in early runs
    # The stamp it was made under (trainer.detect.stage); absent in hand-written checkpoints.
    spec: Optional[dict[str, Any]] = None
    classifier_sha256: Optional[str] = None
    calibration: Optional[dict[str, Any]] = None
    init_from_sha256: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """The dict torch.save writes: the fields that were set, and the keys this type does not name."""
        return self.model_dump(exclude_unset=True)

    @classmethod
    def from_dict(cls, saved: dict[str, Any], source: str = "detector checkpoint") -> "DetectorCheckpoint":
        """Parse and check a loaded dict; `CheckpointError` names `source` and the first bad field."""
        try:
            return cls.model_validate(saved)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise checkpoint.CheckpointError(f"{source}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "DetectorCheckpoint":
        """The detector.pt at `path`; `CheckpointError` when it is missing, unreadable or lacks a field."""
        return cls.from_dict(checkpoint.load(path, device), str(path))
