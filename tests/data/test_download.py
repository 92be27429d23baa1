"""md5-checked downloads that leave nothing half-written; file:// URLs stand in for the network."""
from __future__ import annotations

import hashlib

import pytest

from trainer.data import DataError
from trainer.data.download import download


def test_download_checks_md5_and_moves_into_place(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload" * 1000)
    dest = tmp_path / "out" / "file.bin"
    assert download(src.as_uri(), dest, hashlib.md5(src.read_bytes()).hexdigest()) == dest
    assert dest.read_bytes() == src.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["file.bin"]


def test_wrong_md5_leaves_nothing(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(DataError, match="corrupt"):
        download(src.as_uri(), dest, "0" * 32)
    assert list(dest.parent.iterdir()) == []


def test_unreachable_url_is_a_data_error(tmp_path):
    dest = tmp_path / "file.bin"
    with pytest.raises(DataError, match="cannot download"):
        download((tmp_path / "missing").as_uri(), dest, "0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_network_is_off_in_tests(tmp_path):
    with pytest.raises(DataError, match="network disabled"):
        download("http://127.0.0.1:9/x", tmp_path / "x", "0" * 32)
