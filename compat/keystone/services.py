"""/v3/services: Keystone JSON in and out of core/identity/catalog_admin.py."""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.compat.keystone.common import authorize, read_body
from ciaostack.compat.keystone.domains import BOOLEAN, DESCRIPTION, extra_of
from ciaostack.compat.keystone.views import collection_links, self_link
from ciaostack.core import errors
from ciaostack.core.db.models import Service
from ciaostack.core.identity import catalog_admin
from ciaostack.core.runtime import Runtime

_TEXT = {"type": "string", "minLength": 1, "maxLength": 255}
_PROPERTIES = {"type": _TEXT, "name": _TEXT, "description": DESCRIPTION, "enabled": BOOLEAN}
CREATE = {
    "type": "object",
    "properties": {
        "service": {"type": "object", "properties": _PROPERTIES, "required": ["type"]},
    },
    "required": ["service"],
    "additionalProperties": False,
}
UPDATE = {
    "type": "object",
    "properties": {
        "service": {"type": "object", "properties": _PROPERTIES, "minProperties": 1},
    },
    "required": ["service"],
    "additionalProperties": False,
}
_FIELDS = {"id", "links", "type", "name", "description", "enabled"}


def service_view(req: falcon.Request, service: Service) -> dict[str, Any]:
    return {
        **service.extra,
        "id": service.id,
        "type": service.type,
        "name": service.name,
        "description": service.description,
        "enabled": service.enabled,
        "links": self_link(req, f"services/{service.id}"),
    }


class Services:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize(req, self.rt, "identity:list_services")
        with self.rt.db.session(readonly=True) as session:
            rows = catalog_admin.list_services(
                session, type=req.get_param("type"), name=req.get_param("name")
            )
            resp.media = {
                "services": [service_view(req, s) for s in rows],
                "links": collection_links(req, "services"),
            }

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize(req, self.rt, "identity:create_service")
        body = read_body(req, CREATE)["service"]
        with self.rt.db.session() as session:
            service = catalog_admin.create_service(
                session,
                type=body["type"],
                name=body.get("name", ""),
                description=body.get("description") or "",
                enabled=body.get("enabled", True),
                extra=extra_of(body, _FIELDS),
            )
            resp.media = {"service": service_view(req, service)}
        resp.status = falcon.HTTP_201


class ServiceItem:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, service_id: str) -> None:
        authorize(req, self.rt, "identity:get_service", {"id": service_id})
        with self.rt.db.session(readonly=True) as session:
            service = catalog_admin.get_service(session, service_id)
            resp.media = {"service": service_view(req, service)}

    def on_patch(self, req: falcon.Request, resp: falcon.Response, service_id: str) -> None:
        authorize(req, self.rt, "identity:update_service", {"id": service_id})
        body = read_body(req, UPDATE)["service"]
        if body.get("id", service_id) != service_id:
            raise errors.BadRequest("The service id in the body differs from the URL's.")
        changes: dict[str, Any] = {
            k: body[k] for k in ("type", "name", "description", "enabled") if k in body
        }
        extra = extra_of(body, _FIELDS)
        if extra:
            changes["extra"] = extra
        with self.rt.db.session() as session:
            service = catalog_admin.update_service(session, service_id, **changes)
            resp.media = {"service": service_view(req, service)}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, service_id: str) -> None:
        authorize(req, self.rt, "identity:delete_service", {"id": service_id})
        with self.rt.db.session() as session:
            catalog_admin.delete_service(session, service_id)
        resp.status = falcon.HTTP_204


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    app.add_route(f"{prefix}/v3/services", Services(rt))
    app.add_route(f"{prefix}/v3/services/{{service_id}}", ServiceItem(rt))
