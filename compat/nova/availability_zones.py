"""GET /compute/v2.1/os-availability-zone: the zones a user may boot into.

Every compute node belongs to the default zone `nova` until zones can be
configured; clients (Terraform, the Cinder CSI topology code) ask for it by
that name.
"""

from __future__ import annotations

import falcon

DEFAULT_ZONE = "nova"


class AvailabilityZones:
    """Any authenticated caller may list zones (Nova's default rule is the same)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "availabilityZoneInfo": [
                {"zoneName": DEFAULT_ZONE, "zoneState": {"available": True}, "hosts": None}
            ]
        }
