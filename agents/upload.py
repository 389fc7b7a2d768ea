"""Sending a snapshot's disk from the node to the image API.

The launcher has no database and no user's credentials: the SNAPSHOT command
gives it an upload URL and a grant good for that one image, which go in a
plain HTTP(S) PUT of the file. The grant is a credential: it goes in a header,
never into a log line or an error message.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.parse
from pathlib import Path

from ciaostack.core.ssntp import payloads as P

CHUNK = 1 << 20
TIMEOUT = 300.0


class UploadError(Exception):
    """The image API refused or never answered the upload."""


def put_file(
    url: str,
    grant: str,
    path: Path,
    disk_format: str,
    container_format: str = "bare",
    timeout: float = TIMEOUT,
    cafile: Path | None = None,
) -> None:
    """PUT `path` to `url`, streamed; UploadError unless the API answers 2xx.

    Over https the API's certificate is checked against `cafile`, the CA the launcher
    is configured to trust for this cloud (the system's store only when none is set):
    the grant must not reach a host the cloud's CA did not vouch for."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UploadError(f"upload URL must be http(s)://host/...: {parts.scheme}://")
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=context
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    size = path.stat().st_size
    try:
        conn.putrequest("PUT", target)
        for name, value in (
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(size)),
            (P.UPLOAD_GRANT_HEADER, grant),
            (P.UPLOAD_DISK_FORMAT_HEADER, disk_format),
            (P.UPLOAD_CONTAINER_FORMAT_HEADER, container_format),
        ):
            conn.putheader(name, value)
        conn.endheaders()
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                conn.send(chunk)
        resp = conn.getresponse()
        body = resp.read(2048).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        raise UploadError(f"upload to {parts.hostname} failed: {exc}") from exc
    finally:
        conn.close()
    if not 200 <= resp.status < 300:
        raise UploadError(f"the image API answered {resp.status}: {body.strip()[:500]}")
