"""What every image resource does: know the caller, check policy as Glance does, read JSON."""

from __future__ import annotations

import json
from typing import Any

import falcon

from ciaostack.core import errors
from ciaostack.core.identity.context import AuthContext
from ciaostack.core.images.model import Caller, ImageInfo
from ciaostack.core.images.service import Authorize
from ciaostack.core.runtime import Runtime
from ciaostack.core.validation import validate

#: Largest JSON body read (a PATCH with every property at its longest fits).
MAX_JSON = 1 << 20


def auth(req: falcon.Request) -> AuthContext:
    ctx: AuthContext | None = req.context.auth
    if ctx is None:
        raise errors.Unauthorized("The request you have made requires authentication.")
    return ctx


def caller(req: falcon.Request, rt: Runtime) -> Caller:
    ctx = auth(req)
    return Caller(
        project_id=ctx.project_id,
        user_id=ctx.user_id,
        is_admin=rt.policy.check("admin_required", {}, ctx.creds()),
    )


def authorizer(req: falcon.Request, rt: Runtime, hide: bool = True) -> Authorize:
    """A policy check for the image core to call with a rule and the image.

    As in Glance, a refusal on an image the caller may not even read is a 404
    (its existence is not revealed); `hide=False` is for an image being created.
    """
    creds = auth(req).creds()

    def authorize(rule: str, image: ImageInfo) -> None:
        target = image.target()
        if rt.policy.check(rule, target, creds):
            return
        if hide and (rule == "get_image" or not rt.policy.check("get_image", target, creds)):
            raise errors.NotFound(f"No image found with ID {image.id}")
        raise errors.Forbidden(f"You are not authorized to perform the requested action: {rule}.")

    return authorize


def read_json(req: falcon.Request, schema: dict[str, Any] | None = None) -> Any:
    """The body as JSON whatever its media type (PATCH uses Glance's own types)."""
    if req.content_length is not None and req.content_length > MAX_JSON:
        raise errors.OverLimit(f"The request body is larger than {MAX_JSON} bytes.")
    raw = req.bounded_stream.read(MAX_JSON + 1)
    if len(raw) > MAX_JSON:
        raise errors.OverLimit(f"The request body is larger than {MAX_JSON} bytes.")
    if not raw.strip():
        raise errors.BadRequest("Body expected in request.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.BadRequest(f"Malformed JSON in request body: {exc}") from exc
    except RecursionError as exc:  # `[[[[...`: too deep for the parser
        raise errors.BadRequest("Malformed JSON in request body: nested too deeply.") from exc
    if schema is not None:
        validate(schema, body)
    return body
