"""Log lines carry syslog priorities when stderr is the journal."""
from __future__ import annotations

import logging

from agent.logs import _JournalFormatter


def test_journal_lines_carry_priorities():
    fmt = _JournalFormatter("%(name)s: %(message)s")
    record = logging.LogRecord("agent.watch", logging.WARNING, __file__, 1, "ALERT %s", ("cam",), None)
    assert fmt.format(record) == "<4>agent.watch: ALERT cam"
    record = logging.LogRecord("agent", logging.INFO, __file__, 1, "a\nb", (), None)
    assert fmt.format(record) == "<6>agent: a\n<6>b"
