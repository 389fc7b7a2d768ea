"""Version documents, the published schemas and /v2/info: what clients read before acting."""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.compat.glance import schemas
from ciaostack.compat.glance.base import Glance

#: Glance v2 minor versions served, newest first. Later ones add APIs this cloud
#: does not serve (stores, the image cache, quota usage...), so clients must not
#: assume them; of 2.12, the image tasks call is served.
VERSIONS = ("2.9", "2.8", "2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1", "2.0")


def _versions(req: falcon.Request) -> dict[str, Any]:
    href = f"{Glance.base_url(req)}/v2/"
    return {
        "versions": [
            {
                "id": f"v{version}",
                "status": "CURRENT" if version == VERSIONS[0] else "SUPPORTED",
                "links": [{"rel": "self", "href": href}],
            }
            for version in VERSIONS
        ]
    }


class Versions:
    """GET /image: the choices (300), as Glance answers an unversioned request."""

    public = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = falcon.HTTP_300
        resp.media = _versions(req)


class VersionList:
    """GET /image/versions and /image/v2: the same list, 200."""

    public = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = _versions(req)


class Schema:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.document


class ImportInfo:
    def __init__(self, glance: Glance) -> None:
        self.glance = glance

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "import-methods": {
                "description": "Import methods available.",
                "type": "array",
                "value": list(self.glance.service.data.import_methods),
            }
        }


class StoresInfo:
    def __init__(self, glance: Glance) -> None:
        self.glance = glance

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        store = self.glance.service.store
        resp.media = {
            "stores": [{"id": store.id, "description": store.description, "default": "true"}]
        }


def schema_resources(glance: Glance) -> dict[str, Schema]:
    return {
        "image": Schema(glance.image_schema),
        "images": Schema(schemas.collection("images", glance.image_schema)),
        "member": Schema(schemas.MEMBER),
        "members": Schema(schemas.collection("members", schemas.MEMBER)),
    }
