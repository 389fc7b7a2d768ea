"""The log line format: the cached date must read exactly as logging's own."""

from __future__ import annotations

import logging

from ciaostack.core.logsetup import FORMAT, Formatter


def _record(created: float) -> logging.LogRecord:
    record = logging.LogRecord("ciaostack.access", logging.INFO, __file__, 1, "a=%s", ("b",), None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


def test_lines_match_the_standard_formatter_across_seconds() -> None:
    ours, standard = Formatter(), logging.Formatter(FORMAT)
    # Within one second, into the next, and back to an earlier one (threads log out of order).
    for created in (1_700_000_000.001, 1_700_000_000.999, 1_700_000_001.5, 1_700_000_000.25):
        record = _record(created)
        assert ours.format(record) == standard.format(record)
        assert f",{int(record.msecs):03d} INFO ciaostack.access" in ours.format(record)
