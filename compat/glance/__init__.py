"""Glance v2 served under /image: translation between Glance JSON and the image core.

The catalog's image endpoint is unversioned (gophercloud appends `v2/`), so
/image answers the version choices and everything else lives under /image/v2.
"""

from __future__ import annotations

from collections.abc import Callable

import falcon

from ciaostack.compat.glance import data, discovery, images, members
from ciaostack.compat.glance.base import PREFIX, Glance
from ciaostack.compat.glance.views import error_body
from ciaostack.core.images import ImageService, snapshots
from ciaostack.core.runtime import Runtime


def _www_authenticate(auth_uri: str | None) -> Callable[[int], dict[str, str]] | None:
    if auth_uri is None:
        return None  # keystonemiddleware in front of the app adds it

    def headers(status: int) -> dict[str, str]:
        return {"WWW-Authenticate": f'Keystone uri="{auth_uri}"'} if status == 401 else {}

    return headers


def register(app: falcon.App, rt: Runtime, faults) -> None:  # noqa: ANN001 - api.faults.Faults
    external = rt.conf.get("identity", "mode") == "external"
    faults.register(
        PREFIX,
        error_body,
        _www_authenticate(None if external else f"{rt.conf.public_url}/identity"),
    )
    glance = Glance(rt, ImageService(rt.conf, rt.db))
    v2 = f"{PREFIX}/v2"
    app.add_route(PREFIX, discovery.Versions())
    app.add_route(f"{PREFIX}/versions", discovery.VersionList())
    app.add_route(v2, discovery.VersionList())
    for name, resource in discovery.schema_resources(glance).items():
        app.add_route(f"{v2}/schemas/{name}", resource)
    app.add_route(f"{v2}/info/import", discovery.ImportInfo(glance))
    app.add_route(f"{v2}/info/stores", discovery.StoresInfo(glance))
    app.add_route(f"{v2}/images", images.Images(glance))
    item = f"{v2}/images/{{image_id}}"
    app.add_route(item, images.Image(glance))
    app.add_route(f"{item}/file", data.ImageFile(glance))
    app.add_route(f"{item}/stage", data.ImageStage(glance))
    app.add_route(f"{item}/import", data.ImageImport(glance))
    app.add_route(f"{item}/actions/deactivate", images.Action(glance, active=False))
    app.add_route(f"{item}/actions/reactivate", images.Action(glance, active=True))
    app.add_route(f"{item}/tags/{{tag}}", images.Tag(glance))
    app.add_route(f"{item}/tasks", images.Tasks(glance))
    app.add_route(f"{item}/members", members.Members(glance))
    app.add_route(f"{item}/members/{{member_id}}", members.Member(glance))
    # Server snapshots from compute nodes (not a Glance route; see core/images/snapshots.py).
    grants = snapshots.UploadGrants(rt.conf.key_repository)
    app.add_route(snapshots.UPLOAD_PATH, data.SnapshotUpload(glance, grants))
