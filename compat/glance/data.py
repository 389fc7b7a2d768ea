"""Image data over HTTP: upload and stage (streamed in), import, download (streamed out).

Request bodies are read in 1 MiB chunks straight into the store: with a
Content-Length through falcon's bounded stream, without one (chunked transfer
encoding) through the server's input, which gunicorn decodes and ends at the
last chunk. A body shorter than announced, or a connection that fails
mid-way, is a broken upload: the core puts the image back to queued and
keeps nothing. gunicorn's gthread workers heartbeat from their main thread,
so a transfer longer than the worker timeout is not killed.

Downloads answer Range requests (206, or 416 when unsatisfiable) and hand
the store's reader to the server: a file reader is sent with sendfile(2).

Compute nodes upload server snapshots to an internal route with no token: the
upload grant in the request (see core/images/snapshots.py) is the credential.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import falcon

from ciaostack.compat.glance import schemas
from ciaostack.compat.glance.base import Glance
from ciaostack.compat.glance.common import authorizer, caller, read_json
from ciaostack.core import errors
from ciaostack.core.images import snapshots
from ciaostack.core.images.data import BrokenUpload
from ciaostack.core.ssntp import payloads as P

CHUNK = 1 << 20
OCTET_STREAM = "application/octet-stream"


def _declared_size(req: falcon.Request) -> int | None:
    header = req.get_header("X-OpenStack-Image-Size")
    if header is None:
        return req.content_length
    try:
        size = int(header)
    except ValueError as exc:
        raise errors.BadRequest("Invalid or missing image size in request headers.") from exc
    if size < 0:
        raise errors.BadRequest("Invalid or missing image size in request headers.")
    return size


def _body(req: falcon.Request, declared: int | None) -> Iterator[bytes]:
    """The request body in chunks; BrokenUpload if it ends early or the read fails."""
    stream = req.bounded_stream if req.content_length is not None else req.stream
    received = 0
    while True:
        try:
            chunk = stream.read(CHUNK)
        except Exception as exc:  # the server raises its own error types for a broken body
            raise BrokenUpload(f"The upload was interrupted after {received} bytes.") from exc
        if not chunk:
            break
        received += len(chunk)
        yield chunk
    if declared is not None and received != declared:
        raise BrokenUpload(f"The upload ended after {received} of {declared} bytes.")


def _incoming(req: falcon.Request) -> tuple[Iterator[bytes], int | None]:
    media_type = (req.content_type or "").split(";")[0].strip().lower()
    if media_type != OCTET_STREAM:
        raise falcon.HTTPUnsupportedMediaType(
            description=f"Image data must be sent as {OCTET_STREAM}."
        )
    declared = _declared_size(req)
    return _body(req, declared), declared


class ImageFile:
    def __init__(self, glance: Glance) -> None:
        self.glance = glance

    def on_put(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        chunks, declared = _incoming(req)
        rt = self.glance.rt
        self.glance.service.data.upload(
            caller(req, rt), image_id, chunks, declared, authorizer(req, rt)
        )
        resp.status = falcon.HTTP_204

    def on_get(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        rt = self.glance.rt
        data = self.glance.service.data
        download = data.download(caller(req, rt), image_id, authorizer(req, rt))
        if download.location is None:
            resp.status = falcon.HTTP_204
            return
        size = download.image.size or 0
        offset, length = 0, size
        if req.range is not None and size > 0:
            offset, end = _satisfiable(req.range, size)
            length = end - offset + 1
            resp.status = falcon.HTTP_206
            resp.set_header("Content-Range", f"bytes {offset}-{end}/{size}")
        elif download.image.checksum:
            resp.set_header("Content-MD5", download.image.checksum)
        resp.content_type = OCTET_STREAM
        resp.set_header("Accept-Ranges", "bytes")
        resp.set_stream(data.open(download, offset, length), length)


def _satisfiable(byte_range: tuple[int, int], size: int) -> tuple[int, int]:
    """First and last byte of a `bytes=` range (falcon's form: -N suffix, -1 open end)."""
    first, last = byte_range
    if first < 0:
        return max(size + first, 0), size - 1
    end = size - 1 if last < 0 else min(last, size - 1)
    if first >= size or end < first:
        raise falcon.HTTPRangeNotSatisfiable(size)
    return first, end


class ImageStage:
    def __init__(self, glance: Glance) -> None:
        self.glance = glance

    def on_put(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        chunks, declared = _incoming(req)
        rt = self.glance.rt
        self.glance.service.data.stage(
            caller(req, rt), image_id, chunks, declared, authorizer(req, rt)
        )
        resp.status = falcon.HTTP_204


class ImageImport:
    def __init__(self, glance: Glance) -> None:
        self.glance = glance

    def on_post(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        body: dict[str, Any] = read_json(req, schemas.IMPORT)
        stores = list(body.get("stores", []))
        header = req.get_header("X-Image-Meta-Store")
        if header:
            stores.append(header)
        rt = self.glance.rt
        self.glance.service.data.import_image(
            caller(req, rt),
            image_id,
            body["method"]["name"],
            body["method"].get("uri"),
            stores,
            authorizer(req, rt),
            req.context.request_id,
        )
        resp.status = falcon.HTTP_202


class SnapshotUpload:
    """PUT /image/internal/snapshots/{image_id}: a compute node sends a snapshot's disk."""

    public = True  # no token: the upload grant is checked by the core

    def __init__(self, glance: Glance, grants: snapshots.UploadGrants) -> None:
        self.glance = glance
        self.grants = grants

    def on_put(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        disk_format = req.get_header(P.UPLOAD_DISK_FORMAT_HEADER)
        if not disk_format:
            raise errors.BadRequest(f"{P.UPLOAD_DISK_FORMAT_HEADER} is required.")
        chunks, declared = _incoming(req)
        service = self.glance.service
        snapshots.receive(
            service.images,
            service.data,
            self.grants,
            image_id,
            req.get_header(P.UPLOAD_GRANT_HEADER) or "",
            disk_format,
            req.get_header(P.UPLOAD_CONTAINER_FORMAT_HEADER) or "bare",
            chunks,
            declared,
        )
        resp.status = falcon.HTTP_204
