"""OpenStack microversions: parse the request's version, check the range, echo it.

Nova reads `OpenStack-API-Version: compute 2.x` or the older
`X-OpenStack-Nova-API-Version: 2.x`; Cinder `volume 3.x` or
`OpenStack-Volume-microversion`. `latest` means the highest served. A version
outside the range is answered 406, a malformed one 400, and the version used is
echoed with `Vary`, as clients (keystoneauth, gophercloud) expect.
"""

from __future__ import annotations

import dataclasses
import functools
import re

import falcon

from ciaostack.core import errors

# Bounded digits: int() refuses strings of thousands of digits (a 500, not a 400).
_VERSION = re.compile(r"^([1-9]\d{0,5})\.(0|[1-9]\d{0,5})$")


class NotAcceptable(errors.CoreError):
    status = 406
    title = "Not Acceptable"


@functools.total_ordering
@dataclasses.dataclass(frozen=True)
class Version:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION.match(text.strip())
        if not match:
            raise errors.BadRequest(f"Version {text} is not a valid microversion.")
        return cls(int(match[1]), int(match[2]))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return (self.major, self.minor) < (other.major, other.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def matches(self, low: str, high: str | None = None) -> bool:
        """True when low <= self (<= high): `if mv.matches("2.26")` reads as Nova's schemas."""
        if self < Version.parse(low):
            return False
        return high is None or not Version.parse(high) < self


@dataclasses.dataclass(frozen=True)
class Microversions:
    """The versions one service serves, and the headers it reads and writes."""

    service: str  # "compute", "volume"
    prefix: str  # the path prefix whose requests carry a version, e.g. /compute/v2.1
    minimum: Version
    maximum: Version
    legacy_header: str  # X-OpenStack-Nova-API-Version, OpenStack-Volume-microversion

    def requested(self, req: falcon.Request) -> str | None:
        header = req.get_header("OpenStack-API-Version")
        if header:
            for item in header.split(","):
                parts = item.strip().split()
                if len(parts) == 2 and parts[0].lower() == self.service:
                    return parts[1]
        return req.get_header(self.legacy_header)

    def negotiate(self, req: falcon.Request) -> Version:
        text = self.requested(req)
        if text is None:
            return self.minimum
        if text.strip().lower() == "latest":
            return self.maximum
        version = Version.parse(text)
        if not self.minimum <= version <= self.maximum:
            raise NotAcceptable(
                f"Version {version} is not supported by the API. "
                f"Minimum is {self.minimum} and maximum is {self.maximum}."
            )
        return version


class MicroversionMiddleware:
    """Sets req.context.microversion for requests under the service's prefix."""

    def __init__(self, versions: Microversions) -> None:
        self.versions = versions

    def _mine(self, req: falcon.Request) -> bool:
        prefix = self.versions.prefix
        return req.path == prefix or req.path.startswith(prefix + "/")

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._mine(req):
            req.context.microversion = self.versions.minimum
            req.context.microversion = self.versions.negotiate(req)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool
    ) -> None:
        if not self._mine(req):
            return
        version = getattr(req.context, "microversion", self.versions.minimum)
        v = self.versions
        resp.set_header("OpenStack-API-Version", f"{v.service} {version}")
        resp.set_header(v.legacy_header, str(version))
        resp.append_header("Vary", f"OpenStack-API-Version, {v.legacy_header}")
