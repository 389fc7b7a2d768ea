"""/v3/users/{user_id}/application_credentials: what OCCM and Cinder CSI log in with."""

from __future__ import annotations

import datetime as dt
from typing import Any

import falcon

from ciaostack.compat.keystone.common import authorize, caller, read_body
from ciaostack.compat.keystone.views import collection_links, self_link
from ciaostack.core.db.models import ApplicationCredential, Role
from ciaostack.core.identity import app_creds as core
from ciaostack.core.runtime import Runtime

_ROLE_REF = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 64},
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
    },
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
}
CREATE_SCHEMA = {
    "type": "object",
    "properties": {
        "application_credential": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},  # accepted and ignored: the server picks ids
                "name": {"type": "string", "minLength": 1, "maxLength": 255},
                "description": {"type": ["string", "null"]},
                "secret": {"type": ["string", "null"], "maxLength": 4096},
                "expires_at": {"type": ["string", "null"]},
                "unrestricted": {"type": ["boolean", "null"]},
                "roles": {"type": "array", "items": _ROLE_REF},
                # Access rules are not enforced here, so a credential asking for them is refused
                # rather than silently given more than it asked for.
                "access_rules": {"type": "array", "maxItems": 0},
            },
            "required": ["name"],
            "additionalProperties": False,
        }
    },
    "required": ["application_credential"],
    "additionalProperties": False,
}


def _isotime(value: dt.datetime | None) -> str | None:
    """Keystone writes this one without a zone; gophercloud parses it that way only."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value is not None else None


def cred_view(
    req: falcon.Request, cred: ApplicationCredential, roles: list[Role], secret: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": cred.id,
        "name": cred.name,
        "description": cred.description or None,
        "expires_at": _isotime(cred.expires_at),
        "project_id": cred.project_id,
        "user_id": cred.user_id,
        "roles": [{"id": r.id, "name": r.name, "domain_id": r.domain_id or None} for r in roles],
        "unrestricted": cred.unrestricted,
        "links": self_link(req, f"users/{cred.user_id}/application_credentials/{cred.id}"),
    }
    if secret is not None:
        body["secret"] = secret
    return body


class AppCreds:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        authorize(req, self.rt, "identity:list_application_credentials", {"user_id": user_id})
        with self.rt.db.session(readonly=True) as session:
            found = core.list_for_user(session, user_id, name=req.get_param("name"))
            resp.media = {
                "application_credentials": [
                    cred_view(req, c, core.roles_of(session, c)) for c in found
                ],
                "links": collection_links(req, f"users/{user_id}/application_credentials"),
            }

    def on_post(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        body = read_body(req, CREATE_SCHEMA)["application_credential"]
        ctx = authorize(
            req, self.rt, "identity:create_application_credential", {"user_id": user_id}
        )
        core.require_creator(ctx, user_id)  # before the deliberately slow hash below
        expires_at = core.parse_expiry(body.get("expires_at"))
        secret, secret_hash = core.new_secret(body.get("secret"), self.rt.identity.hash_rounds)
        with self.rt.db.session() as session:
            cred = core.create(
                session,
                ctx,
                user_id,
                name=body["name"],
                secret_hash=secret_hash,
                description=body.get("description"),
                expires_at=expires_at,
                unrestricted=bool(body.get("unrestricted")),
                roles=body.get("roles"),
            )
            view = cred_view(req, cred, core.roles_of(session, cred), secret=secret)
        resp.status = falcon.HTTP_201
        resp.media = {"application_credential": view}


class AppCred:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def _authorize(self, req: falcon.Request, rule: str, user_id: str, cred_id: str) -> None:
        """Policy sees the credential's real owner, not the one the path claims (as Keystone)."""
        with self.rt.db.session(readonly=True) as session:
            cred = core.find(session, cred_id)
            owner = cred.user_id if cred is not None else user_id
        authorize(req, self.rt, rule, {"user_id": owner})

    def on_get(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        user_id: str,
        application_credential_id: str,
    ) -> None:
        self._authorize(
            req, "identity:get_application_credential", user_id, application_credential_id
        )
        with self.rt.db.session(readonly=True) as session:
            cred = core.get(session, user_id, application_credential_id)
            resp.media = {
                "application_credential": cred_view(req, cred, core.roles_of(session, cred))
            }

    def on_delete(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        user_id: str,
        application_credential_id: str,
    ) -> None:
        self._authorize(
            req, "identity:delete_application_credential", user_id, application_credential_id
        )
        revocations = self.rt.identity.revocations
        with self.rt.db.session() as session:
            core.delete(session, revocations, caller(req), user_id, application_credential_id)
        revocations.notify()
        resp.status = falcon.HTTP_204


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    base = f"{prefix}/v3/users/{{user_id}}/application_credentials"
    app.add_route(base, AppCreds(rt))
    app.add_route(f"{base}/{{application_credential_id}}", AppCred(rt))
