"""/v3/endpoints: Keystone JSON in and out of core/identity/catalog_admin.py.

Every endpoint shows its region twice, as `region_id` and as the older
`region`, which clients from before regions still read.
"""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.compat.keystone.common import authorize, read_body
from ciaostack.compat.keystone.domains import BOOLEAN, extra_of
from ciaostack.compat.keystone.views import collection_links, self_link
from ciaostack.core import errors
from ciaostack.core.db.models import Endpoint
from ciaostack.core.identity import catalog_admin
from ciaostack.core.runtime import Runtime
from ciaostack.core.validation import validate

_INTERFACE = {"type": "string", "enum": list(catalog_admin.INTERFACES)}
_PROPERTIES = {
    "service_id": {"type": "string", "minLength": 1, "maxLength": 64},
    "interface": _INTERFACE,
    # Keystone's rule: a scheme, a colon, something after it.
    "url": {"type": "string", "maxLength": 225, "pattern": "^[a-zA-Z0-9+.-]+:.+"},
    "region_id": {"type": ["string", "null"], "maxLength": 255},
    "region": {"type": ["string", "null"], "maxLength": 255},
    "enabled": BOOLEAN,
}
CREATE = {
    "type": "object",
    "properties": {
        "endpoint": {
            "type": "object",
            "properties": _PROPERTIES,
            "required": ["service_id", "interface", "url"],
        }
    },
    "required": ["endpoint"],
    "additionalProperties": False,
}
UPDATE = {
    "type": "object",
    "properties": {
        "endpoint": {"type": "object", "properties": _PROPERTIES, "minProperties": 1},
    },
    "required": ["endpoint"],
    "additionalProperties": False,
}
_FIELDS = {"id", "links", "legacy_endpoint_id", *_PROPERTIES}


def endpoint_view(req: falcon.Request, endpoint: Endpoint) -> dict[str, Any]:
    return {
        **endpoint.extra,
        "id": endpoint.id,
        "service_id": endpoint.service_id,
        "interface": endpoint.interface,
        "url": endpoint.url,
        "region_id": endpoint.region_id,
        "region": endpoint.region_id,
        "enabled": endpoint.enabled,
        "links": self_link(req, f"endpoints/{endpoint.id}"),
    }


class Endpoints:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize(req, self.rt, "identity:list_endpoints")
        interface = req.get_param("interface")
        if interface is not None:
            validate(_INTERFACE, interface)
        with self.rt.db.session(readonly=True) as session:
            rows = catalog_admin.list_endpoints(
                session,
                service_id=req.get_param("service_id"),
                interface=interface,
                region_id=req.get_param("region_id"),
            )
            resp.media = {
                "endpoints": [endpoint_view(req, e) for e in rows],
                "links": collection_links(req, "endpoints"),
            }

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize(req, self.rt, "identity:create_endpoint")
        body = read_body(req, CREATE)["endpoint"]
        with self.rt.db.session() as session:
            endpoint = catalog_admin.create_endpoint(
                session,
                service_id=body["service_id"],
                interface=body["interface"],
                url=body["url"],
                region_id=body.get("region_id"),
                region=body.get("region"),
                enabled=body.get("enabled", True),
                extra=extra_of(body, _FIELDS),
            )
            resp.media = {"endpoint": endpoint_view(req, endpoint)}
        resp.status = falcon.HTTP_201


class EndpointItem:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, endpoint_id: str) -> None:
        authorize(req, self.rt, "identity:get_endpoint", {"id": endpoint_id})
        with self.rt.db.session(readonly=True) as session:
            endpoint = catalog_admin.get_endpoint(session, endpoint_id)
            resp.media = {"endpoint": endpoint_view(req, endpoint)}

    def on_patch(self, req: falcon.Request, resp: falcon.Response, endpoint_id: str) -> None:
        authorize(req, self.rt, "identity:update_endpoint", {"id": endpoint_id})
        body = read_body(req, UPDATE)["endpoint"]
        if body.get("id", endpoint_id) != endpoint_id:
            raise errors.BadRequest("The endpoint id in the body differs from the URL's.")
        changes: dict[str, Any] = {k: body[k] for k in _PROPERTIES if k in body}
        extra = extra_of(body, _FIELDS)
        if extra:
            changes["extra"] = extra
        with self.rt.db.session() as session:
            endpoint = catalog_admin.update_endpoint(session, endpoint_id, **changes)
            resp.media = {"endpoint": endpoint_view(req, endpoint)}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, endpoint_id: str) -> None:
        authorize(req, self.rt, "identity:delete_endpoint", {"id": endpoint_id})
        with self.rt.db.session() as session:
            catalog_admin.delete_endpoint(session, endpoint_id)
        resp.status = falcon.HTTP_204


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    app.add_route(f"{prefix}/v3/endpoints", Endpoints(rt))
    app.add_route(f"{prefix}/v3/endpoints/{{endpoint_id}}", EndpointItem(rt))
