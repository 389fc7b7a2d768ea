"""How Nova shows a server: status from vm_state and task_state, addresses, flavor and
image, and the fields each microversion adds (tempest's schemas refuse a field
shown before its microversion).

The view builder gets the request's microversion and what the caller may see
(administrator attributes, host status) once per request, then renders a whole
page from the loaded details without further queries.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any

import falcon

from ciaostack.compat.microversion import Version
from ciaostack.compat.nova import common
from ciaostack.compat.nova.views import base_url
from ciaostack.core.compute.nodes import DEFAULT_ZONE
from ciaostack.core.compute.server_query import ServerDetail, StateMatch
from ciaostack.core.controller import states
from ciaostack.core.db.models import Instance, ServerAttributes

# (vm_state, task_state) -> Nova's status; "default" is the status for any other task.
STATE_MAP: dict[str, dict[str | None, str]] = {
    states.ACTIVE: {
        "default": "ACTIVE",
        states.REBOOTING: "REBOOT",
        "reboot_pending": "REBOOT",
        "reboot_started": "REBOOT",
        states.REBOOTING_HARD: "HARD_REBOOT",
        "reboot_pending_hard": "HARD_REBOOT",
        "reboot_started_hard": "HARD_REBOOT",
        states.REBUILDING: "REBUILD",
        states.RESIZE_PREP: "RESIZE",
    },
    states.BUILDING: {"default": "BUILD"},
    states.STOPPED: {
        "default": "SHUTOFF",
        states.REBUILDING: "REBUILD",
        states.RESIZE_PREP: "RESIZE",
    },
    states.PAUSED: {"default": "PAUSED"},
    states.SUSPENDED: {"default": "SUSPENDED"},
    states.RESIZED: {"default": "VERIFY_RESIZE", states.RESIZE_REVERTING: "REVERT_RESIZE"},
    states.SHELVED: {"default": "SHELVED"},
    states.SHELVED_OFFLOADED: {"default": "SHELVED_OFFLOADED"},
    states.ERROR: {"default": "ERROR"},
    states.DELETED: {"default": "DELETED"},
}
# Statuses Nova knows that no server here can have (yet): filtering by them finds nothing.
OTHER_STATUSES = frozenset(
    {
        "RESCUE",
        "MIGRATING",
        "PASSWORD",
        "SOFT_DELETED",
        "UNKNOWN",
    }
)
PROGRESS_STATUSES = frozenset({"ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE"})
FAULT_STATUSES = frozenset({"ERROR", "DELETED"})


def status(instance: Instance) -> str:
    vm_state = states.DELETED if instance.deleted else instance.vm_state
    by_task = STATE_MAP.get(vm_state)
    if by_task is None:
        return "UNKNOWN"
    return by_task.get(instance.task_state, by_task["default"])


def state_matches(status_name: str) -> list[StateMatch] | None:
    """The instance states a status filter names; None when Nova knows no such status."""
    wanted = status_name.upper()
    matches = []
    for vm_state, by_task in STATE_MAP.items():
        tasks = frozenset(t for t, s in by_task.items() if s == wanted and t != "default")
        if by_task["default"] == wanted:
            matches.append(StateMatch(vm_state))
        elif tasks:
            matches.append(StateMatch(vm_state, tasks))
    if matches or wanted in OTHER_STATUSES:
        return matches
    return None


def isotime(value: dt.datetime | None) -> str | None:
    """Nova's created/updated: seconds and a Z."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def usage_time(value: dt.datetime | None) -> str | None:
    """OS-SRV-USG times: microseconds, no Z (Go clients parse exactly this)."""
    return value.isoformat(timespec="microseconds") if value is not None else None


def host_id(project_id: str, host: str | None) -> str:
    """Nova's hostId: the same for two servers of a project on one host, opaque otherwise."""
    return hashlib.sha224(f"{project_id}{host}".encode()).hexdigest() if host else ""


def addresses(detail: ServerDetail, extended: bool) -> dict[str, list[dict[str, Any]]]:
    result: dict[str, list[dict[str, Any]]] = {}
    for interface in detail.interfaces:
        entry: dict[str, Any] = {"version": 4, "addr": interface.ip}
        if extended:
            entry["OS-EXT-IPS:type"] = "fixed"
            entry["OS-EXT-IPS-MAC:mac_addr"] = interface.mac
        result.setdefault(interface.network_name, []).append(entry)
    return result


def host_status(detail: ServerDetail) -> str:
    """2.16: the state of the server's compute node."""
    if not detail.instance.host:
        return ""
    node = detail.node
    if node is None:
        return "UNKNOWN"
    if not node.connected:
        return "DOWN"
    if node.status == "MAINTENANCE":
        return "MAINTENANCE"
    return "UP"


def _fault(instance: Instance, admin: bool) -> dict[str, Any]:
    fault = instance.fault or {}
    code = int(fault.get("code", 500))
    created = fault.get("created")
    try:
        when = isotime(dt.datetime.fromisoformat(created)) if created else None
    except ValueError:
        when = None
    body: dict[str, Any] = {
        "code": code,
        "created": when or isotime(instance.updated_at),
        "message": fault.get("message", ""),
    }
    if admin or code != 500:
        body["details"] = fault.get("details", "")
    return body


# The microversions at which a server's view changes.
VIEW_VERSIONS = ("2.3", "2.9", "2.16", "2.19", "2.26", "2.47", "2.63", "2.71", "2.73")


