"""/v3/domains: Keystone JSON in and out of core/identity/directory.py.

Attributes a client sends beyond Keystone's own are kept and returned, as
Keystone does; the domain's `tags` are kept the same way.
"""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.compat.keystone.common import authorize, query_bool, read_body
from ciaostack.compat.keystone.views import collection_links, self_link
from ciaostack.core.db.models import Domain
from ciaostack.core.identity import directory
from ciaostack.core.runtime import Runtime

# Request schema fragments shared with projects and users.
NAME = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"\S"}
DESCRIPTION = {"type": ["string", "null"]}
BOOLEAN = {"type": "boolean"}
ID = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a-zA-Z0-9-]+$"}
TAGS = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^,/]*$"},
    "maxItems": 80,
    "uniqueItems": True,
}
# Resource options (lock_password, immutable...) are not implemented: refuse
# them rather than echo a promise nothing keeps.
OPTIONS = {"type": "object", "maxProperties": 0}

_PROPERTIES = {
    "name": NAME,
    "description": DESCRIPTION,
    "enabled": BOOLEAN,
    "tags": TAGS,
    "options": OPTIONS,
}
CREATE = {
    "type": "object",
    "properties": {
        "domain": {
            "type": "object",
            "properties": {**_PROPERTIES, "explicit_domain_id": ID},
            "required": ["name"],
        }
    },
    "required": ["domain"],
    "additionalProperties": False,
}
UPDATE = {
    "type": "object",
    "properties": {
        "domain": {"type": "object", "properties": _PROPERTIES, "minProperties": 1},
    },
    "required": ["domain"],
    "additionalProperties": False,
}
# Everything else a client sends is an extra attribute (tags among them).
_FIELDS = {"id", "links", "name", "description", "enabled", "options", "explicit_domain_id"}


def extra_of(body: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    """The attributes Keystone keeps as extras: whatever is not a known field."""
    return {k: v for k, v in body.items() if k not in fields}


def domain_view(req: falcon.Request, domain: Domain) -> dict[str, Any]:
    return {
        "tags": [],
        **domain.extra,
        "id": domain.id,
        "name": domain.name,
        "description": domain.description,
        "enabled": domain.enabled,
        "options": {},
        "links": self_link(req, f"domains/{domain.id}"),
    }


def domain_changes(body: dict[str, Any]) -> dict[str, Any]:
    """Core keyword arguments for an update body."""
    changes = {k: body[k] for k in ("name", "description", "enabled") if k in body}
    extra = extra_of(body, _FIELDS)
    if extra:
        changes["extra"] = extra
    return changes


class Domains:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ctx = authorize(req, self.rt, "identity:list_domains")
        with self.rt.db.session(readonly=True) as session:
            rows = directory.list_domains(
                session, name=req.get_param("name"), enabled=query_bool(req, "enabled")
            )
            if ctx.domain_id:  # a domain-scoped token sees its own domain only
                rows = [d for d in rows if d.id == ctx.domain_id]
            resp.media = {
                "domains": [domain_view(req, d) for d in rows],
                "links": collection_links(req, "domains"),
            }

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize(req, self.rt, "identity:create_domain")
        body = read_body(req, CREATE)["domain"]
        with self.rt.db.session() as session:
            domain = directory.create_domain(
                session,
                name=body["name"],
                description=body.get("description") or "",
                enabled=body.get("enabled", True),
                extra=extra_of(body, _FIELDS),
                domain_id=body.get("explicit_domain_id"),
            )
            resp.media = {"domain": domain_view(req, domain)}
        resp.status = falcon.HTTP_201


class DomainItem:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, domain_id: str) -> None:
        authorize(req, self.rt, "identity:get_domain", {"id": domain_id, "domain_id": domain_id})
        with self.rt.db.session(readonly=True) as session:
            resp.media = {"domain": domain_view(req, directory.get_domain(session, domain_id))}

    def on_patch(self, req: falcon.Request, resp: falcon.Response, domain_id: str) -> None:
        authorize(req, self.rt, "identity:update_domain", {"id": domain_id, "domain_id": domain_id})
        body = read_body(req, UPDATE)["domain"]
        identity = self.rt.identity
        with directory.unit_of_work(self.rt.db, identity.revocations) as session:
            domain = directory.update_domain(
                session, identity.revocations, domain_id, **domain_changes(body)
            )
            resp.media = {"domain": domain_view(req, domain)}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, domain_id: str) -> None:
        authorize(req, self.rt, "identity:delete_domain", {"id": domain_id, "domain_id": domain_id})
        identity = self.rt.identity
        with directory.unit_of_work(self.rt.db, identity.revocations) as session:
            directory.delete_domain(session, identity.revocations, domain_id)
        resp.status = falcon.HTTP_204


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    app.add_route(f"{prefix}/v3/domains", Domains(rt))
    app.add_route(f"{prefix}/v3/domains/{{domain_id}}", DomainItem(rt))
