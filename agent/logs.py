"""Logging to stderr in a form the systemd journal reads well."""
from __future__ import annotations

import logging
import os
import sys

import cv2

# syslog priorities for the "<N>" prefix the journal understands on stderr.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
        return prefix + super().format(record).replace("\n", "\n" + prefix)


def _stderr_is_journal() -> bool:
    """True when stderr is connected to the journal ($JOURNAL_STREAM names its device:inode)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def setup_logging(level: str = "INFO") -> None:
    """Plain (never coloured) log lines on stderr; under systemd with priorities and no timestamp."""
    handler = logging.StreamHandler(sys.stderr)
    if _stderr_is_journal():
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # OpenCV's own warnings (failed opens, backend probing) would bypass this format.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_DEBUG if level == "DEBUG"
                                  else cv2.utils.logging.LOG_LEVEL_ERROR)
