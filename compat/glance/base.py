"""What every Glance resource shares: the runtime, the image core, the schemas."""

from __future__ import annotations

import falcon

from ciaostack.compat.glance import schemas
from ciaostack.core.images import ImageService
from ciaostack.core.runtime import Runtime

PREFIX = "/image"


class Glance:
    def __init__(self, rt: Runtime, service: ImageService) -> None:
        self.rt = rt
        self.service = service
        self.store_id = service.store.id
        limits = service.images.limits
        self.image_schema = schemas.image_schema(limits.disk_formats, limits.container_formats)

    @staticmethod
    def base_url(req: falcon.Request) -> str:
        """The image API's root as the client reached it."""
        return f"{req.prefix}{PREFIX}"
