"""`trainer audit`'s user errors: one line on stderr, exit code 2, before any slow work."""
import pytest
from typer.testing import CliRunner

from common.config import dump_config
from trainer.cli import app
from trainer.config import Config

DETECTOR = {"name": "deployed", "adversary": {"name": "iterative_linf", "eps": 4}}


def audit(run, *sets):
    result = CliRunner().invoke(app, ["audit", "--run", str(run), *[a for s in sets for a in ("--set", s)]])
    return result.exit_code, result.stderr.strip()


@pytest.fixture
def run(tmp_path):
    dump_config(Config.model_validate({"run_dir": str(tmp_path), "detectors": [DETECTOR], "deploy": "deployed"}),
                tmp_path / "config.yaml")
    return tmp_path


@pytest.mark.parametrize("sets, message", [
    ((), "detector 'deployed' is not trained"),
    (("audit.eps=[4, 0]",), "every eps must be positive"),
    (("audit.attacks=[{name: nope}]",), "unknown attack 'nope'"),
    (("audit.attacks=[{name: fast, params: {steps: 3}}]",), "fast takes no steps"),
    (("data.name=mnist",), "changes only audit.* and device"),
    (("audit.families=[{name: nope}]",), "families: unknown attack 'nope'"),
    (("audit.families=[{name: adaptive}]",), "adaptive attacks the detector"),
    (("audit.families=[{name: sparse_pgd, params: {pixels: 0}}]",), "sparse_pgd got a bad pixels"),
    (("audit.families=[{name: confined_pgd, params: {background: 300}}]",), "confined_pgd got a bad background"),
    (("audit.family_eps=[0]",), "every eps must be positive"),
])
def test_bad_input_is_one_line_and_exit_2(run, sets, message):
    code, err = audit(run, *sets)
    assert code == 2 and err.count("\n") == 0 and err.startswith("error: ") and message in err, err


def test_a_run_without_a_deployed_detector_is_refused(tmp_path):
    dump_config(Config.model_validate({"run_dir": str(tmp_path)}), tmp_path / "config.yaml")
    code, err = audit(tmp_path)
    assert code == 2 and "deploys no detector" in err and err.count("\n") == 0


def test_a_directory_that_is_no_run_is_refused(tmp_path):
    code, err = audit(tmp_path / "missing")
    assert code == 2 and "not a run directory" in err
