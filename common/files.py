"""Writing files so a crash never leaves half of one, and hashing them once."""
from __future__ import annotations

import functools
import hashlib
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temp path next to `path` to write to; renamed onto `path` when the block ends, removed if it raises.

    Readers see the old file or the whole new one, never half a file. The temp name is unique,
    so processes writing the same file at once (DDP ranks) do not write into each other's.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its files are private (0600), and the rename would keep that mode.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through `atomic_path`, flushed to disk before the rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, computed once while the file stays the same.

    "The same" is inode, size, mtime and ctime: writing or replacing the file changes them, and
    ctime cannot be set back, so a cached hash never vouches for changed bytes.
    """
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, *version: int) -> str:
    # Cached because a VGG16 checkpoint is hashed for each of dozens of detectors.
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
