"""Routes of the server API: /servers and everything under a server."""

from __future__ import annotations

import falcon

from ciaostack.compat.nova import (
    instance_actions,
    server_actions,
    server_interfaces,
    server_metadata,
    server_tags,
)
from ciaostack.compat.nova import servers as server_resources
from ciaostack.compat.nova.servers import Compute
from ciaostack.core.compute.servers import Servers
from ciaostack.core.network.ipam import IPAM
from ciaostack.core.runtime import Runtime


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    """`prefix` is the compute API's versioned root, /compute/v2.1."""
    compute = Compute(rt, Servers(IPAM.from_conf(rt.conf)))
    server_resources.register(app, compute, prefix)
    server = f"{prefix}/servers/{{server_id}}"
    app.add_route(f"{server}/action", server_actions.ServerAction(compute))
    app.add_route(f"{server}/metadata", server_metadata.ServerMetadata(compute))
    app.add_route(f"{server}/metadata/{{key}}", server_metadata.ServerMetadataItem(compute))
    app.add_route(f"{server}/tags", server_tags.ServerTags(compute))
    app.add_route(f"{server}/tags/{{tag}}", server_tags.ServerTag(compute))
    actions = instance_actions.InstanceActions(compute)
    app.add_route(f"{server}/os-instance-actions", actions)
    app.add_route(f"{server}/os-instance-actions/{{request_id}}", actions, suffix="one")
    server_interfaces.add_routes(app, compute, server)
