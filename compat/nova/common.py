"""What every compute resource does: know the caller, check policy, read a validated
body and query, page with limit/marker and link to itself, as Nova does.

Shared by all of compat/nova (servers included): import from here rather than
from compat/keystone, whose error texts are Keystone's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import falcon
from sqlalchemy import select

from ciaostack.compat import common
from ciaostack.compat.common import authorize as authorize
from ciaostack.compat.common import caller as caller
from ciaostack.compat.microversion import Version
from ciaostack.compat.nova.views import base_url
from ciaostack.core import errors
from ciaostack.core.db.models import Project
from ciaostack.core.runtime import Runtime

MAX_LIMIT = 1000  # Nova's [api] max_limit: the largest page, and the page without ?limit
BOOLEAN_TRUE = ("1", "t", "true", "on", "y", "yes")
BOOLEAN_FALSE = ("0", "f", "false", "off", "n", "no")


def microversion(req: falcon.Request) -> Version:
    return req.context.microversion


def allowed(
    req: falcon.Request, rt: Runtime, rule: str, target: dict[str, Any] | None = None
) -> bool:
    """Whether policy allows `rule`, without refusing (Nova's fatal=False)."""
    return rt.policy.check(rule, target or {}, caller(req).creds())


def is_admin(req: falcon.Request, rt: Runtime) -> bool:
    """Nova's context.is_admin: what admin-only views and filters depend on."""
    return allowed(req, rt, "admin_required")


def read_body(req: falcon.Request, schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON body, checked against `schema`; 400 in Nova's format otherwise."""
    return common.read_body(req, schema, malformed="Malformed request body")


def query(req: falcon.Request, name: str) -> str | None:
    """A query parameter; the last value when it is repeated (as webob, hence Nova)."""
    value = req.params.get(name)
    if isinstance(value, list):
        return value[-1] if value else None
    return value


def query_bool(req: falcon.Request, name: str, default: bool = False) -> bool:
    """A strict boolean (oslo's bool_from_string strict): 400 for anything else."""
    value = query(req, name)
    if value is None:
        return default
    return parse_bool(value, name)


def parse_bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in BOOLEAN_TRUE:
        return True
    if lowered in BOOLEAN_FALSE:
        return False
    raise errors.BadRequest(f"Invalid value '{value}' for {name}: it must be a boolean.")


def non_negative(req: falcon.Request, name: str) -> int | None:
    value = query(req, name)
    if value is None:
        return None
    if not value.isdigit():
        raise errors.BadRequest(
            f"Invalid input for query parameters {name}. Value: {value}. "
            f"'{value}' does not match '^[0-9]*$'"
        )
    return int(value)


def limit_and_marker(req: falcon.Request) -> tuple[int, str | None]:
    """The page size (at most MAX_LIMIT, which is also the default) and the marker."""
    limit = non_negative(req, "limit")
    return min(MAX_LIMIT, MAX_LIMIT if limit is None else limit), query(req, "marker")


def limit_and_offset(req: falcon.Request) -> tuple[int, int]:
    """Nova's older paging by offset (server groups)."""
    limit = non_negative(req, "limit")
    return min(MAX_LIMIT, MAX_LIMIT if limit is None else limit), non_negative(req, "offset") or 0


def resource_links(req: falcon.Request, collection: str, ident: str) -> list[dict[str, str]]:
    """A resource's self (versioned) and bookmark (unversioned) links."""
    root = base_url(req)
    return [
        {"rel": "self", "href": f"{root}/v2.1/{collection}/{ident}"},
        {"rel": "bookmark", "href": f"{root}/{collection}/{ident}"},
    ]


def next_links(
    req: falcon.Request, collection: str, count: int, limit: int, last: str | None
) -> list[dict[str, str]]:
    """Nova's `<collection>_links`: a next link when the page came back full, carrying
    the request's own parameters with the last item as marker."""
    if not count or count != limit or last is None:
        return []
    params: dict[str, Any] = {key: value for key, value in req.params.items() if key != "marker"}
    params["marker"] = last
    href = f"{base_url(req)}/v2.1/{collection}?{urlencode(params, doseq=True)}"
    return [{"rel": "next", "href": href}]


def verify_project_id(rt: Runtime, project_id: str) -> None:
    """400 for a project the identity service does not know, as Nova asks Keystone;
    with an external Keystone the API cannot tell, and accepts it."""
    if rt.conf.get("identity", "mode") == "external":
        return
    with rt.db.session(readonly=True) as session:
        known = session.scalar(select(Project.id).where(Project.id == project_id))
    if known is None:
        raise errors.BadRequest(f"Project ID {project_id} is not a valid project.")


# -- schema fragments (Nova's parameter types) ----------------------------------------------

# Printable, without leading or trailing whitespace (Nova's "name" format).
NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": r"^(?!\s)[^\x00-\x1f\x7f]*(?<!\s)$",
}
# Free text: anything but control characters other than tab and newlines.
DESCRIPTION_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
BOOLEAN = {
    "type": ["boolean", "string"],
    "enum": [
        True,
        *("True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes"),
        False,
        *("False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"),
    ],
}


def as_bool(value: bool | str) -> bool:
    """A value BOOLEAN accepted."""
    return value if isinstance(value, bool) else value.lower() in ("true", "1", "on", "yes")


def reject_unknown_params(req: falcon.Request, known: tuple[str, ...], since: str = "2.75") -> None:
    """Nova refuses query parameters it does not know (400) from `since` (2.75 for most
    resources, when it stopped ignoring them)."""
    if not microversion(req).matches(since):
        return
    unknown = sorted(set(req.params) - set(known))
    if unknown:
        raise errors.BadRequest(
            f"Invalid input for query parameters {unknown[0]}. Additional properties are not "
            f"allowed ('{unknown[0]}' was unexpected)"
        )
