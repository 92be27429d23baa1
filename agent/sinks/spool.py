"""A durable FIFO of messages waiting for the broker, kept in SQLite, with a dead-letter table.

Rows are written (and synced) before an alert counts as raised and deleted only after the
broker acknowledged them, so alerts survive a broker outage and an agent restart, and are
delivered oldest first. A row the broker can never take (e.g. a topic spooled by an older,
misconfigured run) moves to `dead_letter` with the reason, instead of blocking the rows
behind it.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from agent.errors import AgentError


class Spool:
    """Ordered, persistent queue of (topic, payload) pairs; safe to use from several threads.

    `put`, `ack` and `dead_letter` raise `sqlite3.Error` when the disk is full or the file
    unusable; the caller decides what to fall back to.
    """

    def __init__(self, path: Path) -> None:
        path = Path(path)
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed alert is on disk before emit() returns.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS spool ("
                             "id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS dead_letter (id INTEGER PRIMARY KEY, "
                             "topic TEXT NOT NULL, payload BLOB NOT NULL, error TEXT NOT NULL, failed_at REAL NOT NULL)")
        except (sqlite3.Error, OSError) as exc:
            raise AgentError(f"MQTT spool {path} cannot be used: {exc}") from None

    def put(self, topic: str, payload: bytes) -> int:
        """Append a message; returns its id."""
        with self._lock:
            return self._db.execute("INSERT INTO spool (topic, payload) VALUES (?, ?)", (topic, payload)).lastrowid

    def head(self, after: int = 0) -> tuple[int, str, bytes] | None:
        """The oldest message with an id above `after`, or None."""
        with self._lock:
            return self._db.execute("SELECT id, topic, payload FROM spool WHERE id > ? ORDER BY id LIMIT 1",
                                    (after,)).fetchone()

    def ack(self, row_id: int) -> None:
        """Forget every message up to `row_id`: they are delivered in order."""
        with self._lock:
            self._db.execute("DELETE FROM spool WHERE id <= ?", (row_id,))

    def dead_letter(self, row_id: int, error: str) -> None:
        """Move a message the broker can never take out of the queue, keeping it and the reason."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO dead_letter (id, topic, payload, error, failed_at) "
                             "SELECT id, topic, payload, ?, ? FROM spool WHERE id = ?", (error, time.time(), row_id))
            self._db.execute("DELETE FROM spool WHERE id = ?", (row_id,))

    def dead_letters(self) -> list[tuple[str, bytes, str]]:
        """(topic, payload, error) of every dead-lettered message, oldest first."""
        with self._lock:
            return self._db.execute("SELECT topic, payload, error FROM dead_letter ORDER BY id").fetchall()

    def count(self, after: int = 0) -> int:
        """Messages with an id above `after`."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM spool WHERE id > ?", (after,)).fetchone()[0]

    def __len__(self) -> int:
        return self.count()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
