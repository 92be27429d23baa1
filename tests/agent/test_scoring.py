"""Scoring a labelled replay per burst kind (agent/scoring.py)."""
import json

from agent.scoring import LabelledScore


def test_detection_is_reported_per_burst_kind(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"adversarial": [3, 4, 5, 10, 11, 20, 21],
                                "kinds": {"oblivious": [3, 4, 5, 20, 21], "adaptive": [10, 11]}}))
    score = LabelledScore.load(path)
    flagged = {3, 4, 11}
    for i in range(25):
        score.frame(i, i in flagged)
    score.alert(4)
    lines = score.lines()
    assert "detection rate on adversarial frames: 3/7 = 42.9%" in lines
    assert "oblivious bursts: detection 2/5 = 40.0%, alerted on 1/2 bursts" in lines
    assert "adaptive bursts: detection 1/2 = 50.0%, alerted on 0/1 bursts" in lines


def test_labels_without_kinds_keep_the_overall_summary(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"adversarial": [1]}))
    score = LabelledScore.load(path)
    score.frame(1, True)
    assert len(score.lines()) == 3 and "1/1 = 100.0%" in score.lines()[0]
