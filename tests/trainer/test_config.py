import pytest
from typer.testing import CliRunner

from common.config import ConfigError, load_config
from trainer.cli import app
from trainer.config import Config


def test_shipped_configs_validate():
    for name in ("cifar", "fashion-mnist", "demo"):
        cfg = load_config(Config, f"configs/{name}.yaml")
        assert cfg.train.momentum == 0.9


def test_cifar_config_is_the_papers_recipe():
    t = load_config(Config, "configs/cifar.yaml").train
    assert (t.epochs, t.lr, t.lr_milestones, t.lr_gamma) == (100, 0.1, [41, 61], 0.1)


def test_overrides_are_typed():
    cfg = load_config(Config, "configs/cifar.yaml", ["train.epochs=3", "train.lr_milestones=[1, 2]", "data.train_limit=10"])
    assert cfg.train.epochs == 3 and cfg.train.lr_milestones == [1, 2] and cfg.data.train_limit == 10


@pytest.mark.parametrize("yaml_text, fragment", [
    ("train:\n  epochs: 3\n  learning_rate: 0.1\n", "line 3: train.learning_rate: unknown key"),
    ("train:\n  epochs: many\n", "line 2: train.epochs"),
    ("model:\n  depth: 33\n", "line 2: model.depth"),
    ("data: [1, 2\n", "invalid YAML"),
])
def test_bad_config_is_one_line_naming_key_and_line(tmp_path, yaml_text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config(Config, path)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_bad_override_and_missing_file():
    with pytest.raises(ConfigError, match="train.momentum"):
        load_config(Config, "configs/cifar.yaml", ["train.momentum=2"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(Config, "configs/cifar.yaml", ["train.epochs"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(Config, "configs/nope.yaml")


def test_cli_reports_bad_config_in_one_line_with_exit_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: -1\n")
    result = CliRunner().invoke(app, ["fit", "--config", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and "train.epochs" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_help_documents_every_option():
    result = CliRunner().invoke(app, ["fit", "--help"])
    for option in ("--config", "--set", "--run-dir"):
        assert option in result.output


def test_an_error_in_an_override_names_the_override_not_a_file_line():
    with pytest.raises(ConfigError) as err:
        load_config(Config, "configs/cifar.yaml", ["train.momentum=2"])
    assert str(err.value).startswith("--set: train.momentum") and "line" not in str(err.value)


@pytest.mark.parametrize("change, ok", [({}, True), ({"point": 3}, False), ({"arch": "imagenet"}, False),
                                        ({"init_from": "later"}, False)])
def test_init_from_needs_an_earlier_detector_of_the_same_shape(change, ok):
    base = {"name": "static", "adversary": {"name": "iterative_linf", "eps": 4}, "point": 2}
    hardened = {"name": "dynamic", "adversary": {"name": "dynamic", "eps": 4}, "point": 2, "mode": "dynamic",
                "init_from": "static", **change}
    later = {**base, "name": "later"}
    tree = {"detectors": [base, hardened, later]}
    if ok:
        Config.model_validate(tree)
    else:
        with pytest.raises(ValueError, match="init_from must name an earlier detector"):
            Config.model_validate(tree)


@pytest.mark.parametrize("change, ok", [({}, True), ({"either": ["later"]}, False), ({"either": ["nowhere"]}, False),
                                        ({"point": 2}, False), ({"mode": "dynamic", "adversary": {"name": "dynamic", "eps": 4}}, False),
                                        ({"width": 16}, False)])
def test_either_ors_only_earlier_static_detectors_of_the_same_shape(change, ok):
    member = {"name": "object", "arch": "frame", "point": 0, "adversary": {"name": "confined_pgd", "eps": 16}}
    alarm = {**member, "name": "alarm", "adversary": {"name": "pgd", "eps": 4}, "either": ["object"], **change}
    tree = {"detectors": [member, alarm, {**member, "name": "later"}]}
    if ok:
        Config.model_validate(tree)
    else:
        with pytest.raises(ValueError, match="either"):
            Config.model_validate(tree)


ADAPTIVE = {"name": "adaptive", "adversary": {"name": "adaptive", "eps": 4, "threshold": 0.5, "steps": 10},
            "mode": "adaptive", "init_from": "static", "eps_range": [2, 16], "eps_ramp_epochs": 2,
            "paper_adversary": {"name": "dynamic", "eps": 4, "alpha": 0.5}}


@pytest.mark.parametrize("change, error", [
    ({}, None),
    ({"paper_adversary": {"name": "iterative_linf", "eps": 4}}, None),
    ({"init_from": None}, "set init_from"),
    ({"mode": "dynamic"}, "do not fit"),
    ({"adversary": {"name": "iterative_linf", "eps": 4}}, "do not fit"),
    ({"adversary": {"name": "adaptive", "eps": 4, "threshold": 0.5, "norm": "l2"}}, "must be linf"),
    ({"eps_range": [8, 2]}, "0 < lo <= hi"),
    ({"paper_adversary": {"name": "dynamic", "eps": 4, "sigma": 0.5}}, "draws sigma"),
    ({"paper_share": 1.5}, "paper_share"),
    ({"eps_rnage": [2, 8]}, "eps_rnage"),
])
def test_adaptive_mode_config(change, error):
    base = {"name": "static", "adversary": {"name": "iterative_linf", "eps": 4}}
    tree = {"detectors": [base, {**ADAPTIVE, **change}]}
    if error is None:
        assert Config.model_validate(tree).detectors[1].mode == "adaptive"
    else:
        with pytest.raises(ValueError, match=error):
            Config.model_validate(tree)


def test_adaptive_settings_are_rejected_in_other_modes():
    with pytest.raises(ValueError, match="mode adaptive only"):
        Config.model_validate({"detectors": [{"name": "s", "adversary": {"name": "iterative_linf", "eps": 4},
                                              "eps_range": [2, 8]}]})


@pytest.mark.parametrize("override, fragment", [
    ("train.adversarial={method: pgd, eps: -4}", "train.adversarial.eps"),
    ("train.adversarial={method: trades, eps: 4}", "train.adversarial.method"),
    ("train.adversarial={eps: 4}", "train.adversarial.method"),
    ("train.adversarial={method: pgd, eps: 8, confined: {eps: 24}}", "confined needs method fgsm_rs, got pgd"),
    ("train.adversarial.confined={eps: 24, share: 0}", "train.adversarial.confined.share"),
    ("calibration.corruptions=[gaussian_noise, rain]", "unknown corruption 'rain'"),
    ("detectors=[{name: s, adversary: {name: iterative_linf, eps: 4}, negatives: [snow]}]", "unknown corruption 'snow'"),
    ("detectors=[{name: s, adversary: {name: iterative_linf, eps: 4}, positives: [{name: dynamic, eps: 4}]}]",
     "positives are static"),
    # An attack on the detector cannot be precomputed before the detector trains: refused at load, not after the classifier.
    ("detectors=[{name: s, adversary: {name: iterative_linf, eps: 4}, positives: [{name: selective_pgd, eps: 4, threshold: 0.5}]}]",
     "selective_pgd attacks the detector"),
    ("detectors=[{name: s, adversary: {name: orthogonal_pgd, eps: 4, threshold: 0.5}}]", "do not fit"),
    ("detectors=[{name: s, adversary: {name: iterative_linf, eps: 4}, point: 7}]", "unknown attachment point 7"),
    ("detectors=[{name: s, adversary: {name: iterative_linf, eps: 4}, arch: resnet}]", "unknown detector arch 'resnet'"),
    ("detectors=[{name: s, adversary: {name: dynamic, eps: 4}, mode: dynamic, select: tpr}]", "mode static only"),
    ("detectors=[{name: s, adversary: {name: iterative_linf, eps: 4}, negative_severities: [5]}]", "severity 5 is outside"),
    ("detectors=[{name: s, adversary: {name: iterative_linf, eps: 4}, negatives: [jpeg], negative_share: 0.8, "
     "scene_share: 0.3}]", "add up to more than 1"),
    ("calibration.rule=worst", "Input should be 'pooled' or 'each'"),
    ("detectors=[{name: s, adversary: {name: iterative_linf, eps: 4}, negatives: [jpeg], negative_weights: {haze: 2}}]",
     "negative_weights names haze, not among negatives"),
    ("detectors=[{name: s, adversary: {name: iterative_linf, eps: 4}, familiar_attempts: true}]",
     "familiar_attempts fits familiarity on the static twins"),
    ("calibration.severities=[1, 4]", "severity 4 is outside 1..3"),
    ("calibration.severities=[0]", "severity 0 is outside 1..3"),
])
def test_bad_robust_training_values_are_one_line_with_exit_2(override, fragment):
    result = CliRunner().invoke(app, ["fit", "--config", "configs/demo.yaml", "--set", override])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and fragment in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_robust_training_keys_leave_earlier_runs_valid():
    from trainer.rundir import classifier_stamp

    cfg = load_config(Config, "configs/cifar.yaml")
    assert "adversarial" not in classifier_stamp(cfg)["train"]
    robust = load_config(Config, "configs/cifar.yaml", ["train.adversarial={method: fgsm_rs, eps: 4}"])
    assert classifier_stamp(robust)["train"]["adversarial"]["method"] == "fgsm_rs"
    assert "confined" not in classifier_stamp(robust)["train"]["adversarial"]
    confined = load_config(Config, "configs/cifar.yaml", ["train.adversarial={method: fgsm_rs, eps: 4, confined: {eps: 16}}"])
    assert classifier_stamp(confined)["train"]["adversarial"]["confined"]["eps"] == 16


def test_camera_frames_for_the_classifier_leave_earlier_runs_valid():
    from trainer.rundir import classifier_stamp

    cfg = load_config(Config, "configs/cifar.yaml")
    assert "camera_share" not in classifier_stamp(cfg)["train"]["augment"]
    camera = load_config(Config, "configs/cifar.yaml", ["train.augment.camera_share=0.5"])
    assert classifier_stamp(camera)["train"]["augment"]["camera_share"] == 0.5
