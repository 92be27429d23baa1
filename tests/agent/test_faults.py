"""Fault injection: every fault ends in one error line and exit 2 at startup, or is survived with no alert lost.

Real components only: a Mosquitto started here (with TLS and passwords where needed), small
tmpfs mounts that fill up or are read-only, truncated video files, models with external data.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import onnx
import pytest
from onnx.external_data_helper import set_external_data
from typer.testing import CliRunner

from agent.cameras import resolve
from agent.cli import app
from agent.config import AlertConfig, load_agent_config
from agent.sinks.jsonl import JsonlSink
from agent.sinks.mqtt import MqttSink
from agent.sinks.spool import Spool
from agent.watch import Watch
from common.files import sha256_file
from common.manifest import manifest_path, write_manifest
from conftest import MOSQUITTO, Broker, write_config, write_sequence, write_video
from fixture_model import build_fixture_model, make_frames, perturb, smooth_frame
from test_mqtt import TOPIC, alert, firsts, sink_config, subscriber  # noqa: F401 (fixture)

runner = CliRunner()


# ---------------------------------------------------------------- helpers

@pytest.fixture
def mount(tmp_path):
    """mount(name, size, ro=False): a fresh tmpfs under tmp_path; unmounted afterwards."""
    mounted: list[Path] = []

    def make(name: str, size: str = "160k", ro: bool = False) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield make
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave: int = 0) -> None:
    """Fill the filesystem of `folder`, then free about `leave` bytes again."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while fh.write(b"\0" * 4096):
                pass
        except OSError:
            pass
    with open(filler, "r+b") as fh:
        fh.truncate(max(0, filler.stat().st_size - leave))


def sample(registry, name: str, **labels) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def one_error_line(result, *needles):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def capture_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("capture")]


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> str:
    return write_video(tmp_path_factory.mktemp("video") / "clip.avi", make_frames(40, adversarial=[5, 25]))


def needs_broker():
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed")


# ---------------------------------------------------------------- 1. MQTT topics

@pytest.mark.parametrize("key,topic", [("alert_topic", "ad/#"), ("alert_topic", ""),
                                       ("status_topic", "ad/+/status"), ("alert_topic", "ad/{0}/alerts")])
def test_bad_topic_is_a_config_error(model_path, video, key, topic):
    one_error_line(runner.invoke(app, ["check", "--model", str(model_path), "--source", video,
                                       "--set", f"sinks.mqtt.{key}={topic!r}"]), f"sinks.mqtt.{key}")


def test_spooled_rows_with_a_bad_topic_go_to_dead_letter(subscriber, broker, tmp_path, caplog):
    """Rows of an older, misconfigured run must not block the good ones behind them."""
    spool = Spool(tmp_path / "spool.sqlite3")
    for topic, n in ((TOPIC, 1), ("adversary-detector/#", 2), ("", 3), (TOPIC, 4)):
        spool.put(topic, json.dumps(alert(n)).encode())
    spool.close()
    sink = MqttSink(sink_config(broker, tmp_path), "cam")
    sink.emit(alert(5))
    assert subscriber.wait_for(lambda s: len(set(s.ids)) == 3), subscriber.ids
    assert firsts(subscriber.ids) == ["alert-1", "alert-4", "alert-5"]
    assert sample(sink.metrics.registry, "agent_mqtt_dead_letters_total") == 2
    dead = sink.spool.dead_letters()
    sink.close()
    assert [json.loads(payload)["id"] for _, payload, _ in dead] == ["alert-2", "alert-3"]
    assert sum("cannot publish an alert" in r.message for r in caplog.records) == 2


def test_publisher_is_restarted_after_a_failure(broker, subscriber, tmp_path, monkeypatch):
    sink = MqttSink(sink_config(broker, tmp_path), "cam")
    real_head, failures = sink.spool.head, [sqlite3.OperationalError("disk I/O error")]

    def head(**kw):
        if failures:
            raise failures.pop()
        return real_head(**kw)

    monkeypatch.setattr(sink.spool, "head", head)
    sink.emit(alert(1))
    assert subscriber.wait_for(lambda s: "alert-1" in s.ids)
    assert sample(sink.metrics.registry, "agent_mqtt_publisher_restarts_total") == 1
    sink.close()


