"""Image PATCH bodies in Glance's two JSON-patch dialects -> the image core's Changes.

`application/openstack-images-v2.1-json-patch` is RFC 6902 style
(`{"op": "replace", "path": "/name", "value": ...}`);
`application/openstack-images-v2.0-json-patch` names the operation as the key
(`{"replace": "/name", "value": ...}`) and refuses to `add` what exists.
Paths are one level deep: a core attribute or an extra property.
"""

from __future__ import annotations

import re
from typing import Any

from ciaostack.core import errors
from ciaostack.core.images.model import READ_ONLY
from ciaostack.core.images.service import Change
from ciaostack.core.validation import validate

V20 = "application/openstack-images-v2.0-json-patch"
V21 = "application/openstack-images-v2.1-json-patch"
MEDIA_TYPES = (V20, V21)
OPERATIONS = ("add", "remove", "replace")


def _operation(raw: dict[str, Any], media_type: str) -> tuple[str, Any]:
    if media_type == V21:
        op = raw.get("op")
        if op not in OPERATIONS:
            raise errors.BadRequest(
                f"Invalid operation: `{op}`. It must be one of the following: "
                f"{', '.join(OPERATIONS)}."
            )
        if "path" not in raw:
            raise errors.BadRequest("Unable to find 'path' in JSON Schema change")
        return op, raw["path"]
    named = [op for op in OPERATIONS if op in raw]
    if len(named) != 1:
        raise errors.BadRequest(
            'Operation objects must contain exactly one member named "add", "remove", or "replace".'
        )
    return named[0], raw[named[0]]


def _name(pointer: Any) -> str:
    """The one property a JSON pointer names (`~1` is '/', `~0` is '~')."""
    if not isinstance(pointer, str) or not pointer.startswith("/"):
        raise errors.BadRequest(f'Pointer `{pointer}` does not start with "/".')
    if re.search("~[^01]", pointer) or pointer.endswith("~"):
        raise errors.BadRequest(
            f'Pointer `{pointer}` contains "~" not part of a recognized escape sequence.'
        )
    parts = pointer[1:].split("/")
    if len(parts) != 1 or not parts[0].strip():
        raise errors.BadRequest(f"Invalid JSON pointer for this resource: '{pointer}'")
    return parts[0].replace("~1", "/").replace("~0", "~").strip()


def parse(body: Any, media_type: str, image_schema: dict[str, Any]) -> list[Change]:
    if not isinstance(body, list):
        raise errors.BadRequest("Request body must be a JSON array of operation objects.")
    changes = []
    for raw in body:
        if not isinstance(raw, dict):
            raise errors.BadRequest("Operations must be JSON objects.")
        op, pointer = _operation(raw, media_type)
        name = _name(pointer)
        if name in READ_ONLY:
            raise errors.Forbidden(f"Attribute '{name}' is read-only.")
        value = None
        if op != "remove":
            if "value" not in raw:
                raise errors.BadRequest(f'Operation "{op}" requires a member named "value".')
            value = raw["value"]
            validate(image_schema, {name: value})
        changes.append(Change(op=op, name=name, value=value, strict_add=media_type == V20))
    return changes
