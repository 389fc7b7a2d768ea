"""What every identity resource does: read a validated body, check policy."""

from __future__ import annotations

import falcon

from ciaostack.compat.common import authorize as authorize
from ciaostack.compat.common import caller as caller
from ciaostack.compat.common import read_body as read_body


def query_bool(req: falcon.Request, name: str) -> bool | None:
    """Keystone reads ?enabled, ?enabled=true/1 as true and 0/false/no as false.

    A parameter given twice counts by its last value, as every other filter does.
    """
    value = req.get_param(name)
    if value is None:
        return None
    return value.strip().lower() not in ("0", "false", "no", "off")