def test_connection_failures_are_logged_while_running(tmp_path, caplog):
    needs_broker()
    absent = Broker(tmp_path)  # never started: its port refuses connections
    sink = MqttSink(sink_config(absent, tmp_path), "cam")
    try:
        sink.emit(alert(1))
        deadline = time.monotonic() + 30
        while sample(sink.metrics.registry, "agent_mqtt_connect_failures_total") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sample(sink.metrics.registry, "agent_mqtt_connect_failures_total") >= 2
        assert any("MQTT cannot connect to 127.0.0.1" in r.message for r in caplog.records)
    finally:
        sink.cfg = sink.cfg.model_copy(update={"flush_timeout_s": 0})
        sink.close()


# ---------------------------------------------------------------- 2 + 4. full disk

def test_full_disk_loses_no_alert_and_corrupts_no_evidence(broker, subscriber, model_path, mount, tmp_path):
    """Spool, alert log and snapshots share a small filesystem that is full while alerts come in."""
    disk = mount("state", "256k")
    frames = make_frames(40, adversarial=range(0, 40, 2))  # one alert per adversarial frame
    cfg = load_agent_config(write_config(
        tmp_path / "a.yaml", tmp_path,
        alerts={"k": 1, "n": 1, "clear_after": 1, "cooldown_frames": 0, "snapshot_dir": str(disk / "snapshots"),
                "min_free_mb": 0},
        sinks={"stdout": False, "jsonl": str(disk / "alerts.jsonl"),
               "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port, "reconnect_min_s": 0.05,
                        "reconnect_max_s": 0.2, "spool_path": str(disk / "spool.sqlite3")}}))
    watch = Watch(cfg, model_path, resolve(cfg, sources=["cam=" + write_sequence(tmp_path / "seq", frames)]))
    fill(disk, leave=64 << 10)  # room for a snapshot or two, then nothing
    summary = watch.run()
    registry = watch.metrics.registry

    assert summary.alerts == 20
    assert sample(registry, "agent_mqtt_spool_errors_total") > 0, "the spool never filled: fault not reproduced"
    assert subscriber.wait_for(lambda s: len(set(s.ids)) == 20), len(set(subscriber.ids))

    text = (disk / "alerts.jsonl").read_text()
    assert text == "" or text.endswith("\n")
    logged = [json.loads(line) for line in text.splitlines()]
    jsonl_errors = sample(registry, "agent_sink_errors_total", sink="JsonlSink")
    assert jsonl_errors > 0 and len(logged) + jsonl_errors == 20
    assert [e["id"] for e in logged] == [i for i in firsts(subscriber.ids) if i in {e["id"] for e in logged}]
    for event in logged:
        if event["snapshot"] is not None:
            assert cv2.imread(event["snapshot"]) is not None, event["snapshot"]
    snapshots = list((disk / "snapshots").iterdir())
    assert snapshots and all(cv2.imread(str(p)) is not None for p in snapshots), "complete PNGs only"
    assert sample(registry, "agent_snapshot_errors_total", reason="low_space") > 0


def test_spool_on_a_full_disk_delivers_each_alert_once(broker, subscriber, mount, tmp_path):
    """SQLite needs room even to delete: delivered rows that cannot be removed must not be resent."""
    disk = mount("spool", "160k")
    broker.stop()
    sink = MqttSink(sink_config(broker, disk), "cam")
    for n in (1, 2, 3):
        sink.emit(alert(n))
    fill(disk)
    broker.start()
    for n in (4, 5):
        sink.emit(alert(n))  # the spool cannot take these: held in memory
    assert subscriber.wait_for(lambda s: len(set(s.ids)) == 5), subscriber.ids
    deadline = time.monotonic() + 10
    while sink.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sink.pending() == 0
    sink.close()
    assert subscriber.ids == [f"alert-{n}" for n in range(1, 6)], "each once, in order"
    assert sample(sink.metrics.registry, "agent_mqtt_publisher_restarts_total") == 0


