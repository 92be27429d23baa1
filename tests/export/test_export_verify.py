"""`export verify` accepts what `export onnx` wrote and refuses anything else."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from common.errors import UserError

from common.manifest import manifest_path
from export.verify import verify_file


@pytest.fixture
def copy(exported, tmp_path):
    """A private copy of the exported model and its manifest, free to damage."""
    path = tmp_path / exported[0].name
    shutil.copy(exported[0], path)
    shutil.copy(manifest_path(exported[0]), manifest_path(path))
    return path


def test_verify_without_run(copy):
    lines = verify_file(copy)
    assert "sha256 matches manifest" in lines[0] and "not checked" in lines[-1]


def test_verify_with_run_checks_parity(copy, run_dir):
    report = "\n".join(verify_file(copy, run_dir))
    assert "fp32 vs PyTorch fp32 on 48 held-out clean + 48 adversarial images" in report
    assert "FAIL" not in report


def test_flipped_byte_is_refused(copy):
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))
    with pytest.raises(UserError, match="tampered"):
        verify_file(copy)


def test_truncated_model_is_refused(copy):
    copy.write_bytes(copy.read_bytes()[:-100])
    with pytest.raises(UserError, match="truncated"):
        verify_file(copy)


def test_model_without_manifest_is_refused(copy):
    manifest_path(copy).unlink()
    with pytest.raises(UserError, match="no manifest"):
        verify_file(copy)


def test_model_from_another_run_is_refused(copy, make_run, tmp_path):
    other = make_run(tmp_path / "other", seed=1)
    with pytest.raises(UserError, match="sha256"):
        verify_file(copy, other)


def test_verify_without_run_needs_no_torch(copy):
    """A deployment host checks models with the runtime set alone (no torch)."""
    code = ("import sys; from export.verify import verify_file; verify_file(sys.argv[1]); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code, str(copy)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
