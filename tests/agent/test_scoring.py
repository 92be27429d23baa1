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


def test_a_burst_is_the_labels_run_whatever_the_agent_judged(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"adversarial": [3, 4, 5, 6, 7, 20, 21],
                                "kinds": {"sparse": [3, 4, 5, 6, 7], "patch": [20, 21]}}))
    score = LabelledScore.load(path)
    for i in range(25):
        if i in (5, 20, 21):  # unfamiliar: not judged, inside the first burst and the whole second one
            score.unfamiliar(i)
        else:
            score.frame(i, i in (3, 4, 6, 7))
    score.alert(7)
    lines = score.lines()
    assert "sparse bursts: detection 4/4 = 100.0%, alerted on 1/1 bursts" in lines
    assert "patch bursts: detection n/a, alerted on 0/1 bursts" in lines


def test_labels_without_kinds_keep_the_overall_summary(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"adversarial": [1]}))
    score = LabelledScore.load(path)
    score.frame(1, True)
    assert len(score.lines()) == 3 and "1/1 = 100.0%" in score.lines()[0]


def test_silent_misclassifications_per_burst_kind(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"adversarial": [3, 4, 5, 10, 11], "classes": [i % 4 for i in range(20)],
                                "kinds": {"oblivious": [3, 4, 5], "adaptive": [10, 11]}}))
    score = LabelledScore.load(path)
    fooled, flagged = {3, 4, 10, 11, 12}, {3, 11, 12}  # 12 is clean: a wrong class there is no attack's doing
    for i in range(20):
        if i == 5:
            score.unfamiliar(i)
        else:
            score.frame(i, i in flagged, (i + 1) % 4 if i in fooled else i % 4)
    assert score.silent("oblivious") == {"frames": 2, "fooled": 2, "flagged": 1, "silent": 1, "unfamiliar": 1}
    assert score.lines()[-2:] == [
        "oblivious: 2 frames, 2 fooled the classifier, 1 of them flagged, 1 silent misclassifications "
        "(1 more frames unfamiliar: not judged)",
        "adaptive: 2 frames, 2 fooled the classifier, 1 of them flagged, 1 silent misclassifications"]


def test_labels_without_classes_have_no_silent_lines(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"adversarial": [1], "kinds": {"oblivious": [1]}}))
    score = LabelledScore.load(path)
    score.frame(1, False, 0)
    assert len(score.lines()) == 4 and not any("silent" in line for line in score.lines())