def test_snapshot_free_space_guard_and_retention(mount, tmp_path):
    disk = mount("snaps", "512k")
    noisy = perturb(smooth_frame(0), seed=1)
    size = len(cv2.imencode(".png", noisy, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1])
    old = disk / "old.png"
    cv2.imwrite(str(old), noisy)
    os.utime(old, (time.time() - 40 * 86400,) * 2)
    from agent.alerts import SnapshotWriter

    writer = SnapshotWriter(AlertConfig(snapshot_dir=disk, snapshot_max_mb=2.5 * size / 2**20,
                                        snapshot_max_age_days=30, min_free_mb=0.1))
    assert not old.exists(), "older than snapshot_max_age_days"
    written = []
    for i in range(6):
        try:
            written.append(writer.write(noisy, "cam", i, time.time()))
        except OSError as exc:
            assert "min_free_mb" in str(exc)
    kept = sorted(disk.glob("*.png"))
    assert kept == written[-2:], "only the newest snapshots within snapshot_max_mb stay"
    fill(disk)
    with pytest.raises(OSError, match="min_free_mb"):
        writer.write(noisy, "cam", 99, time.time())
    assert sorted(disk.glob("*.png")) == kept


def test_snapshot_that_cannot_be_written_is_an_error_not_an_empty_file(mount):
    """Free bytes but no free inode: the guard passes, the write itself fails and must say so."""
    disk = mount("inodes", "512k,nr_inodes=4")
    from agent.alerts import SnapshotWriter

    writer = SnapshotWriter(AlertConfig(snapshot_dir=disk, min_free_mb=0))
    n = 0
    with pytest.raises(OSError):
        while n < 100:
            (disk / f"f{n}").touch()
            n += 1
    with pytest.raises(OSError, match="not saved"):
        writer.write(perturb(smooth_frame(0), seed=1), "cam", 1, time.time())
    assert not list(disk.glob("*.png*"))
    assert sample(writer.metrics.registry, "agent_snapshot_errors_total", reason="write") == 1


def test_jsonl_rotates_and_repairs_a_torn_tail(tmp_path):
    path = tmp_path / "alerts.jsonl"
    path.write_text('{"id":"a"}\n{"id":"b", "tor')  # as a power cut mid-line leaves it
    sink = JsonlSink(path, max_bytes=300)
    for n in range(10):
        sink.emit({"id": f"e{n}", "pad": "x" * 40})
    sink.close()
    rotated = path.with_name("alerts.jsonl.1")
    ids = [json.loads(line)["id"] for line in rotated.read_text().splitlines() + path.read_text().splitlines()]
    assert ids == [f"e{n}" for n in range(10 - len(ids), 10)] and len(ids) >= 4
    assert path.stat().st_size <= 300 and rotated.stat().st_size <= 300


# ---------------------------------------------------------------- 3. startup errors after the source opened

def startup_faults(tmp_path, mount) -> dict:
    ro = mount("ro", "64k", ro=True)
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database" * 100)
    import socket
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    return {
        "snapshot dir read-only": ({"alerts": {"snapshot_dir": str(ro / "snapshots")}}, "Read-only"),
        "jsonl read-only": ({"sinks": {"stdout": False, "jsonl": str(ro / "alerts.jsonl")}}, "Read-only"),
        "spool unusable": ({"sinks": {"stdout": False, "jsonl": None, "mqtt": {
            "enabled": True, "host": "127.0.0.1", "port": 1, "spool_path": str(garbage)}}}, "not a database"),
        "metrics port in use": ({"metrics": {"port": busy.getsockname()[1]}}, "metrics endpoint"),
        "metrics address bad": ({"metrics": {"port": 9999, "address": "not an address"}}, "metrics endpoint"),
    }, busy


