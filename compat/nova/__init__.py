"""Nova compute v2.1 served under /compute: translation between Nova JSON and the core.

Only version discovery and the availability zone list exist so far; the
catalog gains a compute entry when servers can be created.
"""

from __future__ import annotations

from collections.abc import Callable

import falcon

from ciaostack.compat.microversion import MicroversionMiddleware, Microversions, Version
from ciaostack.compat.nova import (
    availability_zones,
    flavors,
    hypervisors,
    keypairs,
    legacy_v2,
    limits,
    migrations,
    quotas,
    server_groups,
    server_routes,
    services,
    usage,
    versions,
)
from ciaostack.compat.nova.views import fault_body
from ciaostack.core.runtime import Runtime

PREFIX = "/compute"
MICROVERSIONS = Microversions(
    service="compute",
    prefix=f"{PREFIX}/v2.1",
    minimum=Version.parse(versions.MIN_VERSION),
    maximum=Version.parse(versions.MAX_VERSION),
    legacy_header="X-OpenStack-Nova-API-Version",
)


def _www_authenticate(auth_uri: str | None) -> Callable[[int], dict[str, str]] | None:
    """Where a 401 sends clients for a token; in external mode keystonemiddleware, in
    front of the app, adds the header itself."""
    if auth_uri is None:
        return None

    def headers(status: int) -> dict[str, str]:
        return {"WWW-Authenticate": f'Keystone uri="{auth_uri}"'} if status == 401 else {}

    return headers


def register(app: falcon.App, rt: Runtime, faults) -> None:  # noqa: ANN001 - api.faults.Faults
    external = rt.conf.get("identity", "mode") == "external"
    auth_uri = None if external else f"{rt.conf.public_url}/identity"
    faults.register(PREFIX, fault_body, _www_authenticate(auth_uri))
    app.add_middleware(MicroversionMiddleware(MICROVERSIONS))
    app.add_middleware(legacy_v2.LegacyV2(PREFIX, MICROVERSIONS))
    app.add_route(PREFIX, versions.Versions())
    app.add_route(f"{PREFIX}/v2", versions.VersionV20())
    app.add_route(f"{PREFIX}/v2.1", versions.VersionV21())
    app.add_route(f"{PREFIX}/v2.1/os-availability-zone", availability_zones.AvailabilityZones(rt))
    # Compute resources beside the servers: flavors, key pairs, limits, quotas, server
    # groups, hypervisors, services (and availability zone detail), usage, migrations.
    for module in (
        flavors,
        keypairs,
        limits,
        quotas,
        server_groups,
        hypervisors,
        services,
        usage,
        migrations,
    ):
        module.add_routes(app, rt, f"{PREFIX}/v2.1")
    # Servers, their actions, metadata, tags and instance actions.
    server_routes.add_routes(app, rt, f"{PREFIX}/v2.1")
