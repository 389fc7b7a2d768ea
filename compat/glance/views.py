"""Glance JSON shapes: images, members, errors.

Links inside bodies are relative (`/v2/images/<id>`), as Glance writes them;
clients resolve them against the image endpoint (gophercloud and openstacksdk
strip the version and join). Timestamps are ISO 8601 in UTC with a `Z`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

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


def error_body(status: int, title: str, message: str) -> dict[str, Any]:
    """Glance's errors are webob's JSON: `code` is the status line, `message` the text."""
    return {"code": f"{status} {title}", "title": title, "message": message}
