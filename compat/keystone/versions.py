"""Identity version discovery: GET /identity (300) and /identity/v3 (200)."""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.compat.keystone.views import base_url

VERSION_ID = "v3.14"
UPDATED = "2020-04-07T00:00:00Z"
MEDIA_TYPE = "application/vnd.openstack.identity-v3+json"


def version_v3(req: falcon.Request) -> dict[str, Any]:
    return {
        "id": VERSION_ID,
        "status": "stable",
        "updated": UPDATED,
        "links": [{"rel": "self", "href": f"{base_url(req)}/v3/"}],
        "media-types": [{"base": "application/json", "type": MEDIA_TYPE}],
    }


class Versions:
    public = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = falcon.HTTP_300
        resp.media = {"versions": {"values": [version_v3(req)]}}


class VersionV3:
    public = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"version": version_v3(req)}
