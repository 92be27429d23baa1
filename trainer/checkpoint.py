"""Saving and loading checkpoints: atomic writes and `weights_only` loads."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from common.errors import UserError
from common.files import atomic_path
from common.files import sha256_file as sha256  # noqa: F401  (checkpoints are hashed like models)


class CheckpointError(UserError):
    """A checkpoint that is missing or cannot be read; one-line message."""


def save(obj: Any, path: str | Path) -> None:
    """Write `obj` to `path` through a temp file, so an interrupted save never leaves half a file.

    Through a file object: given a path, torch names the archive inside after the (random) temp file, and
    the same weights would hash differently on every save; their sha256 seeds and stamps later stages.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True` (no pickled code runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
