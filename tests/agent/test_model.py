"""Manifest/metadata checks, provider choice and preprocessing."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from agent.config import InferenceConfig
from agent.errors import ModelError
from agent.model import Detector, verify_model
from common.errors import UserError
from common.manifest import manifest_path
from fixture_model import build_fixture_model, make_frames


@pytest.fixture
def model_copy(model_path, tmp_path):
    dst = tmp_path / "model.onnx"
    shutil.copy(model_path, dst)
    shutil.copy(manifest_path(model_path), manifest_path(dst))
    return dst


def test_verified_model_exposes_metadata(model_path):
    info = verify_model(model_path)
    assert (info.height, info.width, info.channels) == (32, 32, 3)
    assert info.threshold == 0.5 and info.interpolation == cv2.INTER_AREA
    assert len(info.sha256) == 64 and info.class_names[0] == "t-shirt"


def test_missing_model(tmp_path):
    with pytest.raises(UserError, match="model not found"):
        verify_model(tmp_path / "absent.onnx")


def test_missing_manifest(model_copy):
    manifest_path(model_copy).unlink()
    with pytest.raises(UserError, match="no manifest"):
        verify_model(model_copy)


def test_truncated_model(model_copy):
    model_copy.write_bytes(model_copy.read_bytes()[:-100])
    with pytest.raises(UserError, match="truncated"):
        verify_model(model_copy)


def test_tampered_model(model_copy):
    data = bytearray(model_copy.read_bytes())
    data[-10] ^= 0xFF
    model_copy.write_bytes(bytes(data))
    with pytest.raises(UserError, match="tampered"):
        verify_model(model_copy)


def test_manifest_metadata_must_match_the_embedded_one(model_copy):
    manifest = json.loads(manifest_path(model_copy).read_text())
    manifest["metadata"]["threshold"] = "0.9"
    manifest_path(model_copy).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="differs from its manifest in threshold"):
        Detector(verify_model(model_copy), InferenceConfig())


def test_bad_metadata_is_refused(model_copy):
    manifest = json.loads(manifest_path(model_copy).read_text())
    manifest["metadata"]["format"] = "something/9"
    manifest_path(model_copy).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="format"):
        verify_model(model_copy)


def test_detector_prepares_and_scores(model_path):
    det = Detector(verify_model(model_path), InferenceConfig(intra_op_threads=1))
    assert det.provider == "CPUExecutionProvider"
    frames = make_frames(4, adversarial=[2])
    batch = np.stack([det.prepare(f) for f in frames])
    assert batch.shape == (4, 32, 32, 3) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch[0], cv2.resize(frames[0], (32, 32), interpolation=cv2.INTER_AREA))
    probs, p_adv, unfamiliarity = det.infer(batch)
    assert unfamiliarity is None, "the fixture model has no familiarity score"
    assert probs.shape == (4, 4) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert p_adv[2] > 0.9 and max(p_adv[[0, 1, 3]]) < 0.1


def test_grey_model_gets_grey_frames(tmp_path):
    det = Detector(verify_model(build_fixture_model(tmp_path / "g.onnx", channels=1)), InferenceConfig())
    assert det.prepare(make_frames(1)[0]).shape == (32, 32, 1)


def test_unusable_gpu_providers_fall_back_to_cpu_quietly(model_path, monkeypatch, capfd):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    det = Detector(verify_model(model_path), InferenceConfig(provider="auto"))
    assert det.provider == "CPUExecutionProvider"
    out, err = capfd.readouterr()
    assert err == "" and out == ""
