"""Image data in and out: upload, stage and import, download.

An upload is three steps so that no transaction stays open while bytes flow:
claim the image (queued -> saving) and work out how much it may receive, stream
the data to the store, then record the result (saving -> active). If the
stream breaks or passes its limit, the store has kept nothing and the image
goes back to queued; if the image was deleted meanwhile, the new data is
removed again and the client is told the image is gone (410).

Interoperable import: glance-direct stores the staged data in its final place
(queued -> uploading) and the import only makes it active; web-download fetches
an allowed URL in a background thread of the worker (queued -> importing ->
active, or back to queued with `os_glance_failed_import` set).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterable

from sqlalchemy import delete, func, select

from ciaostack.core import errors
from ciaostack.core.db.models import Image, ImageProperty, utcnow
from ciaostack.core.images import tasks
from ciaostack.core.images.data import HASH_ALGO, StoredData, store_data
from ciaostack.core.images.model import Caller, ImageInfo
from ciaostack.core.images.service import UNLIMITED, Authorize, Images
from ciaostack.core.images.store import Reader
from ciaostack.core.images.webdownload import AllowList, DownloadFailed

LOG = logging.getLogger("ciaostack.images")

GLANCE_DIRECT = "glance-direct"
WEB_DOWNLOAD = "web-download"
FAILED_IMPORT = "os_glance_failed_import"
#: Web-downloads one worker process runs at once; more are refused (409).
MAX_WEB_DOWNLOADS = 4


class ImageGone(errors.CoreError):
    status = 410
    title = "Gone"


@dataclasses.dataclass(frozen=True)
class Limit:
    """How many bytes an image may receive, and what to say past that."""

    size: int
    message: str


@dataclasses.dataclass(frozen=True)
class Download:
    image: ImageInfo
    location: str | None  # None: the image has no data to serve (204)


class ImageData:
    def __init__(self, images: Images, allow: AllowList) -> None:
        self.images = images
        self.allow = allow
        self._web_slots = threading.BoundedSemaphore(MAX_WEB_DOWNLOADS)

    @property
    def import_methods(self) -> tuple[str, ...]:
        return (GLANCE_DIRECT, WEB_DOWNLOAD) if self.allow.enabled else (GLANCE_DIRECT,)

    # -- limits ---------------------------------------------------------------------

    def _limit(self, session, row: Image) -> Limit:  # noqa: ANN001 - a Session
        limits = self.images.limits
        limit = Limit(
            limits.max_image_size,
            f"The image is larger than the largest image allowed ({limits.max_image_size} bytes).",
        )
        quota = limits.quota_total_size
        if quota == UNLIMITED or row.owner is None:
            return limit
        used = session.scalar(
            select(func.coalesce(func.sum(Image.size), 0)).where(
                Image.owner == row.owner, Image.id != row.id, Image.location.is_not(None)
            )
        )
        left = max(quota - used, 0)
        if left < limit.size:
            limit = Limit(
                left,
                f"The image would pass the project's image storage quota "
                f"({quota} bytes, {used} in use).",
            )
        return limit

    # -- receiving data -----------------------------------------------------------------

    def upload(
        self,
        caller: Caller,
        image_id: str,
        chunks: Iterable[bytes],
        declared_size: int | None,
        authorize: Authorize,
    ) -> None:
        """PUT /file: queued -> saving -> active."""
        limit = self._claim(caller, image_id, declared_size, authorize, "upload_image", "saving")
        data = self._receive(image_id, chunks, limit, "saving")
        self._record(image_id, "saving", "active", data)

    def stage(
        self,
        caller: Caller,
        image_id: str,
        chunks: Iterable[bytes],
        declared_size: int | None,
        authorize: Authorize,
    ) -> None:
        """PUT /stage: queued -> uploading, with the data kept for the import."""
        limit = self._claim(caller, image_id, declared_size, authorize, "modify_image", "uploading")
        data = self._receive(image_id, chunks, limit, "uploading")
        self._record(image_id, "uploading", "uploading", data)

    def _claim(
        self,
        caller: Caller,
        image_id: str,
        declared_size: int | None,
        authorize: Authorize,
        rule: str,
        status: str,
    ) -> Limit:
        with self.images.db.session() as session:
            row = self.images.load(session, caller, image_id, lock=True)
            authorize(rule, self.images.describe(session, caller, row))
            if row.status != "queued":
                raise errors.Conflict(
                    f"Image status transition from {row.status} to {status} is not allowed"
                )
            missing = [f for f in ("disk_format", "container_format") if not getattr(row, f)]
            if status == "saving" and missing:
                raise errors.BadRequest(
                    f"Properties {', '.join(missing)} must be set prior to saving data."
                )
            limit = self._limit(session, row)
            if declared_size is not None and declared_size > limit.size:
                raise errors.OverLimit(limit.message)
            row.status = status
            row.updated_at = utcnow()
        return limit

    def _receive(
        self, image_id: str, chunks: Iterable[bytes], limit: Limit, status: str
    ) -> StoredData:
        try:
            return store_data(self.images.store, image_id, chunks, limit.size, limit.message)
        except BaseException:
            self._requeue(image_id, status)
            raise

    def _requeue(self, image_id: str, status: str, failed_import: bool = False) -> None:
        """Back to queued after a failed transfer, unless someone else moved the image on."""
        with self.images.db.session() as session:
            row = session.get(Image, image_id, with_for_update=True)
            if row is None or row.status != status or row.location is not None:
                return
            row.status = "queued"
            row.size = None
            row.updated_at = utcnow()
            if failed_import:
                session.merge(
                    ImageProperty(image_id=image_id, name=FAILED_IMPORT, value=self.images.store.id)
                )

    def _record(self, image_id: str, status: str, new_status: str, data: StoredData) -> None:
        """Attach stored data to the image; if that cannot be, the data goes."""
        error: errors.CoreError | None = None
        with self.images.db.session() as session:
            row = session.get(Image, image_id, with_for_update=True)
            if row is None or row.status != status or row.location is not None:
                error = ImageGone(
                    f"Image {image_id} could not be found after upload: it was deleted "
                    "during the upload, and the data received has been removed."
                )
            else:
                limit = self._limit(session, row)
                if data.size > limit.size:
                    row.status = "queued"
                    row.updated_at = utcnow()
                    error = errors.OverLimit(limit.message)
                else:
                    row.location = data.location
                    row.size = data.size
                    row.checksum = data.checksum
                    row.os_hash_algo = HASH_ALGO
                    row.os_hash_value = data.os_hash_value
                    row.status = new_status
                    row.updated_at = utcnow()
        if error is not None:
            self.images.store.delete(data.location)
            raise error

    # -- import -------------------------------------------------------------------------

    def import_image(
        self,
        caller: Caller,
        image_id: str,
        method: str,
        uri: str | None,
        stores: list[str],
        authorize: Authorize,
        request_id: str,
    ) -> None:
        if method not in self.import_methods:
            raise errors.BadRequest(f"Unknown import method name '{method}'.")
        for store in stores:
            if store != self.images.store.id:
                raise errors.Conflict(
                    f"Unknown store '{store}': this cloud has '{self.images.store.id}'."
                )
        with self.images.db.session() as session:
            row = self.images.load(session, caller, image_id, lock=True)
            authorize("modify_image", self.images.describe(session, caller, row))
            self._check_importable(row, method, uri)
            row.updated_at = utcnow()
            asked = {"method": {"name": method, **({"uri": uri} if uri else {})}, "stores": stores}
            task_id = tasks.begin(session, image_id, row.owner, caller, request_id, asked)
            if method == GLANCE_DIRECT:
                row.status = "active"
                tasks.finish(session, task_id)
                return
            if not self._web_slots.acquire(blocking=False):
                raise errors.Conflict("Too many web-download imports in progress; retry later.")
            row.status = "importing"
            session.execute(
                delete(ImageProperty).where(
                    ImageProperty.image_id == image_id, ImageProperty.name == FAILED_IMPORT
                )
            )
            limit = self._limit(session, row)
        threading.Thread(
            target=self._web_download,
            args=(image_id, uri, limit, task_id),
            name=f"web-download-{image_id}",
            daemon=True,
        ).start()

    def _check_importable(self, row: Image, method: str, uri: str | None) -> None:
        if row.status == "active":
            raise errors.Conflict("Image with status active cannot be target for import")
        if method == GLANCE_DIRECT and (row.status != "uploading" or row.location is None):
            raise errors.Conflict(
                "Image needs to be staged before 'glance-direct' method can be used"
            )
        if method == WEB_DOWNLOAD and row.status != "queued":
            raise errors.Conflict(f"Image needs to be in 'queued' state to use '{method}' method")
        for attribute in ("container_format", "disk_format"):
            if not getattr(row, attribute):
                raise errors.Conflict(f"'{attribute}' needs to be set before import")
        if method == WEB_DOWNLOAD and not (uri and self.allow.allows(uri)):
            raise errors.BadRequest(f"URI for web-download does not pass filtering: {uri}")

    def _web_download(self, image_id: str, uri: str, limit: Limit, task_id: str) -> None:
        error: str | None = None
        try:
            try:
                data = store_data(
                    self.images.store, image_id, self.allow.fetch(uri), limit.size, limit.message
                )
            except (DownloadFailed, errors.OverLimit) as exc:
                LOG.warning("image %s: web-download failed: %s", image_id, exc)
                error = str(exc)
                self._requeue(image_id, "importing", failed_import=True)
                return
            try:
                self._record(image_id, "importing", "active", data)
            except errors.CoreError as exc:
                LOG.warning("image %s: web-download not kept: %s", image_id, exc.message)
                error = exc.message
        except Exception:
            LOG.exception("image %s: web-download of %s failed unexpectedly", image_id, uri)
            error = "The import failed unexpectedly."
            self._requeue(image_id, "importing", failed_import=True)
        finally:
            self._web_slots.release()
            with self.images.db.session() as session:
                tasks.finish(session, task_id, error)

    # -- download -------------------------------------------------------------------------

    def download(self, caller: Caller, image_id: str, authorize: Authorize) -> Download:
        with self.images.db.session(readonly=True) as session:
            row = self.images.load(session, caller, image_id)
            image = self.images.describe(session, caller, row)
            location = row.location
        if image.status == "deactivated" and not caller.is_admin:
            raise errors.Forbidden(
                "The requested image has been deactivated. Image data download is forbidden."
            )
        authorize("download_image", image)
        return Download(image, location if image.has_data else None)

    def open(self, download: Download, offset: int, length: int) -> Reader:
        if download.location is None:
            raise errors.NotFound(f"Image {download.image.id} has no data.")
        return self.images.store.open(download.location, offset, length)
