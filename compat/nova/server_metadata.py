"""/servers/{id}/metadata: the server's key/value metadata, whole or one item."""

from __future__ import annotations

import falcon

from ciaostack.compat.nova import common, server_schemas
from ciaostack.compat.nova.servers import Compute, target_of
from ciaostack.core import errors

RULE = "os_compute_api:server-metadata:{}"


class ServerMetadata:
    """GET (index), POST (merge: create), PUT (replace all: update_all)."""

    def __init__(self, compute: Compute) -> None:
        self.compute = compute

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        rt, auth = self.compute.rt, common.caller(req)
        with rt.db.session(readonly=True) as session:
            instance = self.compute.servers.get(session, auth, server_id)
            common.authorize(req, rt, RULE.format("index"), target_of(instance))
            resp.media = {"metadata": self.compute.servers.metadata(session, instance)}

    def _set(
        self, req: falcon.Request, resp: falcon.Response, server_id: str, replace: bool
    ) -> None:
        rt, auth = self.compute.rt, common.caller(req)
        body = common.read_body(req, server_schemas.METADATA_BODY)
        with rt.db.session() as session:
            instance = self.compute.servers.get(session, auth, server_id, lock=True)
            rule = "update_all" if replace else "create"
            common.authorize(req, rt, RULE.format(rule), target_of(instance))
            result = self.compute.servers.set_metadata(
                session, auth, instance, body["metadata"], replace
            )
        resp.media = {"metadata": result}

    def on_post(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        self._set(req, resp, server_id, replace=False)

    def on_put(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        self._set(req, resp, server_id, replace=True)


class ServerMetadataItem:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str, key: str) -> None:
        rt, auth = self.compute.rt, common.caller(req)
        with rt.db.session(readonly=True) as session:
            instance = self.compute.servers.get(session, auth, server_id)
            common.authorize(req, rt, RULE.format("show"), target_of(instance))
            metadata = self.compute.servers.metadata(session, instance)
        if key not in metadata:
            raise errors.NotFound("Metadata item was not found")
        resp.media = {"meta": {key: metadata[key]}}

    def on_put(self, req: falcon.Request, resp: falcon.Response, server_id: str, key: str) -> None:
        rt, auth = self.compute.rt, common.caller(req)
        body = common.read_body(req, server_schemas.META_ITEM)
        if key not in body["meta"]:
            raise errors.BadRequest("Request body and URI mismatch")
        with rt.db.session() as session:
            instance = self.compute.servers.get(session, auth, server_id, lock=True)
            common.authorize(req, rt, RULE.format("update"), target_of(instance))
            self.compute.servers.set_metadata(session, auth, instance, body["meta"], replace=False)
        resp.media = {"meta": body["meta"]}

    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, server_id: str, key: str
    ) -> None:
        rt, auth = self.compute.rt, common.caller(req)
        with rt.db.session() as session:
            instance = self.compute.servers.get(session, auth, server_id, lock=True)
            common.authorize(req, rt, RULE.format("delete"), target_of(instance))
            self.compute.servers.delete_metadata(session, auth, instance, key)
        resp.status = falcon.HTTP_204
