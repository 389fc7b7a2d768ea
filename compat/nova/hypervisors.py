"""/os-hypervisors: the compute nodes as Nova's hypervisors, for administrators.

Per microversion: `cpu_info` a JSON string before 2.28 and an object since;
limit/marker paging with `hypervisors_links` from 2.33; from 2.53 uuids as ids,
?hypervisor_hostname_pattern and ?with_servers on the lists (the /search and
/servers routes end at 2.52); `servers: []` even when empty from 2.75; from
2.88 no capacity figures and no /statistics or /uptime (an `uptime` field
instead). Nodes do not report an uptime: /uptime answers 501, `uptime` null.
"""

from __future__ import annotations

import uuid
from typing import Any

import falcon

from ciaostack.compat.nova.common import (
    authorize,
    limit_and_marker,
    microversion,
    next_links,
    query,
    query_bool,
    reject_unknown_params,
)
from ciaostack.core import errors
from ciaostack.core.compute import nodes
from ciaostack.core.compute.nodes import Capacity, Load
from ciaostack.core.db.models import ComputeNode
from ciaostack.core.runtime import Runtime

HYPERVISOR_TYPE = "ciaostack"
HYPERVISOR_VERSION = 1
RULE = "os_compute_api:os-hypervisors:{}"


def node_id(req: falcon.Request, node: ComputeNode) -> int | str:
    """A node's id as the microversion shows it (hypervisors and services alike)."""
    return node.uuid if microversion(req).matches("2.53") else nodes.number(node.uuid)


def hostname(node: ComputeNode) -> str:
    return node.hostname or node.uuid


def _summary(req: falcon.Request, node: ComputeNode) -> dict[str, Any]:
    return {
        "id": node_id(req, node),
        "hypervisor_hostname": hostname(node),
        "state": "up" if node.connected else "down",
        "status": "disabled" if nodes.disabled(node) else "enabled",
    }


def _detail(req: falcon.Request, node: ComputeNode, load: Load) -> dict[str, Any]:
    mv = microversion(req)
    body = _summary(req, node)
    body.update(
        {
            "hypervisor_type": HYPERVISOR_TYPE,
            "hypervisor_version": HYPERVISOR_VERSION,
            "host_ip": None,
            "service": {
                "id": node_id(req, node),
                "host": hostname(node),
                "disabled_reason": "maintenance" if nodes.disabled(node) else None,
            },
        }
    )
    if mv.matches("2.88"):
        body["uptime"] = None
        return body
    capacity = Capacity.of(node)
    body.update(
        {
            "vcpus": capacity.vcpus,
            "memory_mb": capacity.memory_mb,
            "local_gb": capacity.local_gb,
            "vcpus_used": capacity.vcpus_used,
            "memory_mb_used": capacity.memory_mb_used,
            "local_gb_used": capacity.local_gb_used,
            "free_ram_mb": capacity.free_ram_mb,
            "free_disk_gb": capacity.free_disk_gb,
            "current_workload": load.current_workload,
            "running_vms": load.running_vms,
            "disk_available_least": capacity.free_disk_gb,
            "cpu_info": {} if mv.matches("2.28") else "{}",
        }
    )
    return body


def _views(
    req: falcon.Request,
    rt: Runtime,
    found: list[ComputeNode],
    detail: bool,
    with_servers: bool,
) -> list[dict[str, Any]]:
    uuids = [node.uuid for node in found]
    with rt.db.session(readonly=True) as session:
        load = nodes.loads(session, uuids) if detail else {}
        servers = nodes.servers_on(session, uuids) if with_servers else {}
    views = []
    for node in found:
        view = _detail(req, node, load[node.uuid]) if detail else _summary(req, node)
        if with_servers:
            hosted = [{"name": name, "uuid": ident} for ident, name in servers[node.uuid]]
            if hosted or microversion(req).matches("2.75"):
                view["servers"] = hosted
        views.append(view)
    return views


def _marker_uuid(req: falcon.Request, rt: Runtime, marker: str | None) -> str | None:
    if marker is None:
        return None
    by_uuid = microversion(req).matches("2.53")
    with rt.db.session(readonly=True) as session:
        node = nodes.find(session, marker, by_uuid)
    if node is None:
        raise errors.BadRequest(f"marker [{marker}] not found")
    return node.uuid


