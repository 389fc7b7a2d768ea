"""/os-simple-tenant-usage: instance-hours per project over ?start..?end (default: now).

Every project's usage is for administrators (?detailed=1 adds the servers); a
project's own is for its readers. From 2.40 the servers are paged with
limit/marker and `tenant_usage(s)_links`. Times carry no zone designator, as
Nova's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import falcon

from ciaostack.compat.nova.common import (
    MAX_LIMIT,
    authorize,
    limit_and_marker,
    microversion,
    next_links,
    query,
    reject_unknown_params,
)
from ciaostack.compat.nova.views import zoneless_time
from ciaostack.core import errors
from ciaostack.core.compute import usage
from ciaostack.core.db.models import utcnow
from ciaostack.core.runtime import Runtime

FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f")
COLLECTION = "os-simple-tenant-usage"
LIST_PARAMS = ("start", "end", "detailed", "limit", "marker")


def _parse(req: falcon.Request, name: str) -> dt.datetime:
    text = query(req, name)
    if not text:
        return utcnow()
    for fmt in FORMATS:
        try:
            return dt.datetime.strptime(text, fmt)  # naive UTC, as the datastore keeps times
        except ValueError:
            continue
    raise errors.BadRequest("Invalid datetime string: Datetime is in invalid format")


def _period(req: falcon.Request) -> tuple[dt.datetime, dt.datetime]:
    start, end = _parse(req, "start"), _parse(req, "end")
    if not start < end:
        raise errors.BadRequest(
            "Invalid start time. The start time cannot occur after the end time."
        )
    return start, end


def _server_view(server: usage.ServerUsage) -> dict[str, Any]:
    body = dataclasses.asdict(server)
    body["started_at"] = zoneless_time(server.started_at)
    body["ended_at"] = zoneless_time(server.ended_at)
    return body


def _tenant_view(summary: usage.TenantUsage, detailed: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tenant_id": summary.tenant_id,
        "start": zoneless_time(summary.start),
        "stop": zoneless_time(summary.stop),
        "total_hours": summary.total_hours,
        "total_vcpus_usage": summary.total_vcpus_usage,
        "total_memory_mb_usage": summary.total_memory_mb_usage,
        "total_local_gb_usage": summary.total_local_gb_usage,
    }
    if detailed:
        body["server_usages"] = [_server_view(s) for s in summary.server_usages]
    return body


def _page(req: falcon.Request) -> tuple[int, str | None, bool]:
    if microversion(req).matches("2.40"):
        limit, marker = limit_and_marker(req)
        return limit, marker, True
    return MAX_LIMIT, None, False


def _links(
    req: falcon.Request, collection: str, servers: list[usage.ServerUsage], limit: int
) -> list[dict[str, str]]:
    last = servers[-1].instance_id if servers else None
    return next_links(req, collection, len(servers), limit, last)


class TenantUsages:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        # GET .../os-simple-tenant-usage/ names an empty tenant (Nova: 404), not the list.
        if req.env.get("PATH_INFO", "").endswith("/"):
            raise errors.NotFound("The resource could not be found.")
        reject_unknown_params(req, LIST_PARAMS)
        authorize(req, self.rt, "os_compute_api:os-simple-tenant-usage:list")
        start, end = _period(req)
        detailed = query(req, "detailed") == "1"
        limit, marker, links = _page(req)
        with self.rt.db.session(readonly=True) as session:
            summaries, servers = usage.tenant_usages(
                session, start, end, limit=limit, marker=marker
            )
        body: dict[str, Any] = {"tenant_usages": [_tenant_view(s, detailed) for s in summaries]}
        if links and (page_links := _links(req, COLLECTION, servers, limit)):
            body["tenant_usages_links"] = page_links
        resp.media = body


class TenantUsage:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
        reject_unknown_params(req, ("start", "end", "limit", "marker"))
        authorize(
            req, self.rt, "os_compute_api:os-simple-tenant-usage:show", {"project_id": project_id}
        )
        start, end = _period(req)
        limit, marker, links = _page(req)
        with self.rt.db.session(readonly=True) as session:
            summaries, servers = usage.tenant_usages(
                session, start, end, project_id=project_id, limit=limit, marker=marker
            )
        body: dict[str, Any] = {
            "tenant_usage": _tenant_view(summaries[0], detailed=True) if summaries else {}
        }
        collection = f"{COLLECTION}/{project_id}"
        if links and (page_links := _links(req, collection, servers, limit)):
            body["tenant_usage_links"] = page_links
        resp.media = body


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    app.add_route(f"{prefix}/{COLLECTION}", TenantUsages(rt))
    app.add_route(f"{prefix}/{COLLECTION}/{{project_id}}", TenantUsage(rt))
