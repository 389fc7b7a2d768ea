"""The collector's settings for long-running processes (in a child process: freezing
this test run's own objects would change what the other tests measure)."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import gc, json
from ciaostack.core import collector
import ciaostack.core.db.models  # what a service imports before it settles
tracked = len(gc.get_objects())
collector.settle()
print(json.dumps({"tracked": tracked, "frozen": gc.get_freeze_count(),
                  "threshold": gc.get_threshold()}))
"""


def test_settle_freezes_what_exists_and_collects_the_young_less_often() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    )
    figures = json.loads(out.stdout)
    # Everything that survived the collection before freezing is out of the generations.
    assert figures["frozen"] >= 0.9 * figures["tracked"] > 10_000
    assert figures["threshold"] == [10_000, 20, 20]
