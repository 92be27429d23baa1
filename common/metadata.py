"""The metadata half of the `.onnx` contract (docs/ONNX_CONTRACT.md): one typed model for both sides.

`export` builds a `ModelMetadata` and writes `to_props()` into the graph and its manifest; the
agent and `export verify` read it back with `from_props()`, so the keys, their types and their
checks live here only. Every ONNX metadata value is a string: text stays as it is, numbers and
everything else are written as JSON. Keys a reader does not know are ignored, so a newer export
stays readable by an older agent. Adding an optional key is one line: a field with a None default
(None is not written). No torch here: the agent's runtime set has none.
"""
from __future__ import annotations

import json
from typing import Any, Literal, Optional, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from common.errors import UserError

FORMAT = "adversary-detector/1"
Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
Interpolation = Literal["area", "linear", "nearest", "cubic"]


class MetadataError(UserError, ValueError):
    """Metadata that breaks the contract; one-line message."""


class Threshold(BaseModel):
    """An alert threshold on p_adv and the false-positive rate on clean validation images it gives."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    fpr: float
    threshold: float


class Familiarity(BaseModel):
    """How unfamiliar a frame's features are at the detector's tap (trainer.familiarity), and the threshold above
    which the agent does not judge p_adv (the graph then has an `unfamiliarity` output)."""

    model_config = ConfigDict(extra="ignore", frozen=True)  # the trainer's file holds the statistics too
    score: str
    point: int
    cell: Optional[list[int]] = None  # the grid cell count of the score, where it has one
    threshold: float
    fpr: float
    val_images: int


class ModelMetadata(BaseModel):
    """What an exported model says about itself; see docs/ONNX_CONTRACT.md for each key."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    format: Literal["adversary-detector/1"] = FORMAT
    class_names: list[str] = Field(min_length=1)
    input_height: PositiveInt
    input_width: PositiveInt
    input_channels: Literal[1, 3]
    color_order: Literal["BGR", "GRAY"]
    resize_interpolation: Interpolation
    threshold: float = Field(ge=0, le=1, description="the default alert threshold on p_adv")
    threshold_fpr: float
    thresholds: list[Threshold]
    attach_point: str
    adversary: dict[str, Any]
    detector_mode: str
    dataset: str
    test_accuracy: float
    detectability: float
    auroc: float
    classifier_sha256: str
    detector_sha256: str
    package_version: str
    precision: Precision
    robustness: Optional[dict[str, Any]] = None  # the `trainer audit` summary (common/robustness.py); absent: not audited
    familiarity: Optional[Familiarity] = None  # absent: runs from before familiarity scoring
    calibration: Optional[dict[str, Any]] = None  # the images the thresholds were set on; absent: clean validation images

    @model_validator(mode="after")
    def _colour_fits_channels(self) -> "ModelMetadata":
        if (self.color_order, self.input_channels) not in (("BGR", 3), ("GRAY", 1)):
            raise ValueError(f"color_order {self.color_order} does not fit {self.input_channels} input channels")
        return self

    def to_props(self) -> dict[str, str]:
        """The `metadata_props` strings: text as it is, everything else JSON; unset optional keys left out."""
        values = self.model_dump(mode="json", exclude_none=True)
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> "ModelMetadata":
        """Parse and check `metadata_props`; `MetadataError` names the first key that breaks the contract."""
        missing = [k for k, f in cls.model_fields.items() if f.is_required() and k not in props]
        if missing:
            raise MetadataError(f"metadata lacks {', '.join(missing)}")
        if props.get("format", FORMAT) != FORMAT:
            raise MetadataError(f"metadata format {props['format']!r}, expected {FORMAT!r}")
        values = {}
        for key, text in props.items():
            if key not in cls.model_fields or _is_text(cls.model_fields[key].annotation):
                values[key] = text
                continue
            try:
                values[key] = json.loads(text)
            except ValueError:
                raise MetadataError(f"malformed metadata: {key} is not JSON ({text[:40]!r})") from None
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(map(str, err["loc"])) or "metadata"
            raise MetadataError(f"bad metadata: {key}: {err['msg']}") from None


def _is_text(annotation: Any) -> bool:
    """Whether a field of this type holds strings, written without JSON quotes."""
    return annotation is str or (get_origin(annotation) is Literal and all(isinstance(a, str) for a in get_args(annotation)))
