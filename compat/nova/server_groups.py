"""/os-server-groups: create, list (all_projects for admins), show, delete.

Per microversion: `policies: [one]` and an empty `metadata` before 2.64, then
`policy` and `rules`; the soft policies from 2.15; `project_id` and `user_id`
from 2.13. Members are the group's servers that are not deleted.
"""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.compat.nova.common import (
    NAME,
    authorize,
    caller,
    is_admin,
    limit_and_offset,
    microversion,
    read_body,
    reject_unknown_params,
)
from ciaostack.core.compute import quotas, server_groups
from ciaostack.core.db.models import ServerGroup
from ciaostack.core.runtime import Runtime

HARD = [server_groups.ANTI_AFFINITY, server_groups.AFFINITY]
ALL = [*HARD, server_groups.SOFT_ANTI_AFFINITY, server_groups.SOFT_AFFINITY]


def _schema(fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "server_group": {
                "type": "object",
                "properties": {"name": NAME, **fields},
                "required": ["name", *required],
                "additionalProperties": False,
            }
        },
        "required": ["server_group"],
        "additionalProperties": False,
    }


def _policies(allowed: list[str]) -> dict[str, Any]:
    """One policy in a list, as Nova took them until 2.64."""
    return {
        "type": "array",
        "items": {"type": "string", "enum": allowed},
        "minItems": 1,
        "maxItems": 1,
    }


CREATE = _schema({"policies": _policies(HARD)}, ["policies"])
CREATE_V215 = _schema({"policies": _policies(ALL)}, ["policies"])
CREATE_V264 = _schema(
    {
        "policy": {"type": "string", "enum": ALL},
        "rules": {
            "type": "object",
            "properties": {
                "max_server_per_host": {
                    "type": ["integer", "string"],
                    "pattern": "^[0-9]*$",
                    "minimum": 1,
                    "minLength": 1,
                }
            },
            "additionalProperties": False,
        },
    },
    ["policy"],
)


def _create_schema(req: falcon.Request) -> dict[str, Any]:
    mv = microversion(req)
    if mv.matches("2.64"):
        return CREATE_V264
    return CREATE_V215 if mv.matches("2.15") else CREATE


def group_view(req: falcon.Request, group: ServerGroup, members: list[str]) -> dict[str, Any]:
    mv = microversion(req)
    body: dict[str, Any] = {"id": group.id, "name": group.name}
    if mv.matches("2.64"):
        body["policy"] = group.policy
        body["rules"] = group.rules
    else:
        body["policies"] = [group.policy]
        body["metadata"] = {}
    body["members"] = members
    if mv.matches("2.13"):
        body["project_id"] = group.project_id
        body["user_id"] = group.user_id
    return body


class ServerGroups:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reject_unknown_params(req, ("all_projects", "limit", "offset"))
        project_id = caller(req).project_id
        authorize(req, self.rt, "os_compute_api:os-server-groups:index", {"project_id": project_id})
        scope: str | None = project_id or ""
        # As Nova: a non-admin asking for all projects quietly gets their own.
        if "all_projects" in req.params and is_admin(req, self.rt):
            authorize(
                req,
                self.rt,
                "os_compute_api:os-server-groups:index:all_projects",
                {"project_id": project_id},
            )
            scope = None
        limit, offset = limit_and_offset(req)
        with self.rt.db.session(readonly=True) as session:
            groups = server_groups.list_groups(session, scope, offset=offset, limit=limit)
            members = server_groups.members_of(session, groups)
        resp.media = {"server_groups": [group_view(req, g, members[g.id]) for g in groups]}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        auth = caller(req)
        project_id = auth.project_id or ""
        authorize(
            req, self.rt, "os_compute_api:os-server-groups:create", {"project_id": project_id}
        )
        body = read_body(req, _create_schema(req))["server_group"]
        if microversion(req).matches("2.64"):
            policy, rules = body["policy"], body.get("rules", {})
        else:
            policy, rules = body["policies"][0], {}
        with self.rt.db.session() as session:
            limit = quotas.limits_for(session, project_id, auth.user_id)["server_groups"]
            group = server_groups.create(
                session, project_id, auth.user_id, body["name"], policy, rules, limit
            )
            resp.media = {"server_group": group_view(req, group, [])}


class ServerGroupItem:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, group_id: str) -> None:
        with self.rt.db.session(readonly=True) as session:
            group = server_groups.get(session, group_id)
            authorize(
                req,
                self.rt,
                "os_compute_api:os-server-groups:show",
                {"project_id": group.project_id},
            )
            members = server_groups.members(session, group)
        resp.media = {"server_group": group_view(req, group, members)}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, group_id: str) -> None:
        with self.rt.db.session() as session:
            group = server_groups.get(session, group_id)
            authorize(
                req,
                self.rt,
                "os_compute_api:os-server-groups:delete",
                {"project_id": group.project_id},
            )
            server_groups.delete(session, group)
        resp.status = falcon.HTTP_204


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    app.add_route(f"{prefix}/os-server-groups", ServerGroups(rt))
    app.add_route(f"{prefix}/os-server-groups/{{group_id}}", ServerGroupItem(rt))
