"""The security audit on the tiny trained run: worst case, monotonicity in budget, unbounded budget, caching, outputs."""
import json

import pytest

from common.stats import wilson_interval
from detect.tiny_run import TRAIN, make_ctx

from trainer.audit import runner
from trainer.audit.stage import audit_run
from trainer.audit.summary import robustness
from trainer.audit.target import load_target
from trainer.detect import run_detector_stage

# A detector trained for seconds: the audit needs a trained one, not a good one.
DETECTOR = {"name": "deployed", "adversary": {"name": "iterative_linf", "eps": 8}, "point": 2,
            **TRAIN, "epochs": 2, "train_limit": 100, "val_limit": 50, "test_limit": 50}
# Small budgets so the module runs in seconds; the test split's last 60 images, no footage (tested apart).
AUDIT = {"images": 60, "eps": [4, 16], "steps": 8, "restarts": 2, "batch_size": 100, "footage": [],
         "tpr_eps": {"linf": [8, 32]},
         "attacks": [{"name": "fast"}, {"name": "iterative_linf", "params": {"steps": 5, "alpha": 2}},
                     {"name": "deepfool_linf", "params": {"max_iter": 5}}, {"name": "adaptive"},
                     {"name": "square_adaptive", "params": {"queries": 50}},
                     {"name": "patch", "params": {"steps": 3, "restarts": 1}}],
         # The family table: the detector trains on iterative_linf (family pgd) only.
         "families": [{"name": "pgd", "params": {"steps": 3}}, {"name": "low_frequency_pgd", "params": {"steps": 3}},
                      {"name": "sparse_pgd", "params": {"pixels": 4, "steps": 3}}],
         "family_eps": [8, 32]}


@pytest.fixture(scope="module")
def run(tiny_dataset, classifier_file, tmp_path_factory):
    ctx = make_ctx(tmp_path_factory.mktemp("run"), classifier_file, tiny_dataset,
                   {"detectors": [DETECTOR], "deploy": "deployed", "audit": AUDIT})
    run_detector_stage(ctx)
    return ctx


@pytest.fixture(scope="module")
def result(run):
    return audit_run(run, progress=False)


def undetected(result, attack, eps):
    return next(r["undetected"] for r in result["attacks"] if r["attack"] == attack and r["eps"] == eps)


def test_worst_case_is_at_least_every_single_attack(result):
    assert result["correct"] > 30  # the tiny classifier gets most of its 60 images right
    for w in result["worst_case"]:
        singles = [r["undetected"] for r in result["attacks"] if r["eps"] == w["eps"]]
        assert len(singles) == (1 if w["eps"] is None else 5) and w["undetected"] >= max(singles)
        assert w["undetected"] <= min(1.0, sum(singles))


def test_undetected_error_does_not_fall_when_eps_grows(result):
    curve = [w["undetected"] for w in result["worst_case"] if w["threat"] == "bounded"]
    assert curve == sorted(curve) and curve[-1] > curve[0]


def test_gradient_free_search_does_not_beat_the_white_box_worst_case(result):
    """If it did by more than a few points, the white-box attacks' gradients would be masked (Tramer et al. 2020)."""
    for eps in (4, 16):
        white = set().union(*(r["wins"] for r in result["attacks"] if r["eps"] == eps and r["attack"] != "square_adaptive"))
        assert undetected(result, "square_adaptive", eps) <= len(white) / result["correct"] + 0.1


def adaptive_only(run, **update):
    """The audit config of `run` with the adaptive attack alone and nothing else measured."""
    adaptive = [a for a in run.cfg.audit.attacks if a.name == "adaptive"]
    return run.cfg.audit.model_copy(update={"attacks": adaptive, "corruptions": False, "tpr_eps": {}, **update})


def test_more_steps_do_not_lower_the_adaptive_attacks_score(run, result):
    stronger = runner.audit(adaptive_only(run, steps=24, eps=[16.0]), load_target(run, 60), progress=False)
    # Random restarts differ between the runs: one image of slack.
    assert undetected(stronger, "adaptive", 16) >= undetected(result, "adaptive", 16) - 1 / result["correct"]


def test_an_unbounded_budget_evades_on_about_every_image(run):
    out = runner.audit(adaptive_only(run, steps=20, eps=[255.0]), load_target(run, 60), progress=False)
    assert out["worst_case"][0]["undetected"] >= 0.9


def test_outputs_and_rerun_does_no_work(run, result, monkeypatch):
    out = run.run_dir / "audit"
    for name in ("security_curve.png", "tpr_by_size.png"):
        assert (out / name).stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "**worst case**" in report and "haze" in report
    assert json.loads((out / "audit.json").read_text())["stamp"]["detector"] == "deployed"
    assert result["overlap_with_detector_evaluation"] == 0  # the detector scored the first 50 test images, the audit the last 60
    assert len(result["corruptions"]) == 1 + 8 * 3 and all(0 <= r["fpr"] <= 1 for r in result["corruptions"])
    tpr = {(r["norm"], r["eps"]): r for r in result["tpr_by_size"]}
    assert tpr[("linf", 32)]["fooled"] >= tpr[("linf", 8)]["fooled"]

    monkeypatch.setattr(runner, "run_attack", lambda *a, **k: pytest.fail("did work again"))
    assert audit_run(run, progress=False)["stamp"] == result["stamp"]


def test_robustness_summary_names_the_headline_eps(result):
    summary = robustness(result)
    assert summary["eps"] == 16 and summary["norm"] == "linf" and summary["images"] == result["correct"]
    assert summary["worst_case_undetected"] == result["worst_case"][1]["undetected"]
    assert summary["attacks"] == ["adaptive", "deepfool_linf", "fast", "iterative_linf", "square_adaptive"]
    assert summary["patch_undetected"] == result["worst_case"][-1]["undetected"]  # the sticker, its own threat model
    assert summary["benign_fpr_max"] == max(r["fpr"] for r in result["corruptions"] if r["severity"] in (1, 2))
    assert summary["benign_fpr_max_severe"] == max(r["fpr"] for r in result["corruptions"] if r["severity"] == 3)
    n = summary["images"]
    assert summary["worst_case_undetected"] <= summary["worst_case_undetected_upper"] <= 1
    assert summary["worst_case_undetected_upper"] == wilson_interval(round(summary["worst_case_undetected"] * n), n)[1]


def test_the_family_table_says_which_families_the_detector_never_trained_on(result):
    f = result["families"]
    assert f["trained_families"] == ["pgd"]
    assert {(r["family"], r["trained"]) for r in f["rows"]} == {("pgd", True), ("low-frequency", False), ("sparse", False)}
    assert [d["domain"] for d in f["domains"]] == ["data set", "camera"]
    # Every family on both domains, at each budget, or once at its own (sparse: 4 pixels).
    assert len(f["rows"]) == 2 * (2 + 2 + 1)
    for r in f["rows"]:
        assert 0 <= r["silent"] <= r["fooled"] and r["silent_count"] == round(r["silent"] * r["images"])
        assert (r["eps"] is None) == (r["family"] == "sparse")


def test_the_shipped_headline_is_the_worst_family(result):
    shipped = robustness(result)["families"]
    rows = result["families"]["rows"]
    for w in shipped["worst"]:
        cells = [r["silent"] for r in rows if r["eps"] == w["eps"]]
        assert w["silent"] == max(cells) and w["silent"] <= w["silent_upper"] <= 1
    assert shipped["worst_beyond_eps"]["family"] == "sparse"
