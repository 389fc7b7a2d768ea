"""/os-keypairs: create (generated) or import, list, show, delete a user's key pairs.

Per microversion: `type` (ssh or x509) from 2.2, which also answers create
with 201 and delete with 204 (200 and 202 before); `user_id` (body and query)
for administrators from 2.10; limit/marker paging with `keypairs_links` from
2.35; from 2.92 a public key is required (no more generated pairs) and names
may hold '@' and '.'.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import falcon

from ciaostack.compat.nova.common import (
    NAME,
    authorize,
    caller,
    limit_and_marker,
    microversion,
    next_links,
    query,
    read_body,
    reject_unknown_params,
)
from ciaostack.core.compute import keypairs, quotas
from ciaostack.core.db.models import KeyPair
from ciaostack.core.runtime import Runtime


def _name(pattern: str) -> dict[str, Any]:
    return {"allOf": [NAME, {"type": "string", "pattern": pattern}]}


def _schema(fields: dict[str, Any], required: tuple[str, ...] = ("name",)) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "keypair": {
                "type": "object",
                "properties": fields,
                "required": list(required),
                "additionalProperties": False,
            }
        },
        "required": ["keypair"],
        "additionalProperties": False,
    }


_NAME = _name(r"^[_\- a-zA-Z0-9]+$")
_TYPE = {"type": "string", "enum": list(keypairs.TYPES)}
_KEY = {"type": "string"}
CREATE = _schema({"name": _NAME, "public_key": _KEY})
CREATE_V22 = _schema({"name": _NAME, "type": _TYPE, "public_key": _KEY})
CREATE_V210 = _schema({"name": _NAME, "type": _TYPE, "public_key": _KEY, "user_id": _KEY})
CREATE_V292 = _schema(
    {"name": _name(r"^[_\-\@\. a-zA-Z0-9]+$"), "type": _TYPE, "public_key": _KEY, "user_id": _KEY},
    required=("name", "public_key"),
)


def _create_schema(req: falcon.Request) -> dict[str, Any]:
    mv = microversion(req)
    if mv.matches("2.92"):
        return CREATE_V292
    if mv.matches("2.10"):
        return CREATE_V210
    return CREATE_V22 if mv.matches("2.2") else CREATE


def _timestamp(value: dt.datetime) -> str:
    """Nova shows a key pair's created_at without a zone designator."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")


def _summary(req: falcon.Request, pair: KeyPair) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": pair.name,
        "public_key": pair.public_key,
        "fingerprint": pair.fingerprint,
    }
    if microversion(req).matches("2.2"):
        body["type"] = pair.type
    return body


def _detail(req: falcon.Request, pair: KeyPair) -> dict[str, Any]:
    return {
        **_summary(req, pair),
        "user_id": pair.user_id,
        "created_at": _timestamp(pair.created_at),
        "deleted": False,
        "deleted_at": None,
        "id": pair.id,
        "updated_at": None,
    }


def _user(req: falcon.Request, rt: Runtime, rule: str, requested: str | None) -> str:
    """Whose key pairs: the caller's, or from 2.10 the ?user_id an administrator names."""
    user_id = caller(req).user_id
    if requested and microversion(req).matches("2.10"):
        user_id = requested
    authorize(req, rt, f"os_compute_api:os-keypairs:{rule}", {"user_id": user_id})
    return user_id


class Keypairs:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        mv = microversion(req)
        reject_unknown_params(req, ("user_id", "limit", "marker"))
        user_id = _user(req, self.rt, "index", query(req, "user_id"))
        limit, marker = limit_and_marker(req) if mv.matches("2.35") else (None, None)
        with self.rt.db.session(readonly=True) as session:
            pairs = keypairs.list_pairs(session, user_id, limit=limit, marker=marker)
        body: dict[str, Any] = {"keypairs": [{"keypair": _summary(req, p)} for p in pairs]}
        if limit is not None:
            last = pairs[-1].name if pairs else None
            links = next_links(req, "os-keypairs", len(pairs), limit, last)
            if links:
                body["keypairs_links"] = links
        resp.media = body

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        mv = microversion(req)
        body = read_body(req, _create_schema(req))["keypair"]
        user_id = _user(req, self.rt, "create", body.get("user_id"))
        project_id = caller(req).project_id or ""
        key_type = body.get("type", keypairs.SSH)
        public_key, private_key = body.get("public_key"), None
        if public_key is None:
            generated = keypairs.generate(key_type, user_id)
            public_key, private_key = generated.public_key, generated.private_key
        with self.rt.db.session() as session:
            limit = quotas.limits_for(session, project_id, user_id)["key_pairs"]
            pair = keypairs.create(
                session, user_id, body["name"].strip(), key_type, public_key, limit
            )
            view = {**_summary(req, pair), "user_id": pair.user_id}
        if private_key is not None:
            view["private_key"] = private_key
        resp.media = {"keypair": view}
        resp.status = falcon.HTTP_201 if mv.matches("2.2") else falcon.HTTP_200


class Keypair:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        reject_unknown_params(req, ("user_id",))
        user_id = _user(req, self.rt, "show", query(req, "user_id"))
        with self.rt.db.session(readonly=True) as session:
            resp.media = {"keypair": _detail(req, keypairs.get(session, user_id, name))}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        reject_unknown_params(req, ("user_id",))
        user_id = _user(req, self.rt, "delete", query(req, "user_id"))
        with self.rt.db.session() as session:
            keypairs.delete(session, user_id, name)
        resp.status = falcon.HTTP_204 if microversion(req).matches("2.2") else falcon.HTTP_202


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    app.add_route(f"{prefix}/os-keypairs", Keypairs(rt))
    app.add_route(f"{prefix}/os-keypairs/{{name}}", Keypair(rt))
