"""/servers/{id}/os-interface: a server's network interfaces, as Nova shows its ports.

Kubernetes' OpenStack cloud provider reads a node's addresses, and the subnet of
a load balancer's members, from this list. A server here has at most one
interface, on the network it was booted on (none with `networks: "none"`);
attaching another or detaching it would need the node to hot-plug a device,
which no backend does yet: those answer 501, as Nova does for a feature its
driver lacks.
"""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.compat.nova import common
from ciaostack.compat.nova.servers import Compute, target_of
from ciaostack.core import errors
from ciaostack.core.network.ipam import Interface

RULE = "os_compute_api:os-attach-interfaces:{}"
_NO_HOTPLUG = (
    "Attaching and detaching interfaces is not available: a server keeps the interface "
    "it was created with."
)


def interface_view(interface: Interface, req: falcon.Request) -> dict[str, Any]:
    view: dict[str, Any] = {
        "port_state": interface.port_status,
        "fixed_ips": [{"subnet_id": interface.subnet_id, "ip_address": interface.ip}],
        "port_id": interface.port_id,
        "net_id": interface.network_id,
        "mac_addr": interface.mac,
    }
    if common.microversion(req).matches("2.70"):
        view["tag"] = None  # no device tags are kept
    return view


class ServerInterfaces:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute

    def _interfaces(self, req: falcon.Request, server_id: str, rule: str) -> list[Interface]:
        rt, auth = self.compute.rt, common.caller(req)
        with rt.db.session(readonly=True) as session:
            instance = self.compute.servers.get(session, auth, server_id)
            common.authorize(req, rt, RULE.format(rule), target_of(instance))
            return self.compute.servers.ipam.interfaces(session, [instance.id])[instance.id]

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        found = self._interfaces(req, server_id, "list")
        resp.media = {"interfaceAttachments": [interface_view(i, req) for i in found]}

    def on_post(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        # 404 for a server the caller cannot see, 403 without the right, then 501.
        self._interfaces(req, server_id, "create")
        raise errors.NotAvailable(_NO_HOTPLUG)

    def _one(self, req: falcon.Request, server_id: str, port_id: str, rule: str) -> Interface:
        for interface in self._interfaces(req, server_id, rule):
            if interface.port_id == port_id:
                return interface
        raise errors.NotFound(f"Instance {server_id} has no interface with port {port_id}.")

    def on_get_one(
        self, req: falcon.Request, resp: falcon.Response, server_id: str, port_id: str
    ) -> None:
        interface = self._one(req, server_id, port_id, "show")
        resp.media = {"interfaceAttachment": interface_view(interface, req)}

    def on_delete_one(
        self, req: falcon.Request, resp: falcon.Response, server_id: str, port_id: str
    ) -> None:
        self._one(req, server_id, port_id, "delete")  # a port it does not have: 404
        raise errors.NotAvailable(_NO_HOTPLUG)


def add_routes(app: falcon.App, compute: Compute, server: str) -> None:
    """`server` is the route of one server, .../servers/{server_id}."""
    interfaces = ServerInterfaces(compute)
    app.add_route(f"{server}/os-interface", interfaces)
    app.add_route(f"{server}/os-interface/{{port_id}}", interfaces, suffix="one")