def test_startup_errors_exit_2_with_the_capture_thread_joined(model_path, video, mount, tmp_path):
    assert not capture_threads()
    faults, busy = startup_faults(tmp_path, mount)
    try:
        for name, (sections, needle) in faults.items():
            cfg = write_config(tmp_path / f"{name}.yaml", tmp_path, **sections)
            result = runner.invoke(app, ["watch", "--model", str(model_path), "--source", video, "--config", str(cfg)])
            one_error_line(result, needle)
            assert not capture_threads(), f"{name}: capture thread left running"
            one_error_line(runner.invoke(app, ["check", "--model", str(model_path), "--source", video,
                                               "--config", str(cfg)]), needle)
    finally:
        busy.close()


def test_startup_error_as_a_process_is_exit_2_not_sigabrt(model_path, video, mount, tmp_path):
    ro = mount("ro", "64k", ro=True)
    cfg = write_config(tmp_path / "a.yaml", tmp_path, alerts={"snapshot_dir": str(ro / "snapshots")})
    proc = subprocess.run([sys.executable, "-m", "agent", "watch", "--model", str(model_path), "--source", video,
                           "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in proc.stderr


# ---------------------------------------------------------------- 5. model pinning

def test_model_with_external_data_is_refused(model_path, video, tmp_path, monkeypatch):
    model = onnx.load(model_path)
    for tensor in model.graph.initializer:
        if tensor.data_type == onnx.TensorProto.FLOAT:
            set_external_data(tensor, "weights.bin")
    path = tmp_path / "external.onnx"
    onnx.save_model(model, path)
    metadata = json.loads(manifest_path(model_path).read_text())["metadata"]
    write_manifest(path, metadata)  # the manifest is self-consistent: it hashes the .onnx only
    (tmp_path / "weights.bin").write_bytes(b"\0" * (tmp_path / "weights.bin").stat().st_size)
    monkeypatch.chdir(tmp_path)  # weights.bin is right here too: still not trusted
    for command in ("check", "watch"):
        one_error_line(runner.invoke(app, [command, "--model", str(path), "--source", video]), "external data")


def test_pinned_sha256_refuses_any_other_model(model_path, video, tmp_path):
    other = build_fixture_model(tmp_path / "other.onnx", gain=0.0)  # a consistent pair that never alerts
    pin = f"model.sha256={sha256_file(model_path)}"
    for command in ("check", "watch"):
        one_error_line(runner.invoke(app, [command, "--model", str(other), "--source", video, "--set", pin]),
                       "pinned model.sha256")
    result = runner.invoke(app, ["check", "--model", str(model_path), "--source", video, "--set", pin])
    assert result.exit_code == 0 and "pinned by model.sha256" in result.stdout, result.output


def test_unit_reads_the_model_from_a_path_the_service_cannot_write():
    unit = (Path(__file__).parents[2] / "configs" / "adversary-detector-agent.service").read_text()
    model = next(part for part in unit.split() if part.startswith("/") and part.endswith(".onnx"))
    read_only = next(line for line in unit.splitlines() if line.startswith("ReadOnlyPaths=")).split("=", 1)[1].split()
    state = "/var/lib/adversary-detector"
    assert any(model.startswith(p + "/") for p in read_only) and not model.startswith(state), model


def test_writable_model_is_reported_under_systemd(model_path, video, tmp_path, caplog):
    from agent.systemd import Notifier

    cfg = load_agent_config(write_config(tmp_path / "a.yaml", tmp_path))
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "absent.sock")})
    Watch(cfg, model_path, resolve(cfg, sources=[video]), notifier=notifier).run(max_frames=1)
    assert any("could replace its own model" in r.message for r in caplog.records) == os.access(model_path, os.W_OK)


# ---------------------------------------------------------------- 6. smaller gaps

