"""What every compat API does first: know the caller and check policy.

Each API's own `common` module re-exports these next to its format-specific
helpers (body reading, paging), so a resource imports from one place.
"""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.core import errors
from ciaostack.core.identity.context import AuthContext
from ciaostack.core.runtime import Runtime
from ciaostack.core.validation import validate


def caller(req: falcon.Request) -> AuthContext:
    auth: AuthContext | None = req.context.auth
    if auth is None:
        raise errors.Unauthorized("The request you have made requires authentication.")
    return auth


def authorize(
    req: falcon.Request, rt: Runtime, rule: str, target: dict[str, Any] | None = None
) -> AuthContext:
    """403 unless policy allows `rule` for the caller on `target`."""
    auth = caller(req)
    rt.policy.authorize(rule, target or {}, auth.creds())
    return auth


def read_body(
    req: falcon.Request,
    schema: dict[str, Any],
    malformed: str = "The request body is not valid JSON.",
) -> dict[str, Any]:
    """The JSON body, checked against `schema`; BadRequest (in the API's format) otherwise."""
    try:
        body = req.get_media()
    except falcon.MediaNotFoundError as exc:
        raise errors.BadRequest("The request body is missing.") from exc
    except falcon.MediaMalformedError as exc:
        raise errors.BadRequest(malformed) from exc
    validate(schema, body)
    return body
