"""Metadata reaches the agent intact: through onnxruntime's model meta and through the manifest."""
from __future__ import annotations

import json

from export import metadata
from common.metadata import ModelMetadata
from common.files import sha256_file
from common.manifest import manifest_path
from export.verify import open_session
from trainer import checkpoint


def test_metadata_round_trips_through_onnxruntime(run_dir, exported):
    meta = dict(open_session(exported[0]).get_modelmeta().custom_metadata_map)
    assert {k for k, f in ModelMetadata.model_fields.items() if f.is_required()} <= set(meta)
    assert meta["format"] == "adversary-detector/1"
    assert json.loads(meta["class_names"]) == ["t-shirt", "trouser", "bag", "boot"]
    assert (meta["input_height"], meta["input_width"], meta["input_channels"]) == ("16", "16", "3")
    assert meta["color_order"] == "BGR" and meta["resize_interpolation"] == "area"
    det = checkpoint.load(run_dir / "detectors/ifgsm/detector.pt")
    assert float(meta["threshold"]) == det["threshold"] and float(meta["threshold_fpr"]) == 0.01
    assert json.loads(meta["thresholds"]) == det["thresholds"]
    assert meta["attach_point"] == "AD(2)" and meta["detector_mode"] == "static"
    assert json.loads(meta["adversary"]) == {"name": "iterative_linf", "eps": 2}
    assert meta["dataset"] == "cifar10" and float(meta["test_accuracy"]) == 0.51
    assert float(meta["detectability"]) == 0.93 and float(meta["auroc"]) == 0.97
    assert meta["classifier_sha256"] == checkpoint.sha256(run_dir / "classifier.pt")
    assert meta["detector_sha256"] == checkpoint.sha256(run_dir / "detectors/ifgsm/detector.pt")
    assert meta["precision"] == "fp32" and meta["package_version"]


def test_manifest_holds_hash_size_and_metadata(exported):
    path = exported[0]
    manifest = json.loads(manifest_path(path).read_text())
    assert manifest["file"] == path.name
    assert manifest["sha256"] == sha256_file(path) and manifest["size"] == path.stat().st_size
    assert manifest["metadata"] == dict(open_session(path).get_modelmeta().custom_metadata_map)
