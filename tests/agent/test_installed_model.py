"""`agent watch --camera 0` without --model runs the installed model (model.path), or says where it looked."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.config import AgentConfig
from conftest import write_config, write_sequence
from fixture_model import make_frames
from test_cli import one_error_line

runner = CliRunner()
INSTALLED = AgentConfig().model.path


def test_the_default_is_where_the_unit_installs_the_model():
    assert INSTALLED == Path("/usr/share/adversary-detector/model.onnx")
    unit = (Path(__file__).parents[2] / "configs" / "adversary-detector-agent.service").read_text()
    assert f"--model {INSTALLED}" in unit


@pytest.mark.skipif(INSTALLED.exists(), reason="a model is installed on this machine")
@pytest.mark.parametrize("command", ["watch", "check"])
def test_no_installed_model_is_one_error_line_saying_where_it_looked(command):
    one_error_line(runner.invoke(app, [command, "--camera", "0"]), str(INSTALLED), "--model FILE", "model.path")


def test_model_path_runs_without_model_option(tmp_path, model_path):
    sequence = write_sequence(tmp_path / "seq", make_frames(6, adversarial=[2]))
    cfg = write_config(tmp_path / "a.yaml", tmp_path, model={"path": str(model_path)})
    result = runner.invoke(app, ["watch", "--source", sequence, "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "summary: 6 frames" in result.stderr and "1 alert(s)" in result.stderr
    missing = tmp_path / "nowhere" / "model.onnx"
    one_error_line(runner.invoke(app, ["watch", "--source", sequence, "--config", str(cfg),
                                       "--set", f"model.path={missing}"]), str(missing))
