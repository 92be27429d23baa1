"""The audit's summary travels in the model's metadata under `robustness`, only for the checkpoints it audited."""
import json
import shutil

import onnx

from common.robustness import describe, describe_families
from common.stats import wilson_interval
from export.metadata import read
from export.pipeline import export_onnx
from trainer import checkpoint
from trainer.audit.summary import robustness

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


def family_row(family, domain, eps, silent, trained, flagged=0.5, images=100):
    budget = f"l_inf {eps:g}" if eps is not None else "16 pixels"
    return {"family": family, "domain": domain, "eps": eps, "budget": budget, "trained": trained, "images": images,
            "attempts_flagged": flagged, "silent": silent, "silent_count": round(silent * images)}


def test_the_family_table_ships_and_prints_with_its_worst_cell():
    rows = [family_row("pgd", "data set", 4.0, 0.01, True), family_row("pgd", "data set", 16.0, 0.02, True),
            family_row("low-frequency", "camera", 4.0, 0.0, False), family_row("low-frequency", "camera", 16.0, 0.2, False),
            family_row("sparse", "camera", None, 0.1, False)]
    graded = {"rows": rows, "trained_families": ["pgd"],
              "domains": [{"domain": "data set", "flagged": 0.01}, {"domain": "camera", "flagged": 0.03}]}
    shipped = json.loads(json.dumps(robustness({**SUMMARY_RESULT, "families": graded})))  # as the metadata holds it
    worst = {w["eps"]: w for w in shipped["families"]["worst"]}
    assert worst[4.0]["family"] == "pgd" and worst[16.0]["family"] == "low-frequency"
    assert abs(worst[16.0]["silent_upper"] - wilson_interval(20, 100)[1]) < 1e-9
    lines = describe_families({"robustness": json.dumps(shipped)})
    assert "camera 3.0%" in lines[0]
    assert any(line.split()[:2] == ["pgd*", "data"] and "0.50 0.50" in line and "1.0% 2.0%" in line for line in lines)
    assert any(line.split()[0] == "low-frequency" for line in lines)  # no star: never trained on
    assert lines[-1].startswith("worst cell: low-frequency (not trained on) on camera frames at l_inf 16: silent "
                                "misclassifications 20.0% (95% upper bound")
    assert describe_families({}) == [] and describe_families({"robustness": json.dumps(SUMMARY_RESULT)}) == []
