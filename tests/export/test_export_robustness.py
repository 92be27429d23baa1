"""The audit's summary travels in the model's metadata under `robustness`, only for the checkpoints it audited."""
import json
import shutil

import onnx

from common.robustness import describe
from export.metadata import read
from export.pipeline import export_onnx
from trainer import checkpoint

SUMMARY_RESULT = {  # the fields of audit.json that the summary reads
    "headline_eps": 4.0, "norm": "linf", "correct": 40, "clean_fpr": 0.025,
    "attacks": [{"attack": "adaptive", "threat": "bounded"}, {"attack": "fast", "threat": "bounded"}],
    "worst_case": [{"eps": 2.0, "undetected": 0.1}, {"eps": 4.0, "undetected": 0.35}],
    "corruptions": [{"severity": 0, "fpr": 0.025}, {"severity": 1, "fpr": 0.2}, {"severity": 3, "fpr": 0.6}],
}


def audited_copy(run_dir, tmp_path, detector_sha256=None):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    stamp = {"classifier_sha256": checkpoint.sha256(run / "classifier.pt"),
             "detector_sha256": detector_sha256 or checkpoint.sha256(run / "detectors" / "ifgsm" / "detector.pt")}
    (run / "audit").mkdir()
    (run / "audit" / "audit.json").write_text(json.dumps({**SUMMARY_RESULT, "stamp": stamp}))
    return run


def test_an_audited_run_ships_its_worst_case(run_dir, tmp_path):
    path, report = export_onnx(audited_copy(run_dir, tmp_path), out=tmp_path / "m.onnx")
    meta = read(onnx.load(str(path)))
    shipped = json.loads(meta["robustness"])
    upper = shipped.pop("worst_case_undetected_upper")
    assert shipped == {"eps": 4.0, "norm": "linf", "images": 40, "attacks": ["adaptive", "fast"],
                       "worst_case_undetected": 0.35, "clean_fpr": 0.025, "benign_fpr_max": 0.2,
                       "benign_fpr_max_severe": 0.6,
                       "calibration": "clean"}  # an audit from before calibration sets were named: clean ones
    assert abs(upper - 0.5049) < 1e-3  # Wilson's 95% upper bound of 14 in 40
    line = describe(meta)
    assert "35.0% (95% upper bound 50.5%)" in line and "linf eps 4" in line
    assert "20.0% at severity 1-2, 60.0% at 3" in line and "set on clean validation" in line
    assert f"robustness: {line}" in report


def test_an_unaudited_or_stale_audit_is_not_shipped(run_dir, exported, tmp_path):
    assert "robustness" not in read(onnx.load(str(exported[0])))
    assert any("robustness: not audited" in line for line in exported[1])
    path, _ = export_onnx(audited_copy(run_dir, tmp_path, detector_sha256="0" * 64), out=tmp_path / "m.onnx")
    assert "robustness" not in read(onnx.load(str(path)))  # the audit was of another detector
