"""Fixtures of the data tests."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from data.data_writers import write_cifar


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    """A root holding a tiny CIFAR-10 in the official `cifar-10-batches-py/` layout."""
    write_cifar(tmp_path / "cifar" / "cifar-10-batches-py")
    return tmp_path / "cifar"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Name lookups and socket connections fail, so no test can reach the network (file:// URLs still work)."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in the data tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
