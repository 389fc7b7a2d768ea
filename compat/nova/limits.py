"""/limits: the caller's project's absolute limits and usage (?tenant_id for admins).

Limits no longer enforced by Nova leave the document as it dropped them: the
network ones at 2.36, maxImageMeta at 2.39, the injected file ones at 2.57.
Rate limits are not kept (an empty `rate`).
"""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.compat.nova.common import (
    authorize,
    caller,
    microversion,
    query,
    reject_unknown_params,
)
from ciaostack.core.compute import quotas
from ciaostack.core.runtime import Runtime

# resource -> the names it is shown under
LIMIT_NAMES = {
    "ram": ("maxTotalRAMSize",),
    "instances": ("maxTotalInstances",),
    "cores": ("maxTotalCores",),
    "key_pairs": ("maxTotalKeypairs",),
    "floating_ips": ("maxTotalFloatingIps",),
    "metadata_items": ("maxServerMeta", "maxImageMeta"),
    "injected_files": ("maxPersonality",),
    "injected_file_content_bytes": ("maxPersonalitySize",),
    "security_groups": ("maxSecurityGroups",),
    "security_group_rules": ("maxSecurityGroupRules",),
    "server_groups": ("maxServerGroups",),
    "server_group_members": ("maxServerGroupMembers",),
}
USED_NAMES = {
    "totalRAMUsed": "ram",
    "totalCoresUsed": "cores",
    "totalInstancesUsed": "instances",
    "totalFloatingIpsUsed": "floating_ips",
    "totalSecurityGroupsUsed": "security_groups",
    "totalServerGroupsUsed": "server_groups",
}
NETWORK = ("floating_ips", "security_groups", "security_group_rules", "fixed_ips")
FILES = ("injected_files", "injected_file_content_bytes", "injected_file_path_bytes")


def hidden_resources(req: falcon.Request) -> tuple[str, ...]:
    """The resources a microversion no longer shows (limits and quota sets alike)."""
    mv = microversion(req)
    if mv.matches("2.57"):
        return NETWORK + FILES
    return NETWORK if mv.matches("2.36") else ()


def absolute(req: falcon.Request, limits: dict[str, int], in_use: dict[str, int]) -> dict[str, int]:
    hidden = hidden_resources(req)
    image_meta = not microversion(req).matches("2.39")
    body: dict[str, int] = {}
    for resource, names in LIMIT_NAMES.items():
        if resource in hidden:
            continue
        for name in names:
            if name != "maxImageMeta" or image_meta:
                body[name] = limits[resource]
    for name, resource in USED_NAMES.items():
        if resource not in hidden:
            body[name] = in_use[resource]
    return body


class Limits:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reject_unknown_params(req, ("tenant_id",))
        authorize(req, self.rt, "os_compute_api:limits")
        project_id = caller(req).project_id or ""
        other = query(req, "tenant_id")
        if other is not None:
            authorize(req, self.rt, "os_compute_api:limits:other_project")
            project_id = other
        with self.rt.db.session(readonly=True) as session:
            limits = quotas.limits_for(session, project_id)
            in_use = quotas.usage_for(session, project_id)
        body: dict[str, Any] = {"rate": [], "absolute": absolute(req, limits, in_use)}
        resp.media = {"limits": body}


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    app.add_route(f"{prefix}/limits", Limits(rt))
