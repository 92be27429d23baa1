"""Ed25519 signatures over a model and its manifest: `MODEL.onnx.sig`.

`export sign` writes one with the trainer's private key; the agent, given the public key
(`model.public_key`), refuses a model whose signature is missing or does not verify. Keys are
the PEM files `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` write.

What is signed is the text `SIGNED_TEXT` naming the sha256 of the model's bytes and of its
manifest's bytes: one signature covers the weights, the embedded metadata and the manifest's
metadata (which the agent acts on), and the message can be rebuilt with `sha256sum` to check a
signature with openssl alone. The `.sig` file is JSON; its `key_id`, `model_sha256` and
`manifest_sha256` are not trusted, they only say *why* a signature failed to verify.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from common.errors import UserError
from common.files import sha256_file, write_atomic
from common.manifest import check_manifest, manifest_path

FORMAT = "adversary-detector-signature-v1"
SIGNED_TEXT = FORMAT + "\nmodel {model}\nmanifest {manifest}\n"


class SignatureError(UserError, ValueError):
    """A key that cannot be used, or a model its signature does not vouch for; one-line message."""


def signature_path(model: str | Path) -> Path:
    """`MODEL.onnx.sig` next to `MODEL.onnx`."""
    model = Path(model)
    return model.with_name(model.name + ".sig")


def signed_message(model_sha256: str, manifest_sha256: str) -> bytes:
    """The bytes an Ed25519 signature covers."""
    return SIGNED_TEXT.format(model=model_sha256, manifest=manifest_sha256).encode()


def key_id(key: Ed25519PublicKey) -> str:
    """sha256 of the raw 32-byte public key, 16 hex digits: names a key in messages and `.sig` files."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _read_key(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SignatureError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None


def load_private_key(path: str | Path, what: str = "--key") -> Ed25519PrivateKey:
    """The Ed25519 private key in PEM file `path` (`openssl genpkey -algorithm ed25519`)."""
    data = _read_key(Path(path), what)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's way of saying the key is encrypted
        raise SignatureError(f"{what} {path} is encrypted; sign with an unencrypted copy "
                             "(openssl pkey -in KEY -out PLAIN_KEY) kept offline") from None
    except (ValueError, UnsupportedAlgorithm):
        raise SignatureError(f"{what} {path} is not a PEM private key "
                             "(make one with: openssl genpkey -algorithm ed25519 -out KEY)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{what} {path} is a {type(key).__name__}, not an Ed25519 key "
                             "(openssl genpkey -algorithm ed25519)")
    return key


def load_public_key(path: str | Path, what: str = "public key") -> Ed25519PublicKey:
    """The Ed25519 public key in PEM file `path` (`openssl pkey -in KEY -pubout`)."""
    data = _read_key(Path(path), what)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise SignatureError(f"{what} {path} is not a PEM public key "
                             "(make one with: openssl pkey -in KEY -pubout -out KEY.pub)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{what} {path} is a {type(key).__name__}, not an Ed25519 key")
    return key


def sign_model(model: str | Path, key_path: str | Path) -> tuple[Path, str]:
    """Sign `model` and its manifest with the private key at `key_path`; returns (`.sig` path, key id).

    The pair is checked first (`check_manifest`): a signature vouches for a model, so none is
    made for a model its own manifest does not vouch for.
    """
    model = Path(model)
    key = load_private_key(key_path)
    manifest = check_manifest(model)
    manifest_sha = hashlib.sha256(manifest_path(model).read_bytes()).hexdigest()
    signature = key.sign(signed_message(manifest["sha256"], manifest_sha))
    record = {"format": FORMAT, "algorithm": "ed25519", "key_id": key_id(key.public_key()),
              "model_sha256": manifest["sha256"], "manifest_sha256": manifest_sha,
              "signature": base64.b64encode(signature).decode()}
    path = signature_path(model)
    write_atomic(path, (json.dumps(record, indent=2) + "\n").encode())
    return path, record["key_id"]


def _read_signature(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
        signature = base64.b64decode(record["signature"], validate=True)
    except OSError as exc:
        raise SignatureError(f"signature {path} cannot be read: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise SignatureError(f"signature {path} is malformed ({type(exc).__name__}: {exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or len(signature) != 64:
        raise SignatureError(f"signature {path} is not an {FORMAT} Ed25519 signature")
    return {**record, "signature": signature}


def verify_model_signature(model: str | Path, key: Ed25519PublicKey, key_name: str) -> tuple[str, bytes]:
    """Check `MODEL.sig` against `key`; returns (the model's sha256, the manifest's bytes) it vouches for.

    The caller must act on exactly these: parse the manifest from the returned bytes and load
    only a model file whose sha256 is the returned one, so nothing swapped in after this check
    is trusted. `key_name` (e.g. "model.public_key /etc/...pub") is how messages name the key.
    """
    model = Path(model)
    if not model.is_file():
        raise SignatureError(f"model not found: {model}")
    sig_path, man_path = signature_path(model), manifest_path(model)
    if not sig_path.is_file():
        raise SignatureError(f"model {model} is not signed: {sig_path} not found ({key_name} requires a "
                             "signature: python -m export sign MODEL --key PRIVATE_KEY)")
    record = _read_signature(sig_path)
    try:
        manifest_bytes = man_path.read_bytes()
    except OSError as exc:
        raise SignatureError(f"model has no manifest: {man_path}: {exc.strerror or exc}") from None
    model_sha, manifest_sha = sha256_file(model), hashlib.sha256(manifest_bytes).hexdigest()
    try:
        key.verify(record["signature"], signed_message(model_sha, manifest_sha))
    except InvalidSignature:
        raise SignatureError(f"model {model}: signature {sig_path.name} does not verify with {key_name}: "
                             + _why(record, key, model_sha, manifest_sha)) from None
    return model_sha, manifest_bytes


def _why(record: dict, key: Ed25519PublicKey, model_sha: str, manifest_sha: str) -> str:
    """The likeliest reason, read from the signature's unauthenticated fields (refused either way)."""
    if record.get("key_id") != key_id(key):
        return f"signed by key {record.get('key_id')}, not by this key ({key_id(key)})"
    if record.get("model_sha256") != model_sha:
        return f"the model file is not the one signed (sha256 {model_sha[:12]}..., tampered or replaced)"
    if record.get("manifest_sha256") != manifest_sha:
        return "the manifest is not the one signed (tampered or replaced)"
    return "the signature itself is corrupt"
