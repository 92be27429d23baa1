"""The contract's metadata (common/metadata.py) for a run: building it from the checkpoints, attaching, reading."""
from __future__ import annotations

from importlib import metadata as importlib_metadata
from typing import TYPE_CHECKING

import onnx

from common.metadata import ModelMetadata
from export.errors import ExportError

if TYPE_CHECKING:  # only for the annotation: this module must not import torch
    from trainer.rundir import Run


def package_version() -> str:
    """Version of the installed project (the wheel/egg that holds `export`)."""
    try:
        return importlib_metadata.version("adversary-detector")
    except importlib_metadata.PackageNotFoundError:
        return "0+unknown"  # running from a source tree that was never installed


def build(run: Run, precision: str) -> ModelMetadata:
    """Metadata for `run` exported at `precision`.

    Accuracy, detectability and AUROC are the trainer's full test-set numbers for the fp32 model;
    what a reduced precision costs is checked at export (see `export.compare`).
    """
    cls, det = run.classifier_ckpt, run.detector_ckpt
    height, width, channels = run.input_shape
    try:
        return ModelMetadata(
            class_names=[str(name) for name in cls["classes"]],
            input_height=height, input_width=width, input_channels=channels,
            color_order="BGR" if channels == 3 else "GRAY",
            resize_interpolation="area",  # the trainer resizes folder data sets with cv2.INTER_AREA
            threshold=det.threshold, threshold_fpr=det.threshold_fpr, thresholds=det.thresholds,
            attach_point=f"AD({det.point})", adversary=det.adversary, detector_mode=det.mode,
            dataset=str(cls["dataset"]), test_accuracy=cls["test_acc"], detectability=det.detectability,
            auroc=det.auroc, classifier_sha256=run.classifier_sha256, detector_sha256=run.detector_sha256,
            package_version=package_version(), precision=precision, robustness=run.robustness,
            familiarity=run.familiarity, calibration=det.calibration_set,
        )
    except (KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        first = str(exc).splitlines()[0] if isinstance(exc, KeyError) else " ".join(str(exc).split())[:200]
        raise ExportError(f"run {run.dir}: checkpoint lacks a metadata field or has a bad one ({type(exc).__name__}: {first})") from None


def attach(model: onnx.ModelProto, meta: ModelMetadata) -> None:
    """Replace the model's `metadata_props` by `meta`."""
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, meta.to_props())


def read(model: onnx.ModelProto) -> dict[str, str]:
    """The model's `metadata_props` as strings (`ModelMetadata.from_props` parses and checks them)."""
    return {prop.key: prop.value for prop in model.metadata_props}
