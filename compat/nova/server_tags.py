"""/servers/{id}/tags (2.26): a server's tags, all at once or one by one."""

from __future__ import annotations

import re

import falcon

from ciaostack.compat.nova import common, server_schemas
from ciaostack.compat.nova.servers import Compute, target_of
from ciaostack.compat.nova.views import base_url
from ciaostack.core import errors

RULE = "os_compute_api:os-server-tags:{}"
_TAG = re.compile(r"^[^,/]{1,60}$")


def _since_226(req: falcon.Request) -> None:
    """Before 2.26 the resource does not exist (Nova answers 404)."""
    if not common.microversion(req).matches("2.26"):
        raise errors.NotFound("The resource could not be found.")


def _tag_location(req: falcon.Request, server_id: str, tag: str) -> str:
    return f"{base_url(req)}/v2.1/servers/{server_id}/tags/{tag}"


class ServerTags:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        _since_226(req)
        rt, auth = self.compute.rt, common.caller(req)
        with rt.db.session(readonly=True) as session:
            instance = self.compute.servers.get(session, auth, server_id)
            common.authorize(req, rt, RULE.format("index"), target_of(instance))
            resp.media = {"tags": self.compute.servers.tags(session, instance)}

    def on_put(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        _since_226(req)
        rt, auth = self.compute.rt, common.caller(req)
        body = common.read_body(req, server_schemas.TAGS_BODY)
        with rt.db.session() as session:
            instance = self.compute.servers.get(session, auth, server_id, lock=True)
            common.authorize(req, rt, RULE.format("update_all"), target_of(instance))
            resp.media = {"tags": self.compute.servers.set_tags(session, instance, body["tags"])}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        _since_226(req)
        rt, auth = self.compute.rt, common.caller(req)
        with rt.db.session() as session:
            instance = self.compute.servers.get(session, auth, server_id, lock=True)
            common.authorize(req, rt, RULE.format("delete_all"), target_of(instance))
            self.compute.servers.delete_tag(session, instance, None)
        resp.status = falcon.HTTP_204


class ServerTag:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str, tag: str) -> None:
        _since_226(req)
        rt, auth = self.compute.rt, common.caller(req)
        with rt.db.session(readonly=True) as session:
            instance = self.compute.servers.get(session, auth, server_id)
            common.authorize(req, rt, RULE.format("show"), target_of(instance))
            present = tag in self.compute.servers.tags(session, instance)
        if not present:
            raise errors.NotFound(f"Tag {tag} could not be found.")
        resp.status = falcon.HTTP_204

    def on_put(self, req: falcon.Request, resp: falcon.Response, server_id: str, tag: str) -> None:
        _since_226(req)
        if not _TAG.match(tag):
            raise errors.BadRequest(
                f"Tag '{tag}' is invalid: at most 60 characters, no ',' and no '/'."
            )
        rt, auth = self.compute.rt, common.caller(req)
        with rt.db.session() as session:
            instance = self.compute.servers.get(session, auth, server_id, lock=True)
            common.authorize(req, rt, RULE.format("update"), target_of(instance))
            created = self.compute.servers.add_tag(session, instance, tag)
        resp.status = falcon.HTTP_201 if created else falcon.HTTP_204
        resp.set_header("Location", _tag_location(req, server_id, tag))

    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, server_id: str, tag: str
    ) -> None:
        _since_226(req)
        rt, auth = self.compute.rt, common.caller(req)
        with rt.db.session() as session:
            instance = self.compute.servers.get(session, auth, server_id, lock=True)
            common.authorize(req, rt, RULE.format("delete"), target_of(instance))
            self.compute.servers.delete_tag(session, instance, tag)
        resp.status = falcon.HTTP_204
