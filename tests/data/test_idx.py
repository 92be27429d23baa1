"""Fashion-MNIST / MNIST from IDX files written with real headers."""
from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from data.data_writers import idx_bytes, write_idx_set
from trainer.config import DataConfig
from trainer.data import DataError, load_dataset
from trainer.data import load
from trainer.data.idx import FASHION_MNIST, MNIST, IdxSource, read_idx


def cfg(root, name="fashion-mnist", **kw) -> DataConfig:
    return DataConfig(name=name, root=root, download=False, val_size=2, **kw)


@pytest.mark.parametrize("compress", [True, False])
def test_loads_fashion_mnist(tmp_path, compress):
    data = load_dataset(cfg(write_idx_set(tmp_path, compress=compress), train_limit=4))
    assert data.classes == list(FASHION_MNIST.classes) and data.classes[0] == "T-shirt/top"
    assert (len(data.train), len(data.val), len(data.test)) == (4, 2, 5)
    assert data.train.images.shape == (4, 1, 28, 28) and data.train.images.dtype == torch.uint8
    assert data.train.images[:, 0, 5, 5].tolist() == [0, 1, 2, 3]
    assert data.val.labels.tolist() == [0, 1]  # images 10 and 11 of 12
    assert data.test.labels.dtype == torch.int64


def test_mnist_classes_are_digits(tmp_path):
    assert load_dataset(cfg(write_idx_set(tmp_path), name="mnist")).classes == [str(d) for d in range(10)]


@pytest.mark.parametrize("type_byte, dtype", [(0x08, np.uint8), (0x0B, np.int16), (0x0D, np.float32)])
def test_read_idx_types_and_dims(tmp_path, type_byte, dtype):
    array = np.arange(24).reshape(2, 3, 4).astype(dtype)
    (tmp_path / "a").write_bytes(gzip.compress(idx_bytes(array, type_byte)))
    out = read_idx(tmp_path / "a")
    assert out.shape == (2, 3, 4) and np.array_equal(out, array)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not an IDX file"),
        (b"\x00\x00\x08", "not an IDX file"),
        (b"\x01\x02\x08\x01\x00\x00\x00\x01\x00", "not an IDX file"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "not an IDX file"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x01", "header is truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03\x00\x00", r"says \(3,\) \(11 bytes\) but the file holds 10"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x00\x00", r"says \(1,\) \(9 bytes\) but the file holds 10"),
    ],
)
def test_read_idx_rejects_bad_headers(tmp_path, content, message):
    (tmp_path / "f").write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_idx(tmp_path / "f")


def test_truncated_gzip_names_the_file(tmp_path):
    root = write_idx_set(tmp_path)
    path = root / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz is a damaged gzip file"):
        load_dataset(cfg(root))


def test_corrupt_gzip_names_the_file(tmp_path):
    root = write_idx_set(tmp_path)
    path = root / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[12:20] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz is a damaged gzip file"):
        load_dataset(cfg(root))


def test_label_and_image_counts_must_agree(tmp_path):
    root = write_idx_set(tmp_path)
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(4, np.uint8))))
    with pytest.raises(DataError, match="holds 4 labels but .*t10k-images-idx3-ubyte.gz 5 images"):
        load_dataset(cfg(root))


def test_images_must_be_3d_uint8(tmp_path):
    root = write_idx_set(tmp_path)
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((12, 784), np.uint8))))
    with pytest.raises(DataError, match=r"expected uint8 images \[N, H, W\]"):
        load_dataset(cfg(root))


def test_labels_must_be_classes(tmp_path):
    root = write_idx_set(tmp_path)
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.full(5, 10, np.uint8))))
    with pytest.raises(DataError, match="label 10 is not below 10"):
        load_dataset(cfg(root))


def test_missing_offline_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match=r"mnist: train-images-idx3-ubyte\(.gz\) not found in .*data.download=true"):
        load_dataset(cfg(tmp_path, name="mnist"))


def test_download_fetches_only_missing_files(tmp_path, monkeypatch):
    mirror = write_idx_set(tmp_path / "mirror")
    md5 = {p.name.removesuffix(".gz"): hashlib.md5(p.read_bytes()).hexdigest() for p in mirror.iterdir()}
    monkeypatch.setattr(load, "MNIST", IdxSource("mnist", MNIST.classes, Path("unused"), mirror.as_uri() + "/", md5))
    root = write_idx_set(tmp_path / "root", compress=False)
    (root / "t10k-images-idx3-ubyte").unlink()
    (root / "train-labels-idx1-ubyte").unlink()
    data = load_dataset(DataConfig(name="mnist", root=root, download=True, val_size=2))
    assert len(data.test) == 5
    assert sorted(p.name for p in root.iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte.gz"
    ]


def test_download_failure_says_where_to_put_files(tmp_path):
    into = re.escape(str(tmp_path))
    expected = rf"fashion-mnist: cannot download http://\S+ to .*; download the files .* by hand into {into}$"
    with pytest.raises(DataError, match=expected):
        load_dataset(DataConfig(name="fashion-mnist", root=tmp_path, download=True))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not FASHION_MNIST.root.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_default_root_is_the_debian_package():
    data = load_dataset(DataConfig(name="fashion-mnist", download=False, test_limit=100))
    assert (len(data.train), len(data.val), len(data.test)) == (55000, 5000, 100)
    assert data.train.labels[:3].tolist() == [9, 0, 0]  # the published first labels
