"""CIFAR-10 from python pickle batches written in the official format."""
from __future__ import annotations

import os
import pickle
import re

import numpy as np
import pytest
import torch

from data.data_writers import CIFAR_BATCH, CIFAR_TEST, write_cifar, write_cifar_archive
from trainer.config import DataConfig
from trainer.data import DataError, load_dataset
from trainer.data import cifar10


def cfg(root, **kw) -> DataConfig:
    return DataConfig(name="cifar10", root=root, download=False, val_size=5, **kw)


def test_loads_train_val_test_in_rgb(cifar_root):
    data = load_dataset(cfg(cifar_root))
    assert data.classes[:2] == ["airplane", "automobile"] and data.num_classes == 10
    assert (len(data.train), len(data.val), len(data.test)) == (5 * CIFAR_BATCH - 5, 5, CIFAR_TEST)
    assert (data.channels, data.height, data.width) == (3, 32, 32)
    # Planes are R=i, G=100+i, B=200+i for image i of its batch: channel 0 must be red.
    first = data.train.images[1]
    assert first[:, 0, 0].tolist() == [1, 101, 201] and bool((first[0] == 1).all())
    # Labels run 0,1,2,... across the five batches; val is the tail.
    assert data.train.labels.tolist() == [k % 10 for k in range(15)]
    assert data.val.labels.tolist() == [k % 10 for k in range(15, 20)]
    assert data.train.images.dtype == torch.uint8 and data.train.labels.dtype == torch.int64


def test_files_directly_in_root(tmp_path):
    write_cifar(tmp_path)
    assert len(load_dataset(cfg(tmp_path, train_limit=3, test_limit=2)).train) == 3


def test_missing_offline_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match=r"CIFAR-10 not found in .*data.download=true or extract https://"):
        load_dataset(cfg(tmp_path))


def test_default_root_is_relative_to_cwd(tmp_path, monkeypatch):
    write_cifar(tmp_path / "data" / "cifar10")
    monkeypatch.chdir(tmp_path)
    assert len(load_dataset(DataConfig(name="cifar10", download=False, val_size=5)).test) == CIFAR_TEST


@pytest.mark.parametrize("keep", [0, 100, 1000])
def test_truncated_batch_names_the_file(cifar_root, keep):
    path = cifar_root / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(DataError, match=r"data_batch_3 is not a valid CIFAR-10 pickle"):
        load_dataset(cfg(cifar_root))


def test_not_a_pickle(cifar_root):
    (cifar_root / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x1f\x8b garbage" * 50)
    with pytest.raises(DataError, match="test_batch is not a valid CIFAR-10 pickle"):
        load_dataset(cfg(cifar_root))


@pytest.mark.parametrize(
    "content, message",
    [
        ({b"labels": [0]}, "has no 'data' entry"),
        ({"data": 1, "labels": 2}, "has no 'data' entry"),  # unpickled without encoding="bytes"
        ([1, 2], "it holds a list"),
        ({b"data": bytes(3072), b"labels": [0]}, r"'data' must be uint8 \[N, 3072\]"),
        ({b"data": np.zeros((1, 3000), "uint8"), b"labels": [0]}, r"'data' must be uint8"),
        ({b"data": np.zeros((2, 3072), "uint8"), b"labels": [0]}, "'labels' must be 2 integers"),
        ({b"data": np.zeros((1, 3072), "uint8"), b"labels": [10]}, "in 0..9"),
        ({b"data": np.zeros((1, 3072), "uint8"), b"labels": ["a"]}, "not a list of integers"),
    ],
)
def test_wrong_content_names_the_file(cifar_root, content, message):
    with open(cifar_root / "cifar-10-batches-py" / "data_batch_1", "wb") as f:
        pickle.dump(content, f)
    with pytest.raises(DataError, match=f"data_batch_1.*{message}"):
        load_dataset(cfg(cifar_root))


def test_wrong_meta(cifar_root):
    with open(cifar_root / "cifar-10-batches-py" / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"a", b"b"]}, f)
    with pytest.raises(DataError, match="batches.meta: expected 10 label_names, found 2"):
        load_dataset(cfg(cifar_root))


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_cannot_run_code(cifar_root):
    with open(cifar_root / "cifar-10-batches-py" / "data_batch_1", "wb") as f:
        pickle.dump({b"data": _Exploit(), b"labels": []}, f)
    with pytest.raises(DataError, match="refusing to load"):
        load_dataset(cfg(cifar_root))


def test_download_extracts_and_removes_archive(tmp_path, monkeypatch):
    archive = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    md5 = write_cifar_archive(archive, write_cifar(tmp_path / "src"))
    monkeypatch.setattr(cifar10, "URL", archive.as_uri())
    monkeypatch.setattr(cifar10, "MD5", md5)
    root = tmp_path / "root"
    data = load_dataset(DataConfig(name="cifar10", root=root, download=True, val_size=5))
    assert len(data.train) == 15
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]
    assert sorted(p.name for p in (root / "cifar-10-batches-py").iterdir()) == sorted(cifar10.FILES)


def test_download_failure_says_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10, "URL", "https://127.0.0.1:9/cifar-10-python.tar.gz")
    root = tmp_path / "root"
    expected = rf"download https://127.0.0.1:9/\S+ by hand and extract it into {re.escape(str(root))}$"
    with pytest.raises(DataError, match=expected):
        load_dataset(DataConfig(name="cifar10", root=root, download=True))
    assert list(root.iterdir()) == []


def test_download_with_wrong_md5_leaves_nothing(tmp_path, monkeypatch):
    archive = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_archive(archive, write_cifar(tmp_path / "src"))
    monkeypatch.setattr(cifar10, "URL", archive.as_uri())
    root = tmp_path / "root"
    with pytest.raises(DataError, match="corrupt"):
        load_dataset(DataConfig(name="cifar10", root=root, download=True))
    assert list(root.iterdir()) == []
