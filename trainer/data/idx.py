"""MNIST-style IDX files (http://yann.lecun.com/exdb/mnist/): Fashion-MNIST and MNIST."""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .dataset import DataError, Split
from .download import download

# IDX type byte -> element type; multi-byte types are big-endian.
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
FILES = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS]


@dataclass(frozen=True)
class IdxSource:
    """Where an MNIST-style data set lives by default and where to download it."""

    name: str
    classes: tuple[str, ...]
    root: Path
    url: str
    md5: dict[str, str]  # of each `<file>.gz`


FASHION_MNIST = IdxSource(
    name="fashion-mnist",
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    # Debian's dataset-fashion-mnist package puts the files here. They are recompressed, so
    # their md5s differ from the published ones: md5s are checked on downloads only.
    root=Path("/usr/share/datasets/fashion-mnist"),
    url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    # As published in the Fashion-MNIST README.
    md5={
        TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
        TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79",
        TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310",
    },
)
MNIST = IdxSource(
    name="mnist",
    classes=tuple(str(digit) for digit in range(10)),
    root=Path("data/mnist"),
    # yann.lecun.com is unreliable for scripted downloads; this is the mirror torchvision uses.
    url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    md5={
        TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
        TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
        TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
    },
)

def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file, gzip-compressed or not (told apart by content, not name).

    The header (two zero bytes, type byte, number of dimensions, big-endian uint32 sizes)
    must match the payload size exactly; anything else raises `DataError` naming the file.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:  # EOFError: the stream is truncated
            raise DataError(f"{path} is a damaged gzip file ({exc}); replace it or delete it and re-download") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _DTYPES:
        raise DataError(f"{path} is not an IDX file (magic {raw[:4].hex() or 'missing'}); replace it")
    dtype, ndim = np.dtype(_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: IDX header is truncated; replace the file")
    shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path}: IDX header says {shape} ({expected} bytes) but the file holds {len(raw)}; replace it")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def load_idx(root: Path, source: IdxSource, download_missing: bool) -> tuple[list[str], Split, Split]:
    """Read an MNIST-style data set from `root`: (class names, official train, test).

    `source` is `FASHION_MNIST` or `MNIST`. Each file may be `<name>.gz` or uncompressed;
    missing ones are downloaded (md5-checked) when `download_missing` is true.
    """
    paths = {}
    for base in FILES:
        found = next((p for p in (root / f"{base}.gz", root / base) if p.is_file()), None)
        if found is None:
            found = _fetch(root, source, base, download_missing)
        paths[base] = found
    n_classes = len(source.classes)
    train = _split(paths[TRAIN_IMAGES], paths[TRAIN_LABELS], n_classes)
    test = _split(paths[TEST_IMAGES], paths[TEST_LABELS], n_classes)
    return list(source.classes), train, test


def _fetch(root: Path, source: IdxSource, base: str, download_missing: bool) -> Path:
    url = f"{source.url}{base}.gz"
    if not download_missing:
        raise DataError(
            f"{source.name}: {base}(.gz) not found in {root}; set data.download=true, "
            f"or put the files from {source.url} there, or point data.root at them"
        )
    try:
        return download(url, root / f"{base}.gz", source.md5[base])
    except DataError as exc:
        raise DataError(f"{source.name}: {exc}; download the files from {source.url} by hand into {root}") from None


def _split(images_path: Path, labels_path: Path, n_classes: int) -> Split:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(f"{images_path}: expected uint8 images [N, H, W], got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"{labels_path}: expected uint8 labels [N], got {labels.dtype} {labels.shape}; replace it")
    if len(labels) != len(images):
        raise DataError(f"{labels_path} holds {len(labels)} labels but {images_path} {len(images)} images")
    if labels.size and labels.max() >= n_classes:
        raise DataError(f"{labels_path}: label {labels.max()} is not below {n_classes}; replace it")
    return Split(torch.from_numpy(images[:, None].copy()), torch.from_numpy(labels.astype(np.int64)))
