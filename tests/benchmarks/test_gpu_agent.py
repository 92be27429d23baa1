"""The CPU-side parts of benchmarks/gpu_agent.sh: the wheel carried in parts, its install into a target
directory ahead of the CPU onnxruntime, and the one-line error when CUDA is asked for and cannot load."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "agent"))
from fixture_model import build_fixture_model, make_frames  # noqa: E402

from agent.cli import app  # noqa: E402

PARTS = ROOT / "benchmarks" / "wheel_parts.py"


def parts_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PARTS), *map(str, args)], capture_output=True, text=True)


def one_error_line(proc) -> str:
    """The run's only output line, which must be an `error:` line after exit code 2."""
    lines = (proc.stdout + proc.stderr).splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (proc.returncode, lines)
    return lines[0]


def stand_in_wheel(folder: Path) -> Path:
    """A minimal wheel of a package named onnxruntime, made with zipfile: nothing is built or downloaded."""
    files = {
        "onnxruntime/__init__.py": "__version__ = '0.0.1'\n\n\ndef get_available_providers():\n"
                                   "    return ['CUDAExecutionProvider', 'CPUExecutionProvider']\n",
        "onnxruntime-0.0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: onnxruntime\nVersion: 0.0.1\n",
        "onnxruntime-0.0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                             "Tag: py3-none-any\n",
    }
    record = [f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()}"
              f",{len(text.encode())}" for name, text in files.items()]
    files["onnxruntime-0.0.1.dist-info/RECORD"] = "\n".join(record + ["onnxruntime-0.0.1.dist-info/RECORD,,"]) + "\n"
    wheel = folder / "onnxruntime-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return wheel


@pytest.fixture
def split_file(tmp_path):
    """A 3 MiB file of pseudo-random bytes split into 1 MiB parts: (file, parts folder, manifest)."""
    data = hashlib.shake_256(b"gpu_agent").digest(3 * 2**20 + 123)
    file = tmp_path / "big.whl"
    file.write_bytes(data)
    parts = tmp_path / "parts"
    assert parts_cli("split", file, parts, "--part-mib", 1).returncode == 0
    return file, parts, json.loads((parts / "manifest.json").read_text())


def test_split_then_join_gives_the_same_file(split_file, tmp_path):
    file, parts, manifest = split_file
    assert [p["size"] for p in manifest["parts"]] == [2**20] * 3 + [123]
    assert manifest["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    joined = parts_cli("join", parts, tmp_path / "out", "--sha256", manifest["sha256"])
    assert joined.returncode == 0, joined.stderr
    assert Path(joined.stdout.strip()).read_bytes() == file.read_bytes()


def test_check_reports_the_parts_still_to_come(split_file):
    _, parts, manifest = split_file
    (parts / manifest["parts"][3]["name"]).unlink()
    done = parts_cli("check", parts)
    assert done.returncode == 0 and "3 of 4 parts here" in done.stdout and manifest["parts"][3]["name"] in done.stdout


def test_a_missing_part_is_refused(split_file, tmp_path):
    _, parts, manifest = split_file
    (parts / manifest["parts"][1]["name"]).unlink()
    assert "parts missing" in one_error_line(parts_cli("join", parts, tmp_path / "out"))
    assert not (tmp_path / "out" / "big.whl").exists()


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_corrupt_part_is_refused(split_file, tmp_path, damage):
    _, parts, manifest = split_file
    part = parts / manifest["parts"][2]["name"]
    data = bytearray(part.read_bytes())
    if damage == "flip":
        data[1000] ^= 1
    else:
        del data[-1:]
    part.write_bytes(bytes(data))
    assert part.name in one_error_line(parts_cli("join", parts, tmp_path / "out"))
    assert part.name in one_error_line(parts_cli("check", parts))


def test_a_manifest_of_another_file_is_refused(split_file, tmp_path):
    _, parts, _ = split_file
    assert "recorded" in one_error_line(parts_cli("join", parts, tmp_path / "out", "--sha256", "0" * 64))


def test_install_puts_the_joined_wheel_ahead_of_the_cpu_onnxruntime(tmp_path):
    wheel = stand_in_wheel(tmp_path)
    parts = tmp_path / "parts"
    assert parts_cli("split", wheel, parts, "--part-mib", 0.0002).returncode == 0
    manifest = json.loads((parts / "manifest.json").read_text())
    assert len(manifest["parts"]) > 1
    env = {**os.environ, "PARTS": str(parts), "ORT_SHA256": manifest["sha256"], "TARGET": str(tmp_path / "target"),
           "WHEELS": str(tmp_path / "none"), "OUT": str(tmp_path / "out")}
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_agent.sh"), "install"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"onnxruntime 0.0.1 from {tmp_path / 'target' / 'onnxruntime' / '__init__.py'}" in run.stdout
    assert "CUDAExecutionProvider" in run.stdout

    env["ORT_SHA256"] = "f" * 64  # not the recorded wheel: nothing is installed
    env["TARGET"] = str(tmp_path / "other")
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_agent.sh"), "install"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    one_error_line(run)
    assert not (tmp_path / "other").exists()


@pytest.fixture(scope="module")
def check_args(tmp_path_factory):
    """`agent check` on the tests' fixture model and a short PNG sequence, with outputs in a temp folder."""
    tmp = tmp_path_factory.mktemp("check")
    model = build_fixture_model(tmp / "fixture.onnx")
    frames = tmp / "frames"
    frames.mkdir()
    for i, frame in enumerate(make_frames(3)):
        cv2.imwrite(str(frames / f"{i:04d}.png"), frame)
    return ["check", "--model", str(model), "--source", str(frames / "%04d.png")] + [
        arg for o in ("metrics.port=0", "sinks.jsonl=null", f"alerts.snapshot_dir={tmp / 'snapshots'}",
                      f"inference.trt_cache_dir={tmp / 'trt'}") for arg in ("--set", o)]


def test_cuda_asked_for_from_a_cpu_onnxruntime_is_one_error_line(check_args):
    result = CliRunner().invoke(app, check_args + ["--set", "inference.provider=cuda"])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: inference.provider=cuda: this onnxruntime {ort.__version__} has no CUDAExecutionProvider "
        f"(it has {', '.join(ort.get_available_providers())}); install onnxruntime-gpu or set inference.provider=auto"]


@pytest.mark.parametrize("provider, name", [("cuda", "CUDA"), ("tensorrt", "Tensorrt")])
def test_a_listed_gpu_provider_that_does_not_load_is_one_error_line(check_args, monkeypatch, provider, name):
    # As onnxruntime-gpu on a machine without the CUDA or TensorRT libraries: listed, yet ORT runs on the CPU.
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    result = CliRunner().invoke(app, check_args + ["--set", f"inference.provider={provider}"])
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith(f"error: inference.provider={provider}: {name}ExecutionProvider does not load here: ")
    assert f"libonnxruntime_providers_{provider}.so" in line and line.endswith("set inference.provider=auto to fall "
                                                                               "back to the CPU")


def test_auto_still_falls_back_to_the_cpu(check_args, monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    result = CliRunner().invoke(app, check_args + ["--set", "inference.provider=auto"])
    assert result.exit_code == 0, result.output
    assert "inference: CPUExecutionProvider" in result.output
