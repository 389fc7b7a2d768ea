"""Keystone JSON shapes shared by the identity resources."""

from __future__ import annotations

import datetime as dt
from typing import Any

import falcon


def isotime(value: dt.datetime | None) -> str | None:
    """Keystone's format: microseconds and a Z (Go clients parse it strictly)."""
    if value is None:
        return None
    # isoformat is a third of strftime's cost, on the token hot path.
    if value.tzinfo is not None:
        value = value.replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


def base_url(req: falcon.Request) -> str:
    """The identity API's root as the client reached it."""
    return f"{req.prefix}/identity"


def self_link(req: falcon.Request, path: str) -> dict[str, str]:
    return {"self": f"{base_url(req)}/v3/{path}"}


def collection_links(req: falcon.Request, path: str) -> dict[str, Any]:
    return {"self": f"{base_url(req)}/v3/{path}", "previous": None, "next": None}


def error_body(status: int, title: str, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "title": title, "message": message}}