def test_truncated_video_is_flagged(model_path, tmp_path):
    whole = write_video(tmp_path / "whole.avi", make_frames(40))
    data = Path(whole).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    result = runner.invoke(app, ["watch", "--model", str(model_path), "--source", str(cut),
                                 "--config", str(write_config(tmp_path / "a.yaml", tmp_path))])
    assert result.exit_code == 1, result.output
    assert "ended early" in result.stderr and "of the 40 it declares" in result.stderr


def test_password_file_without_username_is_a_config_error(model_path, video, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("x")
    one_error_line(runner.invoke(app, ["check", "--model", str(model_path), "--source", video,
                                       "--set", f"sinks.mqtt.password_file={secret}"]), "password_file needs username")


def test_yaml_alias_bomb_is_refused(model_path, video, tmp_path):
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\ncamera: {name: *i}\n")
    one_error_line(runner.invoke(app, ["check", "--model", str(model_path), "--source", video,
                                       "--config", str(bomb)]), "alias")


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    """Mosquitto requiring TLS with a client certificate signed by a test CA, and a password."""
    if MOSQUITTO is None or shutil.which("openssl") is None:
        pytest.skip("mosquitto or openssl is not installed")
    d = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test-ca")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext")
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(d / "passwd"), "agent", "s3cret"], check=True,
                   capture_output=True)
    for path in d.iterdir():
        path.chmod(0o644)
    (d / "password").write_text("s3cret\n")
    (d / "wrong").write_text("nope\n")
    broker = Broker(d)
    broker.conf.write_text(f"listener {broker.port} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\n"
                           f"keyfile {d}/server.key\nrequire_certificate true\nallow_anonymous false\n"
                           f"password_file {d}/passwd\npersistence false\nuser root\n")
    broker.start()
    yield broker, d
    broker.stop()


def test_tls_client_certificate_and_credentials(tls_broker, model_path, video, tmp_path, caplog):
    broker, d = tls_broker
    good = ["sinks.mqtt.enabled=true", "sinks.mqtt.host=127.0.0.1", f"sinks.mqtt.port={broker.port}",
            f"sinks.mqtt.ca_file={d}/ca.crt", f"sinks.mqtt.cert_file={d}/client.crt",
            f"sinks.mqtt.key_file={d}/client.key", "sinks.mqtt.username=agent",
            f"sinks.mqtt.password_file={d}/password", f"sinks.mqtt.spool_path={tmp_path}/spool.sqlite3"]

    def check(sets: list[str]):
        args = ["check", "--model", str(model_path), "--source", video]
        for item in sets:
            args += ["--set", item]
        return runner.invoke(app, args)

    no_cert = [s for s in good if not s.startswith(("sinks.mqtt.cert_file", "sinks.mqtt.key_file"))]
    # While running, a rejected connection is logged and counted, not retried in silence.
    sink = MqttSink(load_agent_config(None, no_cert + ["sinks.mqtt.flush_timeout_s=0"]).sinks.mqtt, "cam")
    deadline = time.monotonic() + 30
    while sample(sink.metrics.registry, "agent_mqtt_connect_failures_total") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    sink.close()
    assert sample(sink.metrics.registry, "agent_mqtt_connect_failures_total") >= 1
    assert any("MQTT cannot connect" in r.message and "client certificate" in r.message for r in caplog.records)

    result = check(good)
    assert result.exit_code == 0, result.output
    assert "TLS verified, user agent accepted ok" in result.stdout
    one_error_line(check(no_cert), "MQTT broker", "client certificate")
    wrong_password = [s for s in good if not s.startswith("sinks.mqtt.password_file")]
    one_error_line(check(wrong_password + [f"sinks.mqtt.password_file={d}/wrong"]), "refused")

    sub_cfg = load_agent_config(None, good).sinks.mqtt
    sink = MqttSink(sub_cfg, "cam")
    assert sink.connected.wait(30)
    sink.emit(alert(1))
    sink.close()
    assert len(Spool(tmp_path / "spool.sqlite3")) == 0, "delivered and acknowledged over TLS"
