"""One log format for every ciaostack process: time, level, logger, key=value message."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # keystonemiddleware and oslo are chatty at INFO about things operators don't act on.
    logging.getLogger("oslo_policy").setLevel(logging.WARNING)
