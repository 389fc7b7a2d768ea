"""The web-download import: fetch an image from a URL the operator allows.

The API would otherwise fetch any URL a user names, from inside the cloud's
network (server-side request forgery), so only URLs under a configured prefix
are fetched: same scheme, host and port, and a path inside the prefix's path.
Redirects are followed only when their target is allowed too, and URLs with
credentials or `..` segments are refused outright.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import SplitResult, unquote, urlsplit

CHUNK = 1 << 20
TIMEOUT = 60
_DEFAULT_PORTS = {"http": 80, "https": 443}


class DownloadFailed(Exception):
    """The URL could not be fetched; the message says why."""


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None


class AllowList:
    """URL prefixes from `[image] web_download_allow`; empty means web-download is off."""

    def __init__(self, prefixes: list[str]) -> None:
        self._prefixes: list[SplitResult] = []
        for prefix in prefixes:
            parts = urlsplit(prefix)
            if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
                raise ValueError(
                    f"[image] web_download_allow: {prefix!r} is not an http(s) URL prefix"
                )
            self._prefixes.append(parts)

    @property
    def enabled(self) -> bool:
        return bool(self._prefixes)

    def allows(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            return False
        if parts.username is not None or ".." in unquote(parts.path).split("/"):
            return False
        return any(self._under(parts, prefix) for prefix in self._prefixes)

    @staticmethod
    def _under(parts: SplitResult, prefix: SplitResult) -> bool:
        if (parts.scheme, parts.hostname, _port(parts)) != (
            prefix.scheme,
            prefix.hostname,
            _port(prefix),
        ):
            return False
        base = prefix.path or "/"
        path = parts.path or "/"
        return path == base or path.startswith(base if base.endswith("/") else base + "/")

    def fetch(self, url: str) -> Iterator[bytes]:
        """The body of `url` in chunks; DownloadFailed when it cannot be had."""
        if not self.allows(url):
            raise DownloadFailed(f"{url}: not an allowed URL")
        opener = urllib.request.build_opener(_CheckedRedirects(self))
        # An allowed http(s) URL, checked just above: no file: or custom scheme.
        request = urllib.request.Request(  # noqa: S310
            url, headers={"User-Agent": "ciaostack-image-import"}
        )
        try:
            response = opener.open(request, timeout=TIMEOUT)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DownloadFailed(f"{url}: {exc}") from exc
        with response:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except OSError as exc:
                    raise DownloadFailed(f"{url}: {exc}") from exc
                if not chunk:
                    return
                yield chunk


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL the allow list accepts as well."""

    def __init__(self, allow: AllowList) -> None:
        self._allow = allow

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        if not self._allow.allows(newurl):
            raise urllib.error.HTTPError(
                newurl, code, f"redirect to a URL that is not allowed: {newurl}", headers, fp
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)
