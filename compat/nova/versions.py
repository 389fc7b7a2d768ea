"""Compute version discovery: GET /compute and /compute/v2.1, both public.

Only v2.1 is offered. Its maximum microversion is the highest at which every
served resource has the shapes and rules that microversion defines (2.74,
Terraform's highest): a client must never be promised fields this cloud does
not serve. Features a microversion adds that need the compute nodes to do what
they cannot yet (consoles, migrations, rebuild) answer 501 or 404, as Nova does
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
        resp.media = {"versions": [version_v21(req)]}


class VersionV21:
    public = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "version": {
                **version_v21(req),
                "media-types": [{"base": "application/json", "type": MEDIA_TYPE}],
            }
        }
