"""Cross-cutting request handling: request ids, access log, authentication."""

from __future__ import annotations

import logging
import time
import urllib.parse
import uuid

import falcon

from ciaostack.core import errors
from ciaostack.core.identity.context import AuthContext

ACCESS = logging.getLogger("ciaostack.access")
# Characters a logged path keeps as they are; anything else is percent-encoded.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


class RequestId:
    """Gives each request an id, echoes it, and logs one line when it ends."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()
        req.context.request_id = f"req-{uuid.uuid4()}"
        req.context.auth = None

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool
    ) -> None:
        resp.set_header("x-openstack-request-id", req.context.request_id)
        auth: AuthContext | None = req.context.auth
        elapsed = (time.perf_counter() - req.context.started) * 1000
        ACCESS.info(
            "request_id=%s method=%s path=%s status=%s user=%s project=%s duration_ms=%.1f",
            req.context.request_id,
            req.method,
            # Percent-encoded again: a decoded path could forge log lines with a newline.
            urllib.parse.quote(req.path, safe=_PATH_SAFE),
            resp.status_code if hasattr(resp, "status_code") else resp.status,
            auth.user_id if auth else "-",
            (auth.project_id or "-") if auth else "-",
            elapsed,
        )


class Authenticate:
    """Resolves X-Auth-Token into req.context.auth before any protected responder.

    A resource opts out with `public = True` (version documents, token issue).
    """

    def __init__(self, validate) -> None:  # noqa: ANN001 - Callable[[str], AuthContext]
        self._validate = validate

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource, params
    ) -> None:
        if resource is None or getattr(resource, "public", False):
            return
        token = req.get_header("X-Auth-Token")
        if not token:
            raise errors.Unauthorized("The request you have made requires authentication.")
        req.context.auth = self._validate(token)


class ExternalAuthenticate:
    """External Keystone mode: keystonemiddleware has validated the token and
    replaced any client-sent identity headers with its own."""

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource, params
    ) -> None:
        if resource is None or getattr(resource, "public", False):
            return
        if req.get_header("X-Identity-Status") != "Confirmed":
            raise errors.Unauthorized("The request you have made requires authentication.")
        roles = [r.strip() for r in (req.get_header("X-Roles") or "").split(",") if r.strip()]
        req.context.auth = AuthContext(
            user_id=req.get_header("X-User-Id") or "",
            user_name=req.get_header("X-User-Name") or "",
            user_domain_id=req.get_header("X-User-Domain-Id") or "",
            user_domain_name=req.get_header("X-User-Domain-Name") or "",
            project_id=req.get_header("X-Project-Id"),
            project_name=req.get_header("X-Project-Name"),
            project_domain_id=req.get_header("X-Project-Domain-Id"),
            project_domain_name=req.get_header("X-Project-Domain-Name"),
            domain_id=req.get_header("X-Domain-Id"),
            domain_name=req.get_header("X-Domain-Name"),
            roles=roles,
        )
