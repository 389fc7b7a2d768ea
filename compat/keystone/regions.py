"""/v3/regions: Keystone JSON in and out of core/identity/catalog_admin.py.

A region is created by POST (id in the body, or generated) or by PUT with the
id in the URL, as tempest and the `openstack` CLI do; extra attributes are
kept and returned.
"""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.compat.keystone.common import authorize, read_body
from ciaostack.compat.keystone.domains import DESCRIPTION, extra_of
from ciaostack.compat.keystone.views import collection_links, self_link
from ciaostack.core import errors
from ciaostack.core.db.models import Region
from ciaostack.core.identity import catalog_admin
from ciaostack.core.runtime import Runtime

_REGION_ID = {"type": ["string", "null"], "minLength": 1, "maxLength": 255}
_PROPERTIES = {"description": DESCRIPTION, "parent_region_id": _REGION_ID}
CREATE = {
    "type": "object",
    "properties": {
        "region": {
            "type": "object",
            # An empty id asks for a generated one.
            "properties": {**_PROPERTIES, "id": {**_REGION_ID, "minLength": 0}},
        }
    },
    "required": ["region"],
    "additionalProperties": False,
}
UPDATE = {
    "type": "object",
    "properties": {
        "region": {
            "type": "object",
            "properties": {**_PROPERTIES, "id": _REGION_ID},
            "minProperties": 1,
        }
    },
    "required": ["region"],
    "additionalProperties": False,
}
_FIELDS = {"id", "links", "description", "parent_region_id"}


def region_view(req: falcon.Request, region: Region) -> dict[str, Any]:
    return {
        **region.extra,
        "id": region.id,
        "description": region.description,
        "parent_region_id": region.parent_region_id,
        "links": self_link(req, f"regions/{region.id}"),
    }


def _create(rt: Runtime, req: falcon.Request, resp: falcon.Response, region_id: str | None) -> None:
    authorize(req, rt, "identity:create_region")
    body = read_body(req, CREATE)["region"]
    if region_id is not None and body.get("id") not in (None, region_id):
        raise errors.BadRequest(
            f"The region id in the body ({body['id']}) differs from the URL's ({region_id})."
        )
    with rt.db.session() as session:
        region = catalog_admin.create_region(
            session,
            region_id=region_id or body.get("id"),
            description=body.get("description") or "",
            parent_region_id=body.get("parent_region_id"),
            extra=extra_of(body, _FIELDS),
        )
        resp.media = {"region": region_view(req, region)}
    resp.status = falcon.HTTP_201


class Regions:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize(req, self.rt, "identity:list_regions")
        with self.rt.db.session(readonly=True) as session:
            rows = catalog_admin.list_regions(
                session, parent_region_id=req.get_param("parent_region_id")
            )
            resp.media = {
                "regions": [region_view(req, r) for r in rows],
                "links": collection_links(req, "regions"),
            }

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        _create(self.rt, req, resp, None)


class RegionItem:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, region_id: str) -> None:
        authorize(req, self.rt, "identity:get_region", {"id": region_id})
        with self.rt.db.session(readonly=True) as session:
            resp.media = {"region": region_view(req, catalog_admin.get_region(session, region_id))}

    def on_put(self, req: falcon.Request, resp: falcon.Response, region_id: str) -> None:
        _create(self.rt, req, resp, region_id)

    def on_patch(self, req: falcon.Request, resp: falcon.Response, region_id: str) -> None:
        authorize(req, self.rt, "identity:update_region", {"id": region_id})
        body = read_body(req, UPDATE)["region"]
        if body.get("id", region_id) != region_id:
            raise errors.BadRequest("The region id in the body differs from the URL's.")
        changes: dict[str, Any] = {
            k: body[k] for k in ("description", "parent_region_id") if k in body
        }
        extra = extra_of(body, _FIELDS)
        if extra:
            changes["extra"] = extra
        with self.rt.db.session() as session:
            region = catalog_admin.update_region(session, region_id, **changes)
            resp.media = {"region": region_view(req, region)}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, region_id: str) -> None:
        authorize(req, self.rt, "identity:delete_region", {"id": region_id})
        with self.rt.db.session() as session:
            catalog_admin.delete_region(session, region_id)
        resp.status = falcon.HTTP_204


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    app.add_route(f"{prefix}/v3/regions", Regions(rt))
    app.add_route(f"{prefix}/v3/regions/{{region_id}}", RegionItem(rt))
