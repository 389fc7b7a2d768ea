"""Every error leaves as JSON in the format of the API that was called.

Compat packages register a formatter for their path prefix; anything the
code did not expect is logged with its traceback and answered as a 500 in
that same format, never as HTML.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import falcon

from ciaostack.core import errors
from ciaostack.core.db.session import is_busy

LOG = logging.getLogger("ciaostack.api")
# What a client is told to wait before trying again a request the database was too busy
# for (Retry-After, seconds).
BUSY_RETRY_AFTER = 1

Formatter = Callable[[int, str, str], dict[str, Any]]


def generic_format(status: int, title: str, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "title": title, "message": message}}


class Faults:
    def __init__(self) -> None:
        self._formatters: list[tuple[str, Formatter]] = []
        self._headers: list[tuple[str, Callable[[int], dict[str, str]]]] = []

    def register(
        self,
        prefix: str,
        formatter: Formatter,
        headers: Callable[[int], dict[str, str]] | None = None,
    ) -> None:
        self._formatters.append((prefix, formatter))
        if headers is not None:
            self._headers.append((prefix, headers))

    def _formatter(self, path: str) -> Formatter:
        for prefix, formatter in self._formatters:
            if path == prefix or path.startswith(prefix + "/"):
                return formatter
        return generic_format

    def handle(self, req: falcon.Request, resp: falcon.Response, ex: Exception, _params) -> None:
        status, title, message, extra_headers = _describe(ex, req)
        resp.status = status
        resp.media = self._formatter(req.path)(status, title, message)
        for name, value in extra_headers.items():
            resp.set_header(name, value)
        for prefix, headers in self._headers:
            if req.path == prefix or req.path.startswith(prefix + "/"):
                for name, value in headers(status).items():
                    resp.set_header(name, value)


def _describe(ex: Exception, req: falcon.Request) -> tuple[int, str, str, dict[str, str]]:
    if isinstance(ex, errors.CoreError):
        return ex.status, ex.title, ex.message, {}
    if isinstance(ex, falcon.HTTPError):
        status = ex.status_code
        title = ex.title or falcon.code_to_http_status(status)
        message = ex.description or title
        if isinstance(ex, falcon.HTTPRouteNotFound | falcon.HTTPNotFound) and not ex.description:
            message = "The resource could not be found."
        headers = dict(ex.headers or {})
        return status, _plain_title(title), message, headers
    if is_busy(ex):
        # Not a bug but load: the request waited out the database's lock timeout. Clients
        # retry a 503 with Retry-After; a 500 would read as a fault of the cloud.
        LOG.warning(
            "request_id=%s database busy: %s",
            getattr(req.context, "request_id", "-"),
            getattr(ex, "orig", ex),
        )
        return (
            503,
            "Service Unavailable",
            "The database is too busy to take this request now; try again.",
            {"Retry-After": str(BUSY_RETRY_AFTER)},
        )
    LOG.exception("request_id=%s unexpected error", getattr(req.context, "request_id", "-"))
    return 500, "Internal Server Error", "An unexpected error prevented the request.", {}


def _plain_title(title: str) -> str:
    """falcon titles read '404 Not Found'; OpenStack titles have no number."""
    head, _, rest = title.partition(" ")
    return rest if head.isdigit() and rest else title
