"""Writers of tiny data sets in the real on-disk formats, for the data tests (which never download)."""
from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
import tarfile
from pathlib import Path

import cv2
import numpy as np

CIFAR_BATCH = 4  # images per data_batch_i: 20 train images in all
CIFAR_TEST = 6


def cifar_batch(n: int, first_label: int = 0) -> dict:
    """A CIFAR-10 python batch whose image i has planes R=i, G=100+i, B=200+i."""
    i = np.arange(n, dtype=np.uint8)[:, None]
    data = np.concatenate([np.repeat(i + off, 1024, axis=1) for off in (0, 100, 200)], axis=1).astype(np.uint8)
    return {b"data": data, b"labels": [(first_label + k) % 10 for k in range(n)], b"batch_label": b"x"}


def write_cifar(folder: Path) -> Path:
    """The seven official files in `folder`; train labels count 0,1,2,... across the batches."""
    folder.mkdir(parents=True, exist_ok=True)
    for b in range(5):
        with open(folder / f"data_batch_{b + 1}", "wb") as f:
            pickle.dump(cifar_batch(CIFAR_BATCH, b * CIFAR_BATCH), f, protocol=2)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(cifar_batch(CIFAR_TEST), f)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, f)
    return folder


def write_cifar_archive(path: Path, source: Path) -> str:
    """A tar.gz laid out like the official one (`cifar-10-batches-py/...`); returns its md5."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source, arcname="cifar-10-batches-py")
    return hashlib.md5(path.read_bytes()).hexdigest()


def idx_bytes(array: np.ndarray, type_byte: int = 0x08) -> bytes:
    """`array` in IDX format: 0, 0, type, ndim, big-endian uint32 dims, big-endian data."""
    header = struct.pack(">BBBB", 0, 0, type_byte, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx_set(root: Path, n_train: int = 12, n_test: int = 5, compress: bool = True) -> Path:
    """The four MNIST-style files; image k of a set is filled with the value k, label k % 10."""
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.repeat(np.arange(n, dtype=np.uint8), 28 * 28).reshape(n, 28, 28)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            data, name = idx_bytes(array), f"{prefix}-{kind}-ubyte"
            if compress:
                (root / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (root / name).write_bytes(data)
    return root


def write_folder(root: Path, parts: dict[str, dict[str, int]], size: int = 6) -> Path:
    """PNG images `root/<part>/<class>/<k>.png`; each is one BGR colour (k, 10*class index, 200)."""
    for part, counts in parts.items():
        for c, (name, n) in enumerate(sorted(counts.items())):
            (root / part / name).mkdir(parents=True, exist_ok=True)
            for k in range(n):
                image = np.full((size, size + 2, 3), (k, 10 * c, 200), np.uint8)
                assert cv2.imwrite(str(root / part / name / f"{k}.png"), image)
    return root