def _list(req: falcon.Request, rt: Runtime, detail: bool) -> dict[str, Any]:
    mv = microversion(req)
    authorize(req, rt, RULE.format("list-detail" if detail else "list"))
    pattern = with_servers = None
    if mv.matches("2.53"):
        known = ("limit", "marker", "hypervisor_hostname_pattern", "with_servers")
        reject_unknown_params(req, known, since="2.53")
        pattern = query(req, "hypervisor_hostname_pattern")
        with_servers = query_bool(req, "with_servers")
    paged = mv.matches("2.33")
    limit, marker = limit_and_marker(req) if paged else (None, None)
    if pattern is not None:
        if "limit" in req.params or marker:
            raise errors.BadRequest(
                "Paging over hypervisors with the hypervisor_hostname_pattern query "
                "parameter is not supported."
            )
        paged = False
        found = _search(rt, pattern)
    else:
        after = _marker_uuid(req, rt, marker)
        with rt.db.session(readonly=True) as session:
            found = nodes.list_nodes(session, limit=limit, after_uuid=after)
    body: dict[str, Any] = {"hypervisors": _views(req, rt, found, detail, bool(with_servers))}
    if paged and limit is not None:
        collection = "os-hypervisors/detail" if detail else "os-hypervisors"
        last = str(node_id(req, found[-1])) if found else None
        links = next_links(req, collection, len(found), limit, last)
        if links:
            body["hypervisors_links"] = links
    return body


def _search(rt: Runtime, pattern: str) -> list[ComputeNode]:
    with rt.db.session(readonly=True) as session:
        found = nodes.list_nodes(session, hostname_contains=pattern)
    if not found:
        raise errors.NotFound(f"No hypervisor matching '{pattern}' could be found.")
    return found


def _node(req: falcon.Request, rt: Runtime, ident: str) -> ComputeNode:
    """The node an id names: 400 for a non-uuid from 2.53, 404 when there is none."""
    by_uuid = microversion(req).matches("2.53")
    if by_uuid:
        try:
            uuid.UUID(ident)
        except ValueError as exc:
            raise errors.BadRequest(f"Invalid uuid {ident}") from exc
    with rt.db.session(readonly=True) as session:
        node = nodes.find(session, ident, by_uuid)
    if node is None:
        raise errors.NotFound(f"Hypervisor with ID '{ident}' could not be found.")
    return node


class Hypervisors:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = _list(req, self.rt, detail=False)


class HypervisorsDetail:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = _list(req, self.rt, detail=True)


class HypervisorStatistics:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if microversion(req).matches("2.88"):
            raise errors.NotFound("The resource could not be found.")
        authorize(req, self.rt, RULE.format("statistics"))
        with self.rt.db.session(readonly=True) as session:
            resp.media = {"hypervisor_statistics": nodes.statistics(session)}


class Hypervisor:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, hypervisor_id: str) -> None:
        mv = microversion(req)
        authorize(req, self.rt, RULE.format("show"))
        with_servers = False
        if mv.matches("2.53"):
            reject_unknown_params(req, ("with_servers",), since="2.53")
            with_servers = query_bool(req, "with_servers")
        node = _node(req, self.rt, hypervisor_id)
        resp.media = {"hypervisor": _views(req, self.rt, [node], True, with_servers)[0]}


class HypervisorUptime:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, hypervisor_id: str) -> None:
        if microversion(req).matches("2.88"):
            raise errors.NotFound("The resource could not be found.")
        authorize(req, self.rt, RULE.format("uptime"))
        _node(req, self.rt, hypervisor_id)
        raise falcon.HTTPNotImplemented(description="Compute nodes do not report their uptime.")


class HypervisorSearch:
    """GET /os-hypervisors/{pattern}/search and /servers, until 2.52."""

    def __init__(self, rt: Runtime, with_servers: bool) -> None:
        self.rt = rt
        self.with_servers = with_servers

    def on_get(self, req: falcon.Request, resp: falcon.Response, hypervisor_id: str) -> None:
        if microversion(req).matches("2.53"):
            raise errors.NotFound("The resource could not be found.")
        authorize(req, self.rt, RULE.format("servers" if self.with_servers else "search"))
        found = _search(self.rt, hypervisor_id)
        resp.media = {"hypervisors": _views(req, self.rt, found, False, self.with_servers)}


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    root = f"{prefix}/os-hypervisors"
    item = f"{root}/{{hypervisor_id}}"
    app.add_route(root, Hypervisors(rt))
    app.add_route(f"{root}/detail", HypervisorsDetail(rt))
    app.add_route(f"{root}/statistics", HypervisorStatistics(rt))
    app.add_route(item, Hypervisor(rt))
    app.add_route(f"{item}/uptime", HypervisorUptime(rt))
    app.add_route(f"{item}/search", HypervisorSearch(rt, with_servers=False))
    app.add_route(f"{item}/servers", HypervisorSearch(rt, with_servers=True))
