"""One log format for every ciaostack process: time, level, logger, key=value message."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "INFO") -> None:
    # The format names none of the caller's file, line, thread or process name, so
    # the logging module need not look them up: that lookup was most of the cost of
    # the API's access line (the documented "optimization" switches of `logging`).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # keystonemiddleware and oslo are chatty at INFO about things operators don't act on.
    logging.getLogger("oslo_policy").setLevel(logging.WARNING)
