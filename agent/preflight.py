"""What `agent check` proves before `watch` meets it: writable outputs, the metrics bind, the MQTT broker."""
from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from agent.alerts import check_writable
from agent.config import AgentConfig, MetricsConfig, MqttConfig
from agent.errors import AgentError
from agent.sinks.mcap import check_path
from agent.sinks.mqtt import make_client
from agent.sinks.spool import Spool


def _writable(what: str, folder: Path, file: Path | None = None) -> None:
    try:
        check_writable(folder)
        if file is not None and file.exists() and not os.access(file, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise AgentError(f"{what} {file or folder} is not writable: {exc.strerror or exc}") from None


def check_outputs(cfg: AgentConfig) -> None:
    """Every file `watch` writes can be written (creating only folders, no output files)."""
    _writable("alerts.snapshot_dir", Path(cfg.alerts.snapshot_dir))
    if cfg.alerts.evidence.enabled:
        _writable("alerts.evidence.dir", Path(cfg.alerts.evidence.dir))
    if cfg.sinks.jsonl is not None:
        _writable("sinks.jsonl", Path(cfg.sinks.jsonl).parent, Path(cfg.sinks.jsonl))
    mqtt = cfg.sinks.mqtt
    if mqtt.enabled:
        spool = Path(mqtt.spool_path)
        _writable("sinks.mqtt.spool_path", spool.parent, spool)
        if spool.exists():
            Spool(spool).close()  # a corrupt spool raises AgentError
    if cfg.sinks.mcap.path is not None:
        check_path(cfg.sinks.mcap.path)


def check_metrics_bind(cfg: MetricsConfig) -> None:
    """The metrics endpoint's address resolves and its port is free."""
    if not cfg.port:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(cfg.address, cfg.port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the HTTP server does
            sock.bind(address)
    except OSError as exc:
        raise AgentError(f"metrics endpoint {cfg.address}:{cfg.port}: {exc.strerror or exc}") from None


def check_broker(cfg: MqttConfig, camera: str, timeout_s: float = 10.0) -> str:
    """Connect (TCP, TLS, credentials) and disconnect; a description, or `AgentError` with the reason.

    A client id of its own, so a running agent with the configured id is not kicked off.
    """
    client = make_client(cfg, (cfg.client_id or f"adversary-detector-{camera}") + "-check")
    answer: dict = {}
    answered = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        answer["reason"] = reason_code
        answered.set()

    def on_disconnect(client, userdata, flags, reason_code, properties) -> None:
        # Under TLS 1.3 a rejected client certificate shows only now, after the handshake.
        answer.setdefault("closed", reason_code)
        answered.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    where = f"MQTT broker {cfg.host}:{cfg.port}"
    try:
        client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
    except (OSError, ValueError) as exc:  # refused, unresolvable, TLS handshake or certificate failures
        raise AgentError(f"{where} unreachable: {exc}") from None
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            raise AgentError(f"{where} did not answer the connection within {timeout_s:.0f} s")
        if "reason" not in answer:
            raise AgentError(f"{where} closed the connection before accepting it ({answer['closed']}); "
                             "does it require a client certificate (cert_file, key_file)?")
        if answer["reason"].is_failure:
            raise AgentError(f"{where} refused the connection: {answer['reason']}")
    finally:
        client.disconnect()
        client.loop_stop()
    return (f"{cfg.host}:{cfg.port} reachable" + (", TLS verified" if cfg.tls else "")
            + (f", user {cfg.username} accepted" if cfg.username else "") + " ok")


def preflight(cfg: AgentConfig, camera: str) -> str:
    """All the checks above; returns the broker's description ('' without MQTT)."""
    check_outputs(cfg)
    check_metrics_bind(cfg.metrics)
    return check_broker(cfg.sinks.mqtt, camera) if cfg.sinks.mqtt.enabled else ""
