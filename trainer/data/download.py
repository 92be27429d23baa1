"""Fetch one file over HTTP(S), md5-checked, so that a failed or corrupt download leaves nothing behind."""
from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

from trainer.progress import progress_bar

from common.files import atomic_path

from .dataset import DataError

_CHUNK = 1 << 20


def download(url: str, dest: Path, md5: str, timeout: float = 60.0) -> Path:
    """Download `url` to `dest` and check its md5; returns `dest`.

    The bytes go to a temporary file next to `dest` (`common.files.atomic_path`) and only a
    file whose md5 matches is moved into place. Any failure (network, disk, checksum) raises
    `DataError` and removes the temporary file.
    """
    try:
        with atomic_path(dest) as tmp:
            digest = hashlib.md5()
            with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with progress_bar(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name) as bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
            if digest.hexdigest() != md5:
                raise DataError(f"download of {url} is corrupt (md5 {digest.hexdigest()}, expected {md5})")
    except OSError as exc:  # URLError, timeouts and disk errors are all OSErrors
        raise DataError(f"cannot download {url} to {dest}: {getattr(exc, 'reason', None) or exc}") from None
    return dest
