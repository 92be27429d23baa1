"""The sidecar manifest `MODEL.onnx.manifest.json`: the `.onnx` file's size and sha256, plus its metadata.

Written by `export`, checked by `export verify` and by the agent before it loads a model, so
it uses the standard library only: the agent's runtime set has no torch and no onnx.
"""
from __future__ import annotations

import json
from pathlib import Path

from common.errors import UserError
from common.files import sha256_file, write_atomic


class ManifestError(UserError, ValueError):
    """A model that its manifest does not vouch for; one-line message."""


def manifest_path(model: str | Path) -> Path:
    """`MODEL.onnx.manifest.json` next to `MODEL.onnx`."""
    model = Path(model)
    return model.with_name(model.name + ".manifest.json")


def write_manifest(model: str | Path, metadata: dict[str, str]) -> Path:
    """Hash `model` and write its manifest; returns the manifest's path."""
    model = Path(model)
    manifest = {"file": model.name, "sha256": sha256_file(model), "size": model.stat().st_size,
                "metadata": dict(metadata)}
    path = manifest_path(model)
    write_atomic(path, (json.dumps(manifest, indent=2) + "\n").encode())
    return path


def check_manifest(model: str | Path, manifest_bytes: bytes | None = None) -> dict:
    """The manifest of `model` (with its `sha256` recomputed) if size and sha256 match; `ManifestError` otherwise.

    A missing manifest is refused too: a model without one was never verified by `export onnx`.
    `manifest_bytes`: the manifest as already read (and signature-checked), instead of reading it again.
    """
    model = Path(model)
    if not model.is_file():
        raise ManifestError(f"model not found: {model}")
    path = manifest_path(model)
    if manifest_bytes is None and not path.is_file():
        raise ManifestError(f"model has no manifest: {path} not found")
    try:
        manifest = json.loads(path.read_bytes() if manifest_bytes is None else manifest_bytes)
        sha, size, metadata = str(manifest["sha256"]).lower(), int(manifest["size"]), manifest["metadata"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"manifest {path} is malformed ({type(exc).__name__}: {exc})") from None
    if not isinstance(metadata, dict):
        raise ManifestError(f"manifest {path}: metadata must be a JSON object")
    actual_size = model.stat().st_size
    if actual_size != size:
        raise ManifestError(f"model {model} is {actual_size} bytes, manifest says {size} (truncated or replaced)")
    actual_sha = sha256_file(model)
    if actual_sha != sha:
        raise ManifestError(f"model {model} sha256 {actual_sha[:12]}... does not match manifest {sha[:12]}... (tampered)")
    return manifest
