"""Glance JSON shapes: images, members, errors.

Links inside bodies are relative (`/v2/images/<id>`), as Glance writes them;
clients resolve them against the image endpoint (gophercloud and openstacksdk
strip the version and join). Timestamps are ISO 8601 in UTC with a `Z`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ciaostack.core.db.models import ImageTask
from ciaostack.core.images.model import ImageInfo, MemberInfo

#: Core attributes in the order Glance writes them, after the extra properties.
_ATTRIBUTES = (
    "name",
    "disk_format",
    "container_format",
    "visibility",
    "size",
    "virtual_size",
    "status",
    "checksum",
    "protected",
    "min_ram",
    "min_disk",
    "owner",
    "os_hidden",
    "os_hash_algo",
    "os_hash_value",
    "id",
)


def isotime(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def image_href(image_id: str, sub: str = "") -> str:
    return f"/v2/images/{image_id}/{sub}" if sub else f"/v2/images/{image_id}"


def image(info: ImageInfo, store_id: str) -> dict[str, Any]:
    view: dict[str, Any] = dict(info.properties)
    for name in _ATTRIBUTES:
        view[name] = getattr(info, name)
    view["created_at"] = isotime(info.created_at)
    view["updated_at"] = isotime(info.updated_at)
    view["tags"] = list(info.tags)
    view["self"] = image_href(info.id)
    view["file"] = image_href(info.id, "file")
    view["schema"] = "/v2/schemas/image"
    if info.has_data:
        view["stores"] = store_id
    return view


def member(info: MemberInfo) -> dict[str, Any]:
    return {
        "member_id": info.member_id,
        "image_id": info.image_id,
        "status": info.status,
        "created_at": isotime(info.created_at),
        "updated_at": isotime(info.updated_at),
        "schema": "/v2/schemas/member",
    }


def _task_time(value: dt.datetime | None) -> str | None:
    """Glance shows task times as Python's isoformat, without a zone designator."""
    return value.isoformat() if value is not None else None


def task(row: ImageTask) -> dict[str, Any]:
    """One of an image's tasks (GET /v2/images/{id}/tasks), with Glance's fields."""
    return {
        "id": row.id,
        "type": row.type,
        "status": row.status,
        "owner": row.owner,
        "expires_at": _task_time(row.expires_at),
        "created_at": _task_time(row.created_at),
        "updated_at": _task_time(row.updated_at),
        "deleted_at": None,
        "deleted": False,
        "image_id": row.image_id,
        "request_id": row.request_id,
        "user_id": row.user_id,
        "input": row.input,
        "result": row.result,
        "message": row.message,
    }


def error_body(status: int, title: str, message: str) -> dict[str, Any]:
    """Glance's errors are webob's JSON: `code` is the status line, `message` the text."""
    return {"code": f"{status} {title}", "title": title, "message": message}