@dataclasses.dataclass(frozen=True)
class ServerViews:
    """Renders servers for one request (a page of 1,000 included: what depends on the
    microversion is worked out once)."""

    req: falcon.Request
    version: Version
    admin_attributes: bool = False
    show_host_status: bool = False
    is_admin: bool = False
    since: dict[str, bool] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "since", {v: self.version.matches(v) for v in VIEW_VERSIONS})

    @property
    def root(self) -> str:
        return base_url(self.req)

    def links(self, server_id: str) -> list[dict[str, str]]:
        return common.resource_links(self.req, "servers", server_id)

    def summary(self, instance: Instance) -> dict[str, Any]:
        return {"id": instance.id, "name": instance.name, "links": self.links(instance.id)}

    def _image(self, instance: Instance) -> dict[str, Any] | str:
        if not instance.image_id:
            return ""
        href = f"{self.root}/images/{instance.image_id}"
        return {"id": instance.image_id, "links": [{"rel": "bookmark", "href": href}]}

    def _flavor(self, attrs: ServerAttributes | None) -> dict[str, Any]:
        flavor = attrs.flavor if attrs is not None else {}
        if self.since["2.47"]:
            return {
                "vcpus": flavor.get("vcpus", 0),
                "ram": flavor.get("ram", 0),
                "disk": flavor.get("disk", 0),
                "ephemeral": flavor.get("ephemeral", 0),
                "swap": flavor.get("swap", 0),
                "original_name": flavor.get("name", ""),
                "extra_specs": dict(flavor.get("extra_specs", {})),
            }
        if attrs is None or not attrs.flavor_id:
            return {}
        href = f"{self.root}/flavors/{attrs.flavor_id}"
        return {"id": attrs.flavor_id, "links": [{"rel": "bookmark", "href": href}]}

    def _basic(self, detail: ServerDetail, extended_addresses: bool) -> dict[str, Any]:
        instance, attrs = detail.instance, detail.attrs
        state = status(instance)
        server: dict[str, Any] = {
            "id": instance.id,
            "name": instance.name,
            "status": state,
            "tenant_id": instance.project_id,
            "user_id": instance.user_id,
            "metadata": detail.metadata,
            "hostId": host_id(instance.project_id, instance.host),
            "image": self._image(instance),
            "flavor": self._flavor(attrs),
            "created": isotime(instance.created_at),
            "updated": isotime(instance.updated_at),
            "addresses": addresses(detail, extended_addresses),
            "accessIPv4": attrs.access_ip_v4 if attrs else "",
            "accessIPv6": attrs.access_ip_v6 if attrs else "",
            "links": self.links(instance.id),
            "OS-DCF:diskConfig": attrs.disk_config if attrs else "MANUAL",
        }
        if state in PROGRESS_STATUSES:
            server["progress"] = 0
        if state in FAULT_STATUSES and instance.fault:
            server["fault"] = _fault(instance, self.is_admin)
        since = self.since
        if since["2.9"]:
            server["locked"] = bool(attrs and attrs.locked)
        if since["2.19"]:
            server["description"] = attrs.description if attrs else None
        if since["2.26"]:
            server["tags"] = detail.tags
        if since["2.63"]:
            server["trusted_image_certificates"] = None
        if since["2.73"]:
            server["locked_reason"] = attrs.locked_reason if attrs else None
        return server

    def detail(self, detail: ServerDetail, single: bool = False) -> dict[str, Any]:
        """A server as GET /servers/{id} (`single`) or /servers/detail shows it."""
        server = self._basic(detail, extended_addresses=True)
        instance, attrs = detail.instance, detail.attrs
        vm_state = states.DELETED if instance.deleted else instance.vm_state
        server.update(
            {
                "key_name": attrs.key_name if attrs else None,
                "config_drive": "True" if attrs and attrs.config_drive else "",
                "OS-EXT-AZ:availability_zone": instance.availability_zone or DEFAULT_ZONE,
                "OS-EXT-STS:task_state": instance.task_state,
                "OS-EXT-STS:vm_state": vm_state,
                "OS-EXT-STS:power_state": instance.power_state,
                "OS-SRV-USG:launched_at": usage_time(instance.launched_at),
                "OS-SRV-USG:terminated_at": usage_time(instance.terminated_at),
                "os-extended-volumes:volumes_attached": [],
            }
        )
        groups = attrs.security_groups if attrs else []
        if groups:
            server["security_groups"] = [{"name": name} for name in groups]
        if self.admin_attributes:
            server["OS-EXT-SRV-ATTR:host"] = instance.host
            server["OS-EXT-SRV-ATTR:hypervisor_hostname"] = instance.host
            server["OS-EXT-SRV-ATTR:instance_name"] = f"instance-{instance.id}"
            if self.since["2.3"]:
                server.update(
                    {
                        "OS-EXT-SRV-ATTR:reservation_id": attrs.reservation_id if attrs else "",
                        "OS-EXT-SRV-ATTR:launch_index": attrs.launch_index if attrs else 0,
                        "OS-EXT-SRV-ATTR:hostname": attrs.hostname if attrs else "",
                        "OS-EXT-SRV-ATTR:kernel_id": "",
                        "OS-EXT-SRV-ATTR:ramdisk_id": "",
                        "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                        "OS-EXT-SRV-ATTR:user_data": attrs.user_data if attrs else None,
                    }
                )
        if self.since["2.16"] and self.show_host_status:
            server["host_status"] = host_status(detail)
        if single and self.since["2.71"]:
            server["server_groups"] = detail.group_ids
        return server

    def updated(self, detail: ServerDetail) -> dict[str, Any]:
        """The PUT /servers/{id} answer: the basic view (Nova omits the extensions)."""
        server = self._basic(detail, extended_addresses=False)
        if self.since["2.71"]:
            server["server_groups"] = detail.group_ids
        return server
