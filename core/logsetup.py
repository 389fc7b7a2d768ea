"""One log format for every ciaostack process: time, level, logger, key=value message."""

from __future__ import annotations

import logging
import sys
import time

FORMAT = "%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s"


class Formatter(logging.Formatter):
    """The standard format, with the date and time formatted once per second.

    Why: the API writes a line per request, and `strftime` of the local time was
    a third of a line's formatting; the output is the same as logging's own.
    """

    def __init__(self) -> None:
        super().__init__(FORMAT)
        self._second: tuple[int, str] = (-1, "")  # replaced whole: threads share it

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second, text = self._second
        if int(record.created) != second:
            second = int(record.created)
            text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
            self._second = (second, text)
        return f"{text},{int(record.msecs):03d}"


def setup_logging(level: str = "INFO") -> None:
    # The format names none of the caller's file, line, thread or process name, so
    # the logging module need not look them up: that lookup was most of the cost of
    # the API's access line (the documented "optimization" switches of `logging`).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # keystonemiddleware and oslo are chatty at INFO about things operators don't act on.
    logging.getLogger("oslo_policy").setLevel(logging.WARNING)
