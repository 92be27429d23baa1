"""The command line: one-line errors with exit code 2, and `python -m export` as the shell-safe form."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from export.cli import app

runner = CliRunner()


def _error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_run_without_detector_is_a_clear_error(make_run, tmp_path):
    run_dir = make_run(tmp_path / "run")
    shutil.rmtree(run_dir / "detectors")
    assert "has no detector" in _error_line(runner.invoke(app, ["onnx", "--run", str(run_dir)]))


def test_run_without_classifier_is_a_clear_error(make_run, tmp_path):
    run_dir = make_run(tmp_path / "run")
    (run_dir / "classifier.pt").unlink()
    assert "no classifier.pt" in _error_line(runner.invoke(app, ["onnx", "--run", str(run_dir)]))


def test_several_detectors_need_a_choice(make_run, tmp_path):
    run_dir = make_run(tmp_path / "run", detectors=("ad2", "ad3"))
    assert "choose one with --detector: ad2, ad3" in _error_line(runner.invoke(app, ["onnx", "--run", str(run_dir)]))
    assert "no detector 'ad9'" in _error_line(
        runner.invoke(app, ["onnx", "--run", str(run_dir), "--detector", "ad9"]))


def test_verify_refuses_a_tampered_file(exported, tmp_path):
    path = tmp_path / "m.onnx"
    data = bytearray(exported[0].read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    shutil.copy(exported[0].with_name(exported[0].name + ".manifest.json"), tmp_path / "m.onnx.manifest.json")
    assert "tampered" in _error_line(runner.invoke(app, ["verify", str(path)]))


def test_verify_ok(exported, run_dir):
    result = runner.invoke(app, ["verify", str(exported[0]), "--run", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("ok")


def test_help_documents_every_option():
    for command, options in {"onnx": ["--run", "--detector", "--out", "--precision", "--atol", "--max-auroc-drop",
                                      "--min-agreement", "--force"],
                             "verify": ["--run", "--detector", "--atol", "--max-auroc-drop", "--min-agreement"]}.items():
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0
        assert all(option in result.stdout for option in options)


@pytest.mark.parametrize("argv", [["--precision", "int4"], ["--atol", "-1"]])
def test_bad_options_exit_2(run_dir, argv):
    assert runner.invoke(app, ["onnx", "--run", str(run_dir), *argv]).exit_code == 2


def test_python_dash_m_export_onnx(run_dir, tmp_path):
    """`export` is a shell builtin; `python -m export onnx` is the form the README shows."""
    out = tmp_path / "m.onnx"
    result = subprocess.run([sys.executable, "-m", "export", "onnx", "--run", str(run_dir), "--out", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert out.is_file() and (tmp_path / "m.onnx.manifest.json").is_file()
    assert f"wrote {out}" in result.stdout
