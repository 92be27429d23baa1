"""The `metadata_props` of the exported graph (docs/ONNX_CONTRACT.md): building, attaching, checking.

Every value is a string; lists and dicts are JSON.
"""
from __future__ import annotations

import json
from importlib import metadata as importlib_metadata
from typing import TYPE_CHECKING

import onnx

from common.contract import FORMAT, ContractError, check_metadata
from common.robustness import KEY as ROBUSTNESS
from export.errors import ExportError

if TYPE_CHECKING:  # only for the annotation: this module must not import torch
    from export.rundir import Run

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
        if run.familiarity is not None:  # optional: runs from before familiarity scoring have none
            f = run.familiarity
            meta["familiarity"] = json.dumps({"score": f["score"], "point": int(f["point"]), "cell": [int(c) for c in f["cell"]],
                                              "threshold": float(f["threshold"]), "fpr": float(f["fpr"]),
                                              "val_images": int(f["val_images"])})
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"run {run.dir}: checkpoint lacks a metadata field ({type(exc).__name__}: {exc})") from None
    if run.robustness is not None:  # optional: a model without an audit says so wherever it is read (common/robustness.py)
        meta[ROBUSTNESS] = json.dumps(run.robustness)
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
    """Raise `ExportError` unless `meta` satisfies the contract (the same check the agent runs)."""
    try:
        check_metadata(meta)
    except ContractError as exc:
        raise ExportError(str(exc)) from None
