import json
import sys

import pytest
from detect.tiny_run import TRAIN, make_ctx

from trainer import checkpoint
from trainer.detect import run_detector_stage
from trainer.detect import stage as stage_module
from trainer.experiments import adaptive as adaptive_module
from trainer.experiments import run_experiments

FIGURES = ["fig2_left", "fig2_right", "fig3", "fig4", "fig5", "adaptive"]
SMALL = {**TRAIN, "epochs": 2, "train_limit": 100, "val_limit": 50, "test_limit": 50}
CONFIG = {
    "detectors": [{"name": "deployed", "adversary": {"name": "iterative_linf", "eps": 8}, "point": 2, **SMALL}],
    "deploy": "deployed",
    "experiments": {
        "enabled": True, "train": SMALL,
        "adversaries": [{"name": "fast", "eps": [8, 16], "point": 2}, {"name": "iterative_linf", "eps": [8], "point": 2}],
        "fig2": {"points": [1, 2]},
        "fig5": {"eps": 8, "sigmas": [0.0, 0.5], "params": {"alpha": 4}, "harden_static": True,
                 "dynamic_train": {**SMALL, "epochs": 1}},
        "adaptive": {"params": {"steps": 4, "restarts": 1}},
    },
}


@pytest.fixture(scope="module")
def run(tiny_dataset, classifier_file, tmp_path_factory):
    ctx = make_ctx(tmp_path_factory.mktemp("run"), classifier_file, tiny_dataset, CONFIG)
    run_detector_stage(ctx)
    run_experiments(ctx)
    return ctx


def test_each_experiment_writes_its_figure_and_table(run):
    out = run.run_dir / "experiments"
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 1000, name
        assert json.loads((out / f"{name}.json").read_text()), name
    report = (run.run_dir / "report.md").read_text()
    for name in FIGURES:
        assert f"experiments/{name}.png" in report
    left = json.loads((out / "fig2_left.json").read_text())["rows"]
    assert [r["adversary"] for r in left] == ["No", "fast", "fast", "iterative_linf"]
    assert all(0 <= r["accuracy"] <= 1 and 0 <= r["detectability"] <= 1 for r in left)
    fig3 = json.loads((out / "fig3.json").read_text())["panels"]
    assert list(fig3) == ["fast"] and len(fig3["fast"]["values"]) == 2  # iterative_linf has a single eps
    fig5 = json.loads((out / "fig5.json").read_text())["rows"]
    assert {(r["detector"], r["sigma"]) for r in fig5} == {(d, s) for d in ("static", "dynamic") for s in (0.0, 0.5)}
    dynamic = checkpoint.load(run.run_dir / "detectors" / "x-dynamic-dynamic-eps8-alpha4-ad2" / "detector.pt")["spec"]
    assert dynamic["init_from"] == "x-static-iterative_linf-eps8-ad2" and dynamic["epochs"] == 1  # fig5.dynamic_train
    # Fig. 2 left/right, Fig. 3/4 and Fig. 5's static detector share one cache entry per (attack, depth).
    names = sorted(p.name for p in (run.run_dir / "detectors").iterdir())
    assert names == ["deployed", "x-dynamic-dynamic-eps8-alpha4-ad2", "x-static-fast-eps16-ad1", "x-static-fast-eps16-ad2",
                     "x-static-fast-eps8-ad2", "x-static-iterative_linf-eps8-ad1", "x-static-iterative_linf-eps8-ad2"]


def test_rerunning_a_finished_config_does_no_work(run, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("did work again")

    fig5_module = sys.modules["trainer.experiments.fig5"]  # the package exports a function of the same name
    for module, name in [(stage_module, "train_detector"), (stage_module, "twins"), (fig5_module, "run_attack"),
                         (adaptive_module, "run_attack")]:
        monkeypatch.setattr(module, name, fail)
    run_detector_stage(run)
    run_experiments(run)
