"""The sd_notify protocol (READY, WATCHDOG, STATUS, STOPPING) without libsystemd.

Messages are datagrams to the AF_UNIX socket in $NOTIFY_SOCKET (a leading '@' means the
abstract namespace). Without $NOTIFY_SOCKET every call is a no-op, so the agent behaves
the same outside systemd.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages; the watchdog is pinged only as frames get processed."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if self._address else None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        enabled = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        # Ping at half the timeout, as sd_watchdog_enabled(3) recommends.
        self.watchdog_interval = int(usec) / 2e6 if enabled else None
        self._last_ping = float("-inf")

    @property
    def enabled(self) -> bool:
        """True under systemd (a notify socket is set)."""
        return self._sock is not None

    def send(self, *fields: str) -> None:
        """Send `KEY=value` fields as one datagram; failures are logged, never raised."""
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            log.debug("sd_notify to %r failed: %s", self._address, exc)

    def ready(self, status: str) -> None:
        """Tell systemd start-up (including warm-up) is complete."""
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        """Update the one-line status `systemctl status` shows."""
        self.send(f"STATUS={status}")

    def frame_processed(self) -> None:
        """Call after every processed frame: pings the watchdog when half its interval has passed.

        Pinging here and nowhere else means a hung capture or inference stops the pings
        and systemd restarts the service.
        """
        if self.watchdog_interval is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def stopping(self) -> None:
        """Tell systemd the agent is shutting down (flushing)."""
        self.send("STOPPING=1", "STATUS=stopping: flushing alerts")

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def writable_model_files(model: Path) -> list[Path]:
    """The model, its manifest or their folder where this process could replace them.

    A service that can rewrite its own model can be made to run any model: the unit keeps
    it in a root-owned, ReadOnlyPaths folder (configs/adversary-detector-agent.service).
    """
    model = Path(model)
    candidates = (model, model.with_name(model.name + ".manifest.json"), model.parent)
    return [p for p in candidates if p.exists() and os.access(p, os.W_OK)]
