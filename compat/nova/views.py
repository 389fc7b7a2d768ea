"""Nova JSON shapes shared by the compute resources."""

from __future__ import annotations

import datetime as dt
from typing import Any

import falcon

# Nova names each fault after its status; anything unlisted is a computeFault.
FAULT_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}


def zoneless_time(value: dt.datetime | None) -> str | None:
    """A time as Nova shows those of services, usage and migrations: with microseconds
    and without a zone designator."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value is not None else None


def base_url(req: falcon.Request) -> str:
    """The compute API's root as the client reached it."""
    return f"{req.prefix}/compute"


def fault_body(status: int, title: str, message: str) -> dict[str, Any]:
    """Nova's error document: {"<faultName>": {"code": ..., "message": ...}}."""
    return {FAULT_NAMES.get(status, "computeFault"): {"code": status, "message": message}}
