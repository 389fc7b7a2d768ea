"""/os-quota-sets and /os-quota-class-sets: show, defaults, detail (with usage),
update and reset a project's compute quotas (?user_id for one of its users), and
the quota classes whose `default` holds every project's defaults.

The network quotas leave the quota sets at 2.36 and the injected file ones at
2.57; quota classes show server_groups and server_group_members only from 2.50,
and drop the network ones there.
"""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.compat.nova.common import (
    BOOLEAN,
    as_bool,
    authorize,
    microversion,
    query,
    read_body,
    reject_unknown_params,
    verify_project_id,
)
from ciaostack.compat.nova.limits import FILES, NETWORK, hidden_resources
from ciaostack.core import errors
from ciaostack.core.compute import quotas
from ciaostack.core.runtime import Runtime

_LIMIT = {
    "type": ["integer", "string"],
    "pattern": "^-?[0-9]+$",
    "minimum": -1,
    "maximum": 0x7FFFFFFF,
}
SERVER_GROUP_QUOTAS = ("server_groups", "server_group_members")


def _settable(hidden: tuple[str, ...]) -> dict[str, Any]:
    return {resource: _LIMIT for resource in quotas.RESOURCES if resource not in hidden}


def _update_schema(root: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            root: {"type": "object", "properties": fields, "additionalProperties": False}
        },
        "required": [root],
        "additionalProperties": False,
    }


UPDATE = {
    hidden: _update_schema("quota_set", {**_settable(hidden), "force": BOOLEAN})
    for hidden in ((), NETWORK, NETWORK + FILES)
}
CLASS_UPDATE = {
    hidden: _update_schema("quota_class_set", _settable(hidden))
    for hidden in ((), NETWORK, NETWORK + FILES)
}


def _limit_value(resource: str, value: int | str) -> int:
    number = int(value)
    if number < -1 or number > 0x7FFFFFFF:
        raise errors.BadRequest(f"Invalid input for field/attribute {resource}.")
    return number


def _shown(values: dict[str, Any], hidden: tuple[str, ...]) -> dict[str, Any]:
    return {resource: values[resource] for resource in quotas.RESOURCES if resource not in hidden}


def _target(req: falcon.Request, rt: Runtime, rule: str, project_id: str) -> str | None:
    """Authorize on the project and check it exists; the ?user_id asked about, if any."""
    authorize(req, rt, f"os_compute_api:os-quota-sets:{rule}", {"project_id": project_id})
    verify_project_id(rt, project_id)
    return query(req, "user_id") or None


class QuotaSet:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
        reject_unknown_params(req, ("user_id",))
        user_id = _target(req, self.rt, "show", project_id)
        with self.rt.db.session(readonly=True) as session:
            limits = quotas.limits_for(session, project_id, user_id)
        resp.media = {"quota_set": {"id": project_id, **_shown(limits, hidden_resources(req))}}

    def on_put(self, req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
        reject_unknown_params(req, ("user_id",))
        user_id = _target(req, self.rt, "update", project_id)
        hidden = hidden_resources(req)
        body = read_body(req, UPDATE[hidden])["quota_set"]
        force = as_bool(body.pop("force", False))
        # Nova skips empty values (null, "") rather than refusing them.
        values = {
            resource: _limit_value(resource, value)
            for resource, value in body.items()
            if value is not None and value != ""
        }
        with self.rt.db.session() as session:
            quotas.update_limits(session, project_id, values, user_id=user_id, force=force)
            limits = quotas.limits_for(session, project_id, user_id)
        resp.media = {"quota_set": _shown(limits, hidden)}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
        reject_unknown_params(req, ("user_id",))
        authorize(req, self.rt, "os_compute_api:os-quota-sets:delete", {"project_id": project_id})
        with self.rt.db.session() as session:
            quotas.reset_limits(session, project_id, query(req, "user_id") or None)
        resp.status = falcon.HTTP_202


class QuotaSetDefaults:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
        authorize(req, self.rt, "os_compute_api:os-quota-sets:defaults", {"project_id": project_id})
        verify_project_id(self.rt, project_id)
        with self.rt.db.session(readonly=True) as session:
            defaults = quotas.class_limits(session)
        resp.media = {"quota_set": {"id": project_id, **_shown(defaults, hidden_resources(req))}}


class QuotaSetDetail:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
        reject_unknown_params(req, ("user_id",))
        user_id = _target(req, self.rt, "detail", project_id)
        with self.rt.db.session(readonly=True) as session:
            limits = quotas.limits_for(session, project_id, user_id)
            in_use = quotas.usage_for(session, project_id, user_id)
        detail = {
            resource: {"limit": limits[resource], "in_use": in_use[resource], "reserved": 0}
            for resource in quotas.RESOURCES
        }
        resp.media = {"quota_set": {"id": project_id, **_shown(detail, hidden_resources(req))}}


def _class_hidden(req: falcon.Request) -> tuple[str, ...]:
    mv = microversion(req)
    if mv.matches("2.57"):
        return NETWORK + FILES
    return NETWORK if mv.matches("2.50") else SERVER_GROUP_QUOTAS


class QuotaClassSet:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, class_name: str) -> None:
        authorize(req, self.rt, "os_compute_api:os-quota-class-sets:show")
        with self.rt.db.session(readonly=True) as session:
            limits = quotas.class_limits(session, class_name)
        resp.media = {"quota_class_set": {"id": class_name, **_shown(limits, _class_hidden(req))}}

    def on_put(self, req: falcon.Request, resp: falcon.Response, class_name: str) -> None:
        authorize(req, self.rt, "os_compute_api:os-quota-class-sets:update")
        if not 1 <= len(class_name) <= 255:
            raise errors.BadRequest("quota_class_name has to be 1 to 255 characters long.")
        # Before 2.50 the body may name every resource, server groups included.
        mv = microversion(req)
        schema_hidden = (
            NETWORK + FILES if mv.matches("2.57") else NETWORK if mv.matches("2.50") else ()
        )
        body = read_body(req, CLASS_UPDATE[schema_hidden])["quota_class_set"]
        values = {resource: _limit_value(resource, value) for resource, value in body.items()}
        with self.rt.db.session() as session:
            quotas.update_class(session, class_name, values)
            limits = quotas.class_limits(session, class_name)
        resp.media = {"quota_class_set": _shown(limits, _class_hidden(req))}


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    item = f"{prefix}/os-quota-sets/{{project_id}}"
    app.add_route(item, QuotaSet(rt))
    app.add_route(f"{item}/defaults", QuotaSetDefaults(rt))
    app.add_route(f"{item}/detail", QuotaSetDetail(rt))
    app.add_route(f"{prefix}/os-quota-class-sets/{{class_name}}", QuotaClassSet(rt))
