"""Keystone v3 served under /identity: translation between Keystone JSON and the identity core."""

from __future__ import annotations

import falcon

from ciaostack.compat.keystone import (
    app_creds,
    auth,
    domains,
    endpoints,
    grants,
    projects,
    regions,
    roles,
    services,
    users,
    versions,
)
from ciaostack.compat.keystone.views import error_body
from ciaostack.core.runtime import Runtime

PREFIX = "/identity"


def _auth_headers(req_prefix: str):  # noqa: ANN202
    def headers(status: int) -> dict[str, str]:
        if status == 401:
            return {"WWW-Authenticate": f'Keystone uri="{req_prefix}"'}
        return {}

    return headers


def register(app: falcon.App, rt: Runtime, faults) -> None:  # noqa: ANN001 - api.faults.Faults
    faults.register(PREFIX, error_body, _auth_headers(f"{rt.conf.public_url}{PREFIX}"))
    app.add_route(PREFIX, versions.Versions())
    app.add_route(f"{PREFIX}/v3", versions.VersionV3())
    app.add_route(f"{PREFIX}/v3/auth/tokens", auth.Tokens(rt))
    app.add_route(f"{PREFIX}/v3/auth/catalog", auth.AuthCatalog(rt))
    app.add_route(f"{PREFIX}/v3/auth/projects", auth.AuthProjects(rt))
    app.add_route(f"{PREFIX}/v3/auth/domains", auth.AuthDomains(rt))
    # Directory and catalog CRUD (domains, projects, users, regions, services, endpoints).
    for module in (domains, projects, users, regions, services, endpoints):
        module.add_routes(app, rt, PREFIX)
    # Roles, implied roles, grants, role assignments, application credentials.
    roles.add_routes(app, rt, PREFIX)
    grants.add_routes(app, rt, PREFIX)
    app_creds.add_routes(app, rt, PREFIX)
