"""/v3/roles, implied roles (/v3/roles/{id}/implies) and /v3/role_inferences."""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.compat.keystone.common import authorize, read_body
from ciaostack.compat.keystone.views import collection_links, self_link
from ciaostack.core import errors
from ciaostack.core.db.models import Role
from ciaostack.core.identity import roles as core
from ciaostack.core.runtime import Runtime

_NAME = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"\S"}
_PROPERTIES = {
    "name": _NAME,
    "description": {"type": ["string", "null"]},
    "domain_id": {"type": ["string", "null"], "minLength": 1, "maxLength": 64},
    # Resource options (Keystone's `immutable`) are not supported: refuse rather than ignore.
    "options": {"type": "object", "maxProperties": 0},
}
CREATE_SCHEMA = {
    "type": "object",
    "properties": {
        "role": {
            "type": "object",
            "properties": _PROPERTIES,
            "required": ["name"],
            "additionalProperties": True,
        }
    },
    "required": ["role"],
}
UPDATE_SCHEMA = {
    "type": "object",
    "properties": {
        "role": {
            "type": "object",
            "properties": {**_PROPERTIES, "id": {"type": "string"}},
            "minProperties": 1,
            "additionalProperties": True,
        }
    },
    "required": ["role"],
}
# Attributes that are the server's to set; anything else unknown is kept as Keystone keeps it.
_SERVER_SET = ("id", "links", "options")


def role_view(req: falcon.Request, role: Role) -> dict[str, Any]:
    return {
        **(role.extra or {}),
        "id": role.id,
        "name": role.name,
        "domain_id": core.public_domain_id(role),
        "description": role.description or None,
        "options": {},
        "links": self_link(req, f"roles/{role.id}"),
    }


def _extra(body: dict[str, Any]) -> dict[str, Any]:
    known = set(_PROPERTIES) | set(_SERVER_SET)
    return {k: v for k, v in body.items() if k not in known}


class Roles:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize(req, self.rt, "identity:list_roles")
        with self.rt.db.session(readonly=True) as session:
            found = core.list_roles(
                session, name=req.get_param("name"), domain_id=req.get_param("domain_id")
            )
            resp.media = {
                "roles": [role_view(req, r) for r in found],
                "links": collection_links(req, "roles"),
            }

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_body(req, CREATE_SCHEMA)["role"]
        authorize(req, self.rt, "identity:create_role", {"domain_id": body.get("domain_id")})
        with self.rt.db.session() as session:
            role = core.create_role(
                session,
                body["name"],
                domain_id=body.get("domain_id"),
                description=body.get("description"),
                extra=_extra(body),
            )
            resp.media = {"role": role_view(req, role)}
        resp.status = falcon.HTTP_201


class RoleItem:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, role_id: str) -> None:
        authorize(req, self.rt, "identity:get_role", {"id": role_id})
        with self.rt.db.session(readonly=True) as session:
            resp.media = {"role": role_view(req, core.get_role(session, role_id))}

    def on_patch(self, req: falcon.Request, resp: falcon.Response, role_id: str) -> None:
        body = read_body(req, UPDATE_SCHEMA)["role"]
        authorize(req, self.rt, "identity:update_role", {"id": role_id})
        if body.get("id", role_id) != role_id:
            raise errors.BadRequest("Cannot change the ID of a role.")
        changes = {k: v for k, v in body.items() if k not in _SERVER_SET}
        with self.rt.db.session() as session:
            resp.media = {"role": role_view(req, core.update_role(session, role_id, changes))}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, role_id: str) -> None:
        authorize(req, self.rt, "identity:delete_role", {"id": role_id})
        revocations = self.rt.identity.revocations
        with self.rt.db.session() as session:
            core.delete_role(session, revocations, role_id)
        revocations.notify()
        resp.status = falcon.HTTP_204


def _role_ref(req: falcon.Request, role: Role) -> dict[str, Any]:
    return {"id": role.id, "name": role.name, "links": self_link(req, f"roles/{role.id}")}


def _inference_body(req: falcon.Request, prior: Role, implied: Role) -> dict[str, Any]:
    return {
        "role_inference": {"prior_role": _role_ref(req, prior), "implies": _role_ref(req, implied)},
        "links": self_link(req, f"roles/{prior.id}/implies/{implied.id}"),
    }


class ImpliedRoles:
    """GET /v3/roles/{role_id}/implies: the rules whose prior role this is."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, role_id: str) -> None:
        authorize(req, self.rt, "identity:list_implied_roles", {"prior_role_id": role_id})
        with self.rt.db.session(readonly=True) as session:
            prior, implied = core.list_implied_roles(session, role_id)
            resp.media = {
                "role_inference": {
                    "prior_role": _role_ref(req, prior),
                    "implies": [_role_ref(req, r) for r in implied],
                },
                "links": self_link(req, f"roles/{role_id}/implies"),
            }


class ImpliedRole:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @staticmethod
    def _target(role_id: str, implied_role_id: str) -> dict[str, str]:
        return {"prior_role_id": role_id, "implied_role_id": implied_role_id}

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, role_id: str, implied_role_id: str
    ) -> None:
        authorize(req, self.rt, "identity:get_implied_role", self._target(role_id, implied_role_id))
        with self.rt.db.session(readonly=True) as session:
            resp.media = _inference_body(
                req, *core.get_implied_role(session, role_id, implied_role_id)
            )

    def on_head(
        self, req: falcon.Request, resp: falcon.Response, role_id: str, implied_role_id: str
    ) -> None:
        """204, not 200: Keystone documents this HEAD so and clients expect it."""
        authorize(req, self.rt, "identity:get_implied_role", self._target(role_id, implied_role_id))
        with self.rt.db.session(readonly=True) as session:
            core.get_implied_role(session, role_id, implied_role_id)
        resp.status = falcon.HTTP_204

    def on_put(
        self, req: falcon.Request, resp: falcon.Response, role_id: str, implied_role_id: str
    ) -> None:
        authorize(
            req, self.rt, "identity:create_implied_role", self._target(role_id, implied_role_id)
        )
        with self.rt.db.session() as session:
            resp.media = _inference_body(
                req, *core.create_implied_role(session, role_id, implied_role_id)
            )
        resp.status = falcon.HTTP_201

    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, role_id: str, implied_role_id: str
    ) -> None:
        authorize(
            req, self.rt, "identity:delete_implied_role", self._target(role_id, implied_role_id)
        )
        with self.rt.db.session() as session:
            core.delete_implied_role(session, role_id, implied_role_id)
        resp.status = falcon.HTTP_204


class RoleInferences:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize(req, self.rt, "identity:list_role_inference_rules")
        with self.rt.db.session(readonly=True) as session:
            resp.media = {
                "role_inferences": [
                    {
                        "prior_role": _role_ref(req, prior),
                        "implies": [_role_ref(req, r) for r in implied],
                    }
                    for prior, implied in core.list_inference_rules(session)
                ],
                "links": self_link(req, "role_inferences"),
            }


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    """Path fields are named as on every other identity route ({role_id} for the prior role)."""
    app.add_route(f"{prefix}/v3/roles", Roles(rt))
    app.add_route(f"{prefix}/v3/roles/{{role_id}}", RoleItem(rt))
    app.add_route(f"{prefix}/v3/roles/{{role_id}}/implies", ImpliedRoles(rt))
    app.add_route(f"{prefix}/v3/roles/{{role_id}}/implies/{{implied_role_id}}", ImpliedRole(rt))
    app.add_route(f"{prefix}/v3/role_inferences", RoleInferences(rt))
