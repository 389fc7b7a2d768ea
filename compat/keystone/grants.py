"""Role grants to users (on projects, domains, and inherited to a domain's projects)
and GET /v3/role_assignments."""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.compat.keystone.common import authorize, query_bool
from ciaostack.compat.keystone.roles import role_view
from ciaostack.compat.keystone.views import base_url, collection_links
from ciaostack.core import errors
from ciaostack.core.identity import roles as core
from ciaostack.core.identity.assignments import DOMAIN, PROJECT
from ciaostack.core.runtime import Runtime


def _target(kind: str, inherited: bool, params: dict[str, str]) -> core.Target:
    return core.Target(type=kind, id=params[f"{kind}_id"], inherited=inherited)


def _policy_target(target: core.Target, user_id: str, role_id: str | None = None) -> dict[str, Any]:
    return {"user_id": user_id, f"{target.type}_id": target.id, "role_id": role_id}


def _list_path(target: core.Target, user_id: str) -> str:
    path = f"{target.type}s/{target.id}/users/{user_id}/roles"
    return f"OS-INHERIT/{path}/inherited_to_projects" if target.inherited else path


class GrantList:
    """GET .../users/{user_id}/roles: the roles granted directly on one target."""

    def __init__(self, rt: Runtime, kind: str, inherited: bool = False) -> None:
        self.rt = rt
        self.kind = kind
        self.inherited = inherited

    def on_get(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        target = _target(self.kind, self.inherited, params)
        user_id = params["user_id"]
        authorize(req, self.rt, "identity:list_grants", _policy_target(target, user_id))
        with self.rt.db.session(readonly=True) as session:
            resp.media = {
                "roles": [role_view(req, r) for r in core.list_grants(session, user_id, target)],
                "links": collection_links(req, _list_path(target, user_id)),
            }


class Grant:
    """PUT, HEAD (and GET), DELETE .../users/{user_id}/roles/{role_id}: all 204."""

    def __init__(self, rt: Runtime, kind: str, inherited: bool = False) -> None:
        self.rt = rt
        self.kind = kind
        self.inherited = inherited

    def _parts(self, params: dict[str, str]) -> tuple[core.Target, str, str]:
        return _target(self.kind, self.inherited, params), params["user_id"], params["role_id"]

    def on_put(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        target, user_id, role_id = self._parts(params)
        authorize(req, self.rt, "identity:create_grant", _policy_target(target, user_id, role_id))
        with self.rt.db.session() as session:
            core.add_grant(session, user_id, target, role_id)
        resp.status = falcon.HTTP_204

    def on_head(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        target, user_id, role_id = self._parts(params)
        authorize(req, self.rt, "identity:check_grant", _policy_target(target, user_id, role_id))
        with self.rt.db.session(readonly=True) as session:
            core.check_grant(session, user_id, target, role_id)
        resp.status = falcon.HTTP_204

    on_get = on_head

    def on_delete(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        target, user_id, role_id = self._parts(params)
        authorize(req, self.rt, "identity:revoke_grant", _policy_target(target, user_id, role_id))
        revocations = self.rt.identity.revocations
        with self.rt.db.session() as session:
            core.revoke_grant(session, revocations, user_id, target, role_id)
        revocations.notify()
        resp.status = falcon.HTTP_204


# -- /v3/role_assignments -----------------------------------------------------------------


def _domain_ref(names: core.Names, domain_id: str) -> dict[str, Any]:
    domain = names.domains.get(domain_id)
    return {"id": domain_id, "name": domain.name} if domain else {"id": domain_id}


def _named(ref: dict[str, Any], obj: Any, names: core.Names) -> dict[str, Any]:
    """Add name and domain, when the object still exists, for include_names."""
    if obj is not None:
        ref["name"] = obj.name
        if getattr(obj, "domain_id", None):
            ref["domain"] = _domain_ref(names, obj.domain_id)
    return ref


def assignment_view(
    req: falcon.Request, row: core.Assignment, names: core.Names | None
) -> dict[str, Any]:
    """Keystone's shape; links.assignment names the grant the row comes from."""
    v3 = f"{base_url(req)}/v3"
    if row.project_id:
        scope: dict[str, Any] = {"project": {"id": row.project_id}}
        if names is not None:
            _named(scope["project"], names.projects.get(row.project_id), names)
        on = (
            f"/domains/{row.from_domain_id}"
            if row.from_domain_id
            else f"/projects/{row.project_id}"
        )
    else:
        scope = {"domain": {"id": row.domain_id}}
        if names is not None:
            domain = names.domains.get(row.domain_id or "")
            if domain is not None:
                scope["domain"]["name"] = domain.name
        on = f"/domains/{row.domain_id}"
    user: dict[str, Any] = {"id": row.user_id}
    role: dict[str, Any] = {"id": row.role_id}
    if names is not None:
        _named(user, names.users.get(row.user_id), names)
        _named(role, names.roles.get(row.role_id), names)
    path = f"{on}/users/{row.user_id}/roles/{row.grant_role_id}"
    if row.inherited or row.from_domain_id:
        scope["OS-INHERIT:inherited_to"] = "projects"
        path = f"/OS-INHERIT{path}/inherited_to_projects"
    links = {"assignment": f"{v3}{path}"}
    if row.prior_role_id:
        links["prior_role"] = f"{v3}/roles/{row.prior_role_id}/implies/{row.role_id}"
    return {"role": role, "user": user, "scope": scope, "links": links}


class RoleAssignments:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize(req, self.rt, "identity:list_role_assignments")
        effective = bool(query_bool(req, "effective"))
        include_names = bool(query_bool(req, "include_names"))
        inherited_to = req.get_param("scope.OS-INHERIT:inherited_to")
        user_id = req.get_param("user.id")
        project_id = req.get_param("scope.project.id")
        domain_id = req.get_param("scope.domain.id")
        group_id = req.get_param("group.id")
        system = req.get_param("scope.system")
        if user_id and group_id:
            raise errors.BadRequest("Specify a user or group, not both.")
        if system and (project_id or domain_id):
            raise errors.BadRequest("Specify system or a project or domain, not both.")
        if effective and group_id:
            raise errors.BadRequest(
                "Combining effective and group filter will always result in an empty list."
            )
        with self.rt.db.session(readonly=True) as session:
            rows = core.list_assignments(
                session,
                user_id=user_id,
                role_id=req.get_param("role.id"),
                project_id=project_id,
                domain_id=domain_id,
                inherited=None if inherited_to is None else inherited_to == "projects",
                effective=effective,
            )
            # There are no group or system grants here: such filters match nothing.
            if group_id or system == "all":
                rows = []
            names = core.names_for(session, rows) if include_names else None
            body = [assignment_view(req, row, names) for row in rows]
        links = collection_links(req, "role_assignments")
        if req.query_string:
            links["self"] = f"{links['self']}?{req.query_string}"
        resp.media = {"role_assignments": body, "links": links}


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    v3 = f"{prefix}/v3"
    for kind in (PROJECT, DOMAIN):
        base = f"{v3}/{kind}s/{{{kind}_id}}/users/{{user_id}}/roles"
        app.add_route(base, GrantList(rt, kind))
        app.add_route(f"{base}/{{role_id}}", Grant(rt, kind))
    inherit = f"{v3}/OS-INHERIT/domains/{{domain_id}}/users/{{user_id}}/roles"
    app.add_route(f"{inherit}/inherited_to_projects", GrantList(rt, DOMAIN, inherited=True))
    app.add_route(f"{inherit}/{{role_id}}/inherited_to_projects", Grant(rt, DOMAIN, inherited=True))
    app.add_route(f"{v3}/role_assignments", RoleAssignments(rt))
