"""Signed models: `python -m export sign` with keys made by openssl, refused by `agent check`/`watch` unless they verify."""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from agent.cli import app as agent_app
from common.files import sha256_file
from common.manifest import manifest_path, write_manifest
from common.signing import signature_path, signed_message
from conftest import write_config, write_sequence
from export.cli import app as export_app
from fixture_model import CLASS_NAMES, make_frames

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None,
                                reason="openssl is not installed (scripts/setup.sh installs it): keys are made with it")
runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two key pairs as an operator makes them: `trainer` signs, `other` is someone else's."""
    folder = tmp_path_factory.mktemp("keys")
    pairs = {}
    for name in ("trainer", "other"):
        private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
        openssl("genpkey", "-algorithm", "ed25519", "-out", str(private))
        openssl("pkey", "-in", str(private), "-pubout", "-out", str(public))
        pairs[name] = (private, public)
    return pairs


@pytest.fixture(scope="module")
def signed(model_path, keys, tmp_path_factory):
    """A copy of the fixture model with its manifest, signed through the real `python -m export sign`."""
    model = tmp_path_factory.mktemp("signed") / "model.onnx"
    shutil.copy(model_path, model)
    shutil.copy(manifest_path(model_path), manifest_path(model))
    done = subprocess.run([sys.executable, "-m", "export", "sign", str(model), "--key", str(keys["trainer"][0])],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and signature_path(model).is_file(), done.stderr
    return model


def copy_of(model: Path, folder: Path) -> Path:
    """model, manifest and signature (if any) copied into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for src in (model, manifest_path(model), signature_path(model)):
        if src.exists():
            shutil.copy(src, folder / src.name)
    return folder / model.name


def flip_byte(data: bytes, needle: bytes, offset: int = 0) -> bytes:
    """`data` with byte `offset` of the only occurrence of `needle` changed (its lowest bit flipped)."""
    at = data.find(needle)
    assert at >= 0 and data.find(needle, at + 1) < 0, needle
    at += offset
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


def repair_manifest(model: Path) -> None:
    """What an attacker who can write the files does: a new manifest that matches the changed model."""
    write_manifest(model, json.loads(manifest_path(model).read_text())["metadata"])


def agent(command: str, model: Path, tmp: Path, *extra: str, **model_cfg):
    cfg = write_config(tmp / "agent.yaml", tmp, model={k: str(v) for k, v in model_cfg.items()})
    return runner.invoke(agent_app, [command, "--model", str(model), "--config", str(cfg), *extra])


def one_error_line(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def source(tmp_path):
    return write_sequence(tmp_path / "cam", make_frames(6, adversarial=[3]))


def test_a_signed_model_is_accepted_by_check_and_watch(signed, keys, tmp_path, source):
    public = keys["trainer"][1]
    result = agent("check", signed, tmp_path, "--source", source, public_key=public)
    assert result.exit_code == 0, result.output
    assert "signature verified with key" in result.stdout
    result = agent("watch", signed, tmp_path, "--source", source, public_key=public,
                   sha256=sha256_file(signed))  # the sha256 pin works beside the key
    assert result.exit_code == 0, result.output
    assert "summary: 6 frames" in result.stderr
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [a["frame_index"] for a in alerts] == [3] and alerts[0]["model_sha256"] == sha256_file(signed)


def test_the_signature_is_plain_ed25519_over_the_documented_text(signed, keys, tmp_path):
    """An operator can check a signature with openssl alone, from two sha256sums."""
    record = json.loads(signature_path(signed).read_text())
    message = tmp_path / "message"
    message.write_bytes(signed_message(sha256_file(signed), sha256_file(manifest_path(signed))))
    sig = tmp_path / "sig.bin"
    sig.write_bytes(base64.b64decode(record["signature"]))
    openssl("pkeyutl", "-verify", "-pubin", "-inkey", str(keys["trainer"][1]), "-rawin",
            "-in", str(message), "-sigfile", str(sig))


def tampered_weights(model: Path) -> None:
    """One byte of the classifier's weights, manifest rewritten to match: only the signature tells."""
    weights = next(i for i in onnx.load(model).graph.initializer if i.name == "w_cls")
    model.write_bytes(flip_byte(model.read_bytes(), numpy_helper.to_array(weights).tobytes()))
    repair_manifest(model)


def tampered_metadata(model: Path) -> None:
    """One byte of the embedded metadata (a class name), manifest rewritten to match the file."""
    model.write_bytes(flip_byte(model.read_bytes(), CLASS_NAMES[1].encode()))
    repair_manifest(model)


def tampered_manifest(model: Path) -> None:
    """One byte of the manifest: the alert threshold the agent acts on, 0.5 -> 0.4."""
    path = manifest_path(model)
    path.write_bytes(flip_byte(path.read_bytes(), b'"threshold": "0.5"', offset=len(b'"threshold": "0.')))


@pytest.mark.parametrize("command", ["check", "watch"])
@pytest.mark.parametrize("damage,needle", [
    (tampered_weights, "the model file is not the one signed"),
    (tampered_metadata, "the model file is not the one signed"),
    (tampered_manifest, "the manifest is not the one signed"),
    (lambda m: signature_path(m).unlink(), "is not signed"),
])
def test_tampered_or_unsigned_models_are_refused_before_any_camera_opens(signed, keys, tmp_path, command,
                                                                         damage, needle):
    model = copy_of(signed, tmp_path / "model")
    damage(model)
    # --camera 57 does not exist: refusing with the signature's error shows no camera was opened first.
    one_error_line(agent(command, model, tmp_path, "--camera", "57", public_key=keys["trainer"][1]), needle)


def test_tampering_that_keeps_the_pair_consistent_passes_without_a_key(signed, keys, tmp_path, source):
    """The control: a rewritten manifest fools the manifest check, so the key is what refuses it."""
    model = copy_of(signed, tmp_path / "model")
    tampered_weights(model)
    assert agent("check", model, tmp_path, "--source", source).exit_code == 0
    one_error_line(agent("check", model, tmp_path, "--source", source, public_key=keys["trainer"][1]),
                   "does not verify", "not the one signed")


def test_a_model_signed_with_another_key_is_refused(signed, keys, tmp_path):
    model = copy_of(signed, tmp_path / "model")
    assert runner.invoke(export_app, ["sign", str(model), "--key", str(keys["other"][0])]).exit_code == 0
    for command in ("check", "watch"):
        one_error_line(agent(command, model, tmp_path, "--camera", "57", public_key=keys["trainer"][1]),
                       "does not verify", "signed by key")


def test_a_pin_that_does_not_match_is_refused_even_when_signed(signed, keys, tmp_path):
    one_error_line(agent("check", signed, tmp_path, "--camera", "57", public_key=keys["trainer"][1],
                         sha256="0" * 64), "not the pinned model.sha256")


@pytest.mark.parametrize("key,needle", [
    ("missing", "cannot be read"),
    ("folder", "cannot be read"),
    ("garbage", "not a PEM public key"),
    ("private", "not a PEM public key"),
])
def test_an_unusable_public_key_is_one_error_line(signed, keys, tmp_path, key, needle):
    paths = {"missing": tmp_path / "absent.pub", "folder": tmp_path, "garbage": tmp_path / "garbage.pub",
             "private": keys["trainer"][0]}
    (tmp_path / "garbage.pub").write_text("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    for command in ("check", "watch"):
        one_error_line(agent(command, signed, tmp_path, "--camera", "57", public_key=paths[key]),
                       "model.public_key", needle)


@pytest.mark.parametrize("key,needle", [("missing", "cannot be read"), ("public", "not a PEM private key")])
def test_sign_refuses_an_unusable_private_key(signed, keys, tmp_path, key, needle):
    model = copy_of(signed, tmp_path / "model")
    signature_path(model).unlink()
    key_path = {"missing": tmp_path / "absent.pem", "public": keys["trainer"][1]}[key]
    one_error_line(runner.invoke(export_app, ["sign", str(model), "--key", str(key_path)]), "--key", needle)
    assert not signature_path(model).exists()


def test_sign_refuses_a_model_its_manifest_does_not_vouch_for(signed, keys, tmp_path):
    model = copy_of(signed, tmp_path / "model")
    model.write_bytes(flip_byte(model.read_bytes(), CLASS_NAMES[1].encode()))
    one_error_line(runner.invoke(export_app, ["sign", str(model), "--key", str(keys["trainer"][0])]), "tampered")
