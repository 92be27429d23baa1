"""The metadata half of the `.onnx` contract (docs/ONNX_CONTRACT.md), checked by both sides.

`export` checks what it writes and `agent` checks what it loads with the same function, so
the two cannot drift apart. Standard library only: the agent's runtime set has no torch.
"""
from __future__ import annotations

import json

FORMAT = "adversary-detector/1"
KEYS = ("format", "class_names", "input_height", "input_width", "input_channels", "color_order",
        "resize_interpolation", "threshold", "threshold_fpr", "thresholds", "attach_point", "adversary",
        "detector_mode", "dataset", "test_accuracy", "detectability", "auroc", "classifier_sha256",
        "detector_sha256", "package_version", "precision")
PRECISIONS = ("fp32", "fp16", "int8")
INTERPOLATIONS = ("area", "linear", "nearest", "cubic")


class ContractError(ValueError):
    """Metadata that breaks the contract; one-line message."""


def check_metadata(meta: dict[str, str]) -> None:
    """Raise `ContractError` unless `meta` has every contract key with a well-formed value."""
    missing = [key for key in KEYS if key not in meta]
    if missing:
        raise ContractError(f"metadata lacks {', '.join(missing)}")
    if meta["format"] != FORMAT:
        raise ContractError(f"metadata format {meta['format']!r}, expected {FORMAT!r}")
    try:
        names = json.loads(meta["class_names"])
        channels = int(meta["input_channels"])
        sizes = int(meta["input_height"]), int(meta["input_width"])
        numbers = {key: float(meta[key]) for key in ("threshold", "threshold_fpr", "test_accuracy",
                                                     "detectability", "auroc")}
        thresholds = json.loads(meta["thresholds"])
        json.loads(meta["adversary"])
    except (ValueError, TypeError) as exc:
        raise ContractError(f"malformed metadata ({exc})") from None
    problems = []
    if not isinstance(names, list) or not names:
        problems.append("class_names is not a non-empty JSON list")
    if min(sizes) < 1 or (meta["color_order"], channels) not in (("BGR", 3), ("GRAY", 1)):
        problems.append(f"input {sizes} x {channels} channels with color_order {meta['color_order']!r}")
    if meta["resize_interpolation"] not in INTERPOLATIONS:
        problems.append(f"resize_interpolation {meta['resize_interpolation']!r} not one of {', '.join(INTERPOLATIONS)}")
    if not 0.0 <= numbers["threshold"] <= 1.0:
        problems.append(f"threshold {numbers['threshold']} outside [0, 1]")
    if not isinstance(thresholds, list) or not all(isinstance(t, dict) and {"fpr", "threshold"} <= t.keys()
                                                     for t in thresholds):
        problems.append("thresholds is not a JSON list of {fpr, threshold}")
    if meta["precision"] not in PRECISIONS:
        problems.append(f"precision {meta['precision']!r} not one of {', '.join(PRECISIONS)}")
    if "familiarity" in meta:  # optional: the graph then has an `unfamiliarity` output
        try:
            float(json.loads(meta["familiarity"])["threshold"])
        except (ValueError, TypeError, KeyError):
            problems.append("familiarity is not a JSON object with a numeric threshold")
    if problems:
        raise ContractError("bad metadata: " + "; ".join(problems))
