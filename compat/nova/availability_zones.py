"""GET /compute/v2.1/os-availability-zone: the zones a user may boot into.

A zone is where compute nodes are: each launcher is configured in one
(`[launcher] availability_zone`, default `nova`). Before any node has reported,
the default zone is listed, as clients (Terraform, the Cinder CSI topology code)
ask for it by name.
"""

from __future__ import annotations

import falcon

from ciaostack.core.compute import nodes
from ciaostack.core.runtime import Runtime


class AvailabilityZones:
    """Any authenticated caller may list zones (Nova's default rule is the same)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.rt.db.session(readonly=True) as session:
            zones = nodes.zones(session)
        resp.media = {
            "availabilityZoneInfo": [
                {"zoneName": name, "zoneState": {"available": available}, "hosts": None}
                for name, available in sorted(zones.items())
            ]
        }
