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
