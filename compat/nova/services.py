"""/os-services (list only) and /os-availability-zone/detail: the compute services,
for administrators.

One nova-compute per compute node, up while the node is connected and
disabled while it is in MAINTENANCE, plus nova-scheduler and nova-conductor
(ciao's scheduler and controller) in the `internal` zone. Those two keep no
record of themselves in the datastore: they are shown up, at the scheduler's
address, as of the newest node report they forwarded. Ids are numbers before
2.53 and uuids since; `forced_down` appears from 2.11. Enabling, disabling and
deleting services is not offered (a node enters maintenance on its own side).
"""

from __future__ import annotations

import socket
import uuid
from typing import Any

import falcon

from ciaostack.compat.nova.common import authorize, microversion, query, reject_unknown_params
from ciaostack.compat.nova.hypervisors import hostname, node_id
from ciaostack.compat.nova.views import zoneless_time
from ciaostack.core.compute import nodes
from ciaostack.core.compute.nodes import DEFAULT_ZONE
from ciaostack.core.runtime import Runtime

INTERNAL_ZONE = "internal"
# binary -> (number, uuid) of the services that are not nodes
CONTROL = {
    "nova-scheduler": (1, uuid.uuid5(uuid.NAMESPACE_URL, "ciaostack:nova-scheduler")),
    "nova-conductor": (2, uuid.uuid5(uuid.NAMESPACE_URL, "ciaostack:nova-conductor")),
}
_LOOPBACK = ("", "127.0.0.1", "localhost", "0.0.0.0", "::", "::1")  # noqa: S104 - names, not binds


def control_host(rt: Runtime) -> str:
    """Where the scheduler runs: its configured address, or this host's name when
    that address is local."""
    host = str(rt.conf.get("ssntp", "host"))
    return socket.gethostname() if host in _LOOPBACK else host


def services(req: falcon.Request, rt: Runtime) -> list[dict[str, Any]]:
    mv = microversion(req)
    with rt.db.session(readonly=True) as session:
        found = nodes.list_nodes(session)
        newest = nodes.last_report(session)
    entries: list[dict[str, Any]] = []
    host = control_host(rt)
    for binary, (number, ident) in CONTROL.items():
        entries.append(
            {
                "id": str(ident) if mv.matches("2.53") else number,
                "binary": binary,
                "host": host,
                "zone": INTERNAL_ZONE,
                "status": "enabled",
                "state": "up",
                "updated_at": zoneless_time(newest),
                "disabled_reason": None,
            }
        )
    for node in found:
        entries.append(
            {
                "id": node_id(req, node),
                "binary": "nova-compute",
                "host": hostname(node),
                "zone": node.availability_zone,
                "status": "disabled" if nodes.disabled(node) else "enabled",
                "state": "up" if node.connected else "down",
                "updated_at": zoneless_time(node.updated_at),
                "disabled_reason": "maintenance" if nodes.disabled(node) else None,
            }
        )
    if mv.matches("2.11"):
        for entry in entries:
            entry["forced_down"] = False
    return entries


class AvailabilityZonesDetail:
    """GET /os-availability-zone/detail: each zone's hosts and their services, as
    /os-services shows them (`available`: up, `active`: enabled)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize(req, self.rt, "os_compute_api:os-availability-zone:detail")
        listed = services(req, self.rt)
        zones: dict[str, dict[str, dict[str, Any]]] = {}
        if not any(s["zone"] != INTERNAL_ZONE for s in listed):
            zones[DEFAULT_ZONE] = {}  # no node yet: the default zone, as the plain list
        for service in listed:
            hosts = zones.setdefault(service["zone"], {})
            hosts.setdefault(service["host"], {})[service["binary"]] = {
                "available": service["state"] == "up",
                "active": service["status"] == "enabled",
                "updated_at": service["updated_at"],
            }
        resp.media = {
            "availabilityZoneInfo": [
                {"zoneName": name, "zoneState": {"available": _available(hosts)}, "hosts": hosts}
                for name, hosts in sorted(zones.items())
            ]
        }


def _available(hosts: dict[str, dict[str, dict[str, Any]]]) -> bool:
    """A zone is available while one of its services is enabled (or it has none yet)."""
    return not hosts or any(s["active"] for h in hosts.values() for s in h.values())


class Services:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reject_unknown_params(req, ("host", "binary"))
        authorize(req, self.rt, "os_compute_api:os-services:list")
        found = services(req, self.rt)
        host, binary = query(req, "host"), query(req, "binary")
        if host:
            found = [s for s in found if s["host"] == host]
        if binary:
            found = [s for s in found if s["binary"] == binary]
        resp.media = {"services": found}


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    app.add_route(f"{prefix}/os-services", Services(rt))
    app.add_route(f"{prefix}/os-availability-zone/detail", AvailabilityZonesDetail(rt))
