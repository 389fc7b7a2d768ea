"""What every identity resource does: read a validated body, check policy."""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.core import errors
from ciaostack.core.identity.context import AuthContext
from ciaostack.core.runtime import Runtime
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


def caller(req: falcon.Request) -> AuthContext:
    auth: AuthContext | None = req.context.auth
    if auth is None:
        raise errors.Unauthorized("The request you have made requires authentication.")
    return auth


def authorize(
    req: falcon.Request, rt: Runtime, rule: str, target: dict[str, Any] | None = None
) -> AuthContext:
    auth = caller(req)
    rt.policy.authorize(rule, target or {}, auth.creds())
    return auth


def query_bool(req: falcon.Request, name: str) -> bool | None:
    """Keystone reads ?enabled, ?enabled=true/1 as true and 0/false/no as false.

    A parameter given twice counts by its last value, as every other filter does.
    """
    value = req.get_param(name)
    if value is None:
        return None
    return value.strip().lower() not in ("0", "false", "no", "off")
