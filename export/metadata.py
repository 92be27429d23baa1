"""The `metadata_props` of the exported graph (docs/ONNX_CONTRACT.md): building, attaching, checking.

Every value is a string; lists and dicts are JSON.
"""
from __future__ import annotations

import json
from importlib import metadata as importlib_metadata
from typing import TYPE_CHECKING

import onnx

from export.errors import ExportError

if TYPE_CHECKING:  # only for the annotation: this module must not import torch
    from export.rundir import Run

FORMAT = "adversary-detector/1"
KEYS = ("format", "class_names", "input_height", "input_width", "input_channels", "color_order",
        "resize_interpolation", "threshold", "threshold_fpr", "thresholds", "attach_point", "adversary",
        "detector_mode", "dataset", "test_accuracy", "detectability", "auroc", "classifier_sha256",
        "detector_sha256", "package_version", "precision")
PRECISIONS = ("fp32", "fp16", "int8")


def package_version() -> str:
    """Version of the installed project (the wheel/egg that holds `export`)."""
    try:
        return importlib_metadata.version("adversary-detector")
    except importlib_metadata.PackageNotFoundError:
        return "0+unknown"  # running from a source tree that was never installed


def build(run: Run, precision: str) -> dict[str, str]:
    """Metadata for `run` exported at `precision`.

    Accuracy, detectability and AUROC are the trainer's full test-set numbers for the fp32 model;
    what a reduced precision costs is checked at export (see `export.compare`).
    """
    cls, det = run.classifier_ckpt, run.detector_ckpt
    height, width, channels = run.input_shape
    try:
        meta = {
            "format": FORMAT,
            "class_names": json.dumps([str(name) for name in cls["classes"]]),
            "input_height": str(height), "input_width": str(width), "input_channels": str(channels),
            "color_order": "BGR" if channels == 3 else "GRAY",
            "resize_interpolation": "area",  # the trainer resizes folder data sets with cv2.INTER_AREA
            "threshold": repr(float(det["threshold"])),
            "threshold_fpr": repr(float(det["threshold_fpr"])),
            "thresholds": json.dumps([{"fpr": float(t["fpr"]), "threshold": float(t["threshold"])}
                                      for t in det["thresholds"]]),
            "attach_point": f"AD({int(det['point'])})",
            "adversary": json.dumps(det["adversary"]),
            "detector_mode": str(det["mode"]),
            "dataset": str(cls["dataset"]),
            "test_accuracy": repr(float(cls["test_acc"])),
            "detectability": repr(float(det["detectability"])),
            "auroc": repr(float(det["auroc"])),
            "classifier_sha256": run.classifier_sha256,
            "detector_sha256": run.detector_sha256,
            "package_version": package_version(),
            "precision": precision,
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"run {run.dir}: checkpoint lacks a metadata field ({type(exc).__name__}: {exc})") from None
    check(meta)
    return meta


def attach(model: onnx.ModelProto, meta: dict[str, str]) -> None:
    """Replace the model's `metadata_props` by `meta`."""
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, meta)


def read(model: onnx.ModelProto) -> dict[str, str]:
    """The model's `metadata_props` as a dict."""
    return {prop.key: prop.value for prop in model.metadata_props}


def check(meta: dict[str, str]) -> None:
    """Raise `ExportError` unless `meta` has every contract key with a well-formed value."""
    missing = [key for key in KEYS if key not in meta]
    if missing:
        raise ExportError(f"metadata lacks {', '.join(missing)}")
    if meta["format"] != FORMAT:
        raise ExportError(f"metadata format {meta['format']!r}, expected {FORMAT!r}")
    try:
        names = json.loads(meta["class_names"])
        channels = int(meta["input_channels"])
        sizes = int(meta["input_height"]), int(meta["input_width"])
        numbers = {key: float(meta[key]) for key in ("threshold", "threshold_fpr", "test_accuracy",
                                                     "detectability", "auroc")}
        thresholds = json.loads(meta["thresholds"])
        json.loads(meta["adversary"])
    except (ValueError, TypeError) as exc:
        raise ExportError(f"malformed metadata ({exc})") from None
    problems = []
    if not isinstance(names, list) or not names:
        problems.append("class_names is not a non-empty JSON list")
    if min(sizes) < 1 or (meta["color_order"], channels) not in (("BGR", 3), ("GRAY", 1)):
        problems.append(f"input {sizes} x {channels} channels with color_order {meta['color_order']!r}")
    if not 0.0 <= numbers["threshold"] <= 1.0:
        problems.append(f"threshold {numbers['threshold']} outside [0, 1]")
    if not isinstance(thresholds, list) or not all(isinstance(t, dict) and {"fpr", "threshold"} <= t.keys()
                                                     for t in thresholds):
        problems.append("thresholds is not a JSON list of {fpr, threshold}")
    if meta["precision"] not in PRECISIONS:
        problems.append(f"precision {meta['precision']!r} not one of {', '.join(PRECISIONS)}")
    if problems:
        raise ExportError("bad metadata: " + "; ".join(problems))
