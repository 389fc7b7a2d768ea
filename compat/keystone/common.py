"""What every identity resource does: read a validated body, check policy."""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.compat.common import authorize as authorize
from ciaostack.compat.common import caller as caller
from ciaostack.core import errors
from ciaostack.core.validation import validate


def read_body(req: falcon.Request, schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON body, checked against `schema`; 400 in Keystone's format otherwise."""
    try:
        body = req.get_media()
    except falcon.MediaNotFoundError as exc:
        raise errors.BadRequest("The request body is missing.") from exc
    except falcon.MediaMalformedError as exc:
        raise errors.BadRequest("The request body is not valid JSON.") from exc
    validate(schema, body)
    return body


def query_bool(req: falcon.Request, name: str) -> bool | None:
    """Keystone reads ?enabled, ?enabled=true/1 as true and 0/false/no as false.

    A parameter given twice counts by its last value, as every other filter does.
    """
    value = req.get_param(name)
    if value is None:
        return None
    return value.strip().lower() not in ("0", "false", "no", "off")
