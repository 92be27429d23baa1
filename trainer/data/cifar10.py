"""CIFAR-10 from the official python pickle batches (https://www.cs.toronto.edu/~kriz/cifar.html)."""
from __future__ import annotations

import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

from .dataset import DataError, Split
from .download import download

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
DEFAULT_ROOT = Path("data/cifar10")
SUBDIR = "cifar-10-batches-py"  # the folder the official archive extracts to
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
FILES = [*TRAIN_FILES, TEST_FILE, META_FILE]

# The batches are pickles of dicts of numpy arrays; unpickling may only build those,
# so that a wrong or hostile file in `root` cannot run code.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
}


class _NumpyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def load_cifar10(root: Path, download_missing: bool) -> tuple[list[str], Split, Split]:
    """Read CIFAR-10 from `root` or `root/cifar-10-batches-py`: (class names, official train, test).

    When files are missing and `download_missing` is true, the official archive is fetched
    (md5-checked) and extracted into `root/cifar-10-batches-py`.
    """
    folder = _find(root)
    if folder is None:
        if not download_missing:
            raise DataError(
                f"CIFAR-10 not found in {root} (need {', '.join(FILES)}); set data.download=true "
                f"or extract {URL} into {root}"
            )
        folder = _fetch(root)
    meta = folder / META_FILE
    classes = [_decode_name(name, meta) for name in _field(_read(meta), b"label_names", meta)]
    if len(classes) != 10:
        raise DataError(f"{meta}: expected 10 label_names, found {len(classes)}; replace the file")
    batches = [_read_batch(folder / name) for name in TRAIN_FILES]
    train = Split(torch.cat([b.images for b in batches]), torch.cat([b.labels for b in batches]))
    return classes, train, _read_batch(folder / TEST_FILE)


def _find(root: Path) -> Path | None:
    for folder in (root / SUBDIR, root):
        if all((folder / name).is_file() for name in FILES):
            return folder
    return None


def _fetch(root: Path) -> Path:
    archive = root / URL.rsplit("/", 1)[1]
    manual = f"download {URL} by hand and extract it into {root}"
    try:
        download(URL, archive, MD5)
    except DataError as exc:
        raise DataError(f"CIFAR-10: {exc}; {manual}") from None
    target = root / SUBDIR
    # Extract into a scratch folder, then move file by file, so that an interrupted
    # extraction never leaves a truncated batch where the loader would find it.
    try:
        with tempfile.TemporaryDirectory(dir=root) as scratch, tarfile.open(archive) as tar:
            target.mkdir(exist_ok=True)
            for name in FILES:
                # Only the known members are read, by name, so that no path in the archive can escape `root`.
                member = tar.extractfile(f"{SUBDIR}/{name}")
                if member is None:
                    raise DataError(f"{archive}: {SUBDIR}/{name} is not a file; {manual}")
                with member, open(Path(scratch) / name, "wb") as out:
                    shutil.copyfileobj(member, out)
                (Path(scratch) / name).replace(target / name)
    except (OSError, tarfile.TarError, KeyError) as exc:
        raise DataError(f"cannot extract {archive}: {exc}; {manual}") from None
    # Only the extracted batches are read from now on.
    archive.unlink()
    return target


def _read(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            data = _NumpyUnpickler(f, encoding="bytes").load()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # a damaged pickle can fail in many ways (EOFError, UnpicklingError, ValueError, ...)
        raise DataError(
            f"{path} is not a valid CIFAR-10 pickle ({type(exc).__name__}: {exc}); "
            "replace the file, or delete it and re-download"
        ) from None
    if not isinstance(data, dict):
        raise DataError(f"{path} is not a valid CIFAR-10 pickle (it holds a {type(data).__name__}); replace the file")
    return data


def _field(data: dict, key: bytes, path: Path):
    if key not in data:
        raise DataError(f"{path} has no {key.decode()!r} entry, not a CIFAR-10 python batch; replace the file")
    return data[key]


def _decode_name(name, path: Path) -> str:
    if isinstance(name, bytes):
        return name.decode("utf-8", errors="replace")
    if isinstance(name, str):
        return name
    raise DataError(f"{path}: label name {name!r} is not text; replace the file")


def _read_batch(path: Path) -> Split:
    data = _read(path)
    images, labels = _field(data, b"data", path), _field(data, b"labels", path)
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.shape[1:] == (3 * 32 * 32,)):
        got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise DataError(f"{path}: 'data' must be uint8 [N, 3072], got {got}; replace the file")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: 'labels' is not a list of integers; replace the file") from None
    if labels.shape != (images.shape[0],) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise DataError(f"{path}: 'labels' must be {images.shape[0]} integers in 0..9; replace the file")
    # Rows hold the 1024 red, then green, then blue values of a 32x32 image: RGB in CHW order.
    return Split(torch.from_numpy(images.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels))
