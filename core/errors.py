"""Errors raised by the core; each compat package renders them in its API's format."""

from __future__ import annotations


class CoreError(Exception):
    """Base: `status` is the HTTP status an API maps it to by default."""

    status = 500
    title = "Internal Server Error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(CoreError):
    status = 400
    title = "Bad Request"


class Unauthorized(CoreError):
    status = 401
    title = "Unauthorized"


class Forbidden(CoreError):
    status = 403
    title = "Forbidden"


class NotFound(CoreError):
    status = 404
    title = "Not Found"


class Conflict(CoreError):
    status = 409
    title = "Conflict"


class OverLimit(CoreError):
    status = 413
    title = "Request Entity Too Large"


class NotAvailable(CoreError):
    """A request this cloud understands but cannot carry out (OpenStack APIs answer 501
    for a feature the deployment's drivers lack)."""

    status = 501
    title = "Not Implemented"
