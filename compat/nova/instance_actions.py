"""/servers/{id}/os-instance-actions: what was done to a server, by whom, and how it went.

From 2.21 the actions of a deleted server can still be read; 2.51 shows every
caller an action's events (administrators only before) and 2.62 their host;
2.58 adds updated_at and paging (limit, marker, changes-since), 2.66
changes-before. Events' tracebacks and hosts are for administrators.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import falcon

from ciaostack.compat.nova import common
from ciaostack.compat.nova.server_views import host_id
from ciaostack.compat.nova.servers import Compute, changes_page, target_of
from ciaostack.compat.nova.views import base_url
from ciaostack.core.compute import instance_actions
from ciaostack.core.db.models import Instance, InstanceAction, InstanceActionEvent

RULE = "os_compute_api:os-instance-actions:{}"


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="microseconds") if value is not None else None


def _action(row: InstanceAction, with_updated: bool) -> dict[str, Any]:
    body = {
        "action": row.action,
        "instance_uuid": row.instance_id,
        "message": row.message,
        "project_id": row.project_id,
        "request_id": row.request_id,
        "start_time": _time(row.start_time),
        "user_id": row.user_id,
    }
    if with_updated:
        body["updated_at"] = _time(row.updated_at)
    return body


class InstanceActions:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute

    def _instance(self, req: falcon.Request, session: Any, server_id: str, rule: str) -> Instance:
        auth = common.caller(req)
        deleted = common.microversion(req).matches("2.21")
        instance = self.compute.servers.get(session, auth, server_id, deleted=deleted)
        common.authorize(req, self.compute.rt, RULE.format(rule), target_of(instance))
        return instance

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        mv = common.microversion(req)
        paged = mv.matches("2.58")
        limit = marker = since = before = None
        if paged:
            limit, marker, since, before = changes_page(req)
        # Reading closes events whose work has ended: a write transaction.
        with self.compute.rt.db.session() as session:
            instance = self._instance(req, session, server_id, "list")
            rows = instance_actions.listing(session, instance, limit, marker, since, before)
            body: dict[str, Any] = {"instanceActions": [_action(r, paged) for r in rows]}
        if paged and limit is not None and rows and len(rows) == limit:
            href = (
                f"{base_url(req)}/v2.1/servers/{server_id}/os-instance-actions"
                f"?limit={limit}&marker={rows[-1].request_id}"
            )
            body["links"] = [{"rel": "next", "href": href}]
        resp.media = body

    def on_get_one(
        self, req: falcon.Request, resp: falcon.Response, server_id: str, request_id: str
    ) -> None:
        mv = common.microversion(req)
        rt = self.compute.rt
        with rt.db.session() as session:
            instance = self._instance(req, session, server_id, "show")
            action, events = instance_actions.show(session, instance, request_id)
            target = target_of(instance)
            body = _action(action, mv.matches("2.58"))
            if mv.matches("2.51") or common.allowed(req, rt, RULE.format("events"), target):
                details = common.allowed(req, rt, RULE.format("events:details"), target)
                body["events"] = [
                    self._event(event, instance, mv.matches("2.62"), details) for event in events
                ]
        resp.media = {"instanceAction": body}

    @staticmethod
    def _event(
        event: InstanceActionEvent, instance: Instance, hosts: bool, details: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event": event.event,
            "start_time": _time(event.start_time),
            "finish_time": _time(event.finish_time),
            "result": event.result,
        }
        if details:
            body["traceback"] = event.traceback
        if hosts:
            body["hostId"] = host_id(instance.project_id, event.host)
            if details:
                body["host"] = event.host or ""
        return body
