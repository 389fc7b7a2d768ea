"""Compute version discovery: GET /compute, /compute/v2 and /compute/v2.1, all public.

v2.1 is the API; v2.0 is listed first, as Nova lists it (clients and tempest
expect it there), and is served as Nova serves it: the v2.1 API at microversion
2.1 (compat/nova/legacy_v2.py). The v2.1 maximum microversion is the highest at
which every served resource has the shapes and rules that microversion defines
(2.74, Terraform's highest): a client must never be promised fields this cloud does
not serve. Features a microversion adds that need the compute nodes to do what
they cannot (remote consoles, migrations) answer 501 or 404, as Nova does
when a deployment lacks them.
"""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.compat.nova.views import base_url

MIN_VERSION = "2.1"
MAX_VERSION = "2.74"
UPDATED = "2013-07-23T11:33:21Z"
MEDIA_TYPE = "application/vnd.openstack.compute+json;version=2.1"
V20_UPDATED = "2011-01-21T11:33:21Z"
V20_MEDIA_TYPE = "application/vnd.openstack.compute+json;version=2"


def version_v20(req: falcon.Request) -> dict[str, Any]:
    """v2.0 has no microversions: Nova gives it empty version bounds."""
    return {
        "id": "v2.0",
        "status": "SUPPORTED",
        "version": "",
        "min_version": "",
        "updated": V20_UPDATED,
        "links": [{"rel": "self", "href": f"{base_url(req)}/v2/"}],
    }


def version_v21(req: falcon.Request) -> dict[str, Any]:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": MAX_VERSION,
        "min_version": MIN_VERSION,
        "updated": UPDATED,
        "links": [{"rel": "self", "href": f"{base_url(req)}/v2.1/"}],
    }


class Versions:
    public = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"versions": [version_v20(req), version_v21(req)]}


class VersionV20:
    public = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "version": {
                **version_v20(req),
                "media-types": [{"base": "application/json", "type": V20_MEDIA_TYPE}],
            }
        }


class VersionV21:
    public = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "version": {
                **version_v21(req),
                "media-types": [{"base": "application/json", "type": MEDIA_TYPE}],
            }
        }
