"""/v3/auth: token issue, validation and revocation; the caller's catalog and scopes."""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.compat.keystone.common import authorize, read_body
from ciaostack.compat.keystone.views import isotime, self_link
from ciaostack.core import errors
from ciaostack.core.identity.auth import NamedRef, Scope
from ciaostack.core.identity.context import AuthContext
from ciaostack.core.runtime import Runtime

_ID = {"type": "string", "minLength": 1, "maxLength": 255}
_DOMAIN_REF = {
    "type": "object",
    "properties": {"id": _ID, "name": _ID},
    "anyOf": [{"required": ["id"]}, {"required": ["name"]}],
}
_NAMED_REF = {
    "type": "object",
    "properties": {"id": _ID, "name": _ID, "domain": _DOMAIN_REF},
    "anyOf": [{"required": ["id"]}, {"required": ["name", "domain"]}],
}
_USER_WITH_SECRET = {
    "type": "object",
    "properties": {
        "user": {
            **_NAMED_REF,
            "properties": {**_NAMED_REF["properties"], "password": {"type": "string"}},
            "required": ["password"],
        }
    },
    "required": ["user"],
}
_APP_CRED = {
    "type": "object",
    "properties": {"id": _ID, "name": _ID, "secret": {"type": "string"}, "user": _NAMED_REF},
    "required": ["secret"],
    "anyOf": [{"required": ["id"]}, {"required": ["name", "user"]}],
}
AUTH_SCHEMA = {
    "type": "object",
    "properties": {
        "auth": {
            "type": "object",
            "properties": {
                "identity": {
                    "type": "object",
                    "properties": {
                        "methods": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"enum": ["password", "token", "application_credential"]},
                        },
                        "password": _USER_WITH_SECRET,
                        "token": {
                            "type": "object",
                            "properties": {"id": {"type": "string", "minLength": 1}},
                            "required": ["id"],
                        },
                        "application_credential": _APP_CRED,
                    },
                    "required": ["methods"],
                },
                # The two branches exclude each other, so anyOf means oneOf here; put
                # first, the object form is checked once (oneOf would also try the string
                # and fail it, at a quarter of the whole body's check).
                "scope": {
                    "anyOf": [
                        {
                            "type": "object",
                            "properties": {"project": _NAMED_REF, "domain": _DOMAIN_REF},
                            "minProperties": 1,
                            "maxProperties": 1,
                        },
                        {"const": "unscoped"},
                    ]
                },
            },
            "required": ["identity"],
        }
    },
    "required": ["auth"],
}


def _ref(data: dict[str, Any]) -> NamedRef:
    domain = data.get("domain") or {}
    return NamedRef(
        id=data.get("id"),
        name=data.get("name"),
        domain_id=domain.get("id"),
        domain_name=domain.get("name"),
    )


def _scope(auth: dict[str, Any]) -> Scope:
    scope = auth.get("scope")
    if scope is None:
        return Scope()
    if scope == "unscoped":
        return Scope(unscoped=True)
    if "project" in scope:
        return Scope(project=_ref(scope["project"]))
    return Scope(domain=NamedRef(id=scope["domain"].get("id"), name=scope["domain"].get("name")))


def token_body(ctx: AuthContext, catalog: list[dict[str, Any]] | None) -> dict[str, Any]:
    token: dict[str, Any] = {
        "methods": ctx.methods,
        "user": {
            "id": ctx.user_id,
            "name": ctx.user_name,
            "domain": {"id": ctx.user_domain_id, "name": ctx.user_domain_name},
            "password_expires_at": None,
        },
        "audit_ids": ctx.audit_ids,
        "issued_at": isotime(ctx.issued_at),
        "expires_at": isotime(ctx.expires_at),
    }
    if ctx.project_id:
        token["project"] = {
            "id": ctx.project_id,
            "name": ctx.project_name,
            "domain": {"id": ctx.project_domain_id, "name": ctx.project_domain_name},
        }
        token["is_domain"] = False
    elif ctx.domain_id:
        token["domain"] = {"id": ctx.domain_id, "name": ctx.domain_name}
    if ctx.project_id or ctx.domain_id:
        token["roles"] = [
            {"id": i, "name": n} for i, n in zip(ctx.role_ids, ctx.roles, strict=True)
        ]
        if catalog is not None:
            token["catalog"] = catalog
    if ctx.app_cred_id:
        token["application_credential"] = {
            "id": ctx.app_cred_id,
            "name": ctx.app_cred_name,
            "restricted": not ctx.app_cred_unrestricted,
        }
    return {"token": token}


class Tokens:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    public = True  # POST authenticates itself; the other verbs check X-Auth-Token below

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        auth = read_body(req, AUTH_SCHEMA)["auth"]
        identity = auth["identity"]
        methods: list[str] = list(dict.fromkeys(identity["methods"]))
        if len(methods) != 1:
            raise errors.Unauthorized("Exactly one authentication method is supported per request.")
        method = methods[0]
        if method not in identity:
            raise errors.BadRequest(f"Invalid input: '{method}' is required by the methods listed.")
        scope = _scope(auth)
        core = self.rt.identity
        parent = app_cred = None
        if method == "password":
            user = identity["password"]["user"]
            user_id = core.check_password(_ref(user), user["password"])
        elif method == "token":
            parent = core.validate(identity["token"]["id"])
            user_id = parent.user_id
        else:
            data = identity["application_credential"]
            app_cred = core.check_app_cred(
                data["secret"],
                data.get("id"),
                data.get("name"),
                _ref(data["user"]) if "user" in data else None,
            )
            user_id = app_cred.user_id
        token, ctx = core.issue(user_id, [method], scope, parent=parent, app_cred=app_cred)
        req.context.auth = ctx  # the access line names who was given a token, and its scope
        catalog = None if "nocatalog" in req.params else core.catalog()
        resp.status = falcon.HTTP_201
        resp.set_header("X-Subject-Token", token)
        resp.media = token_body(ctx, catalog)

    def _subject(self, req: falcon.Request, rule: str) -> AuthContext:
        caller = self.rt.identity.validate(_auth_token(req))
        req.context.auth = caller
        subject_id = req.get_header("X-Subject-Token")
        if not subject_id:
            raise errors.BadRequest("The X-Subject-Token header is required.")
        try:
            subject = self.rt.identity.validate(subject_id)
        except errors.Unauthorized as exc:
            raise errors.NotFound(f"Failed to validate token: {exc.message}") from exc
        authorize(req, self.rt, rule, {"user_id": subject.user_id})
        return subject

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        subject = self._subject(req, "identity:validate_token")
        catalog = None if "nocatalog" in req.params else self.rt.identity.catalog()
        resp.set_header("X-Subject-Token", req.get_header("X-Subject-Token"))
        resp.media = token_body(subject, catalog)

    def on_head(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._subject(req, "identity:check_token")
        resp.status = falcon.HTTP_200

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        subject = self._subject(req, "identity:revoke_token")
        self.rt.identity.revoke(subject)
        resp.status = falcon.HTTP_204


def _auth_token(req: falcon.Request) -> str:
    token = req.get_header("X-Auth-Token")
    if not token:
        raise errors.Unauthorized("The request you have made requires authentication.")
    return token


class AuthCatalog:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ctx = authorize(req, self.rt, "identity:get_auth_catalog")
        if not (ctx.project_id or ctx.domain_id):
            raise errors.Forbidden("An unscoped token has no catalog.")
        resp.media = {
            "catalog": self.rt.identity.catalog(),
            "links": self_link(req, "auth/catalog"),
        }


class AuthProjects:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ctx = authorize(req, self.rt, "identity:get_auth_projects")
        projects = self.rt.identity.scopable_projects(ctx.user_id)
        resp.media = {
            "projects": [
                {
                    "id": p.id,
                    "name": p.name,
                    "domain_id": p.domain_id,
                    "enabled": p.enabled,
                    "description": p.description,
                    "parent_id": p.parent_id or p.domain_id,
                    "is_domain": False,
                    "tags": p.tags,
                    "links": self_link(req, f"projects/{p.id}"),
                }
                for p in projects
            ],
            "links": self_link(req, "auth/projects") | {"previous": None, "next": None},
        }


class AuthDomains:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ctx = authorize(req, self.rt, "identity:get_auth_domains")
        domains = self.rt.identity.scopable_domains(ctx.user_id)
        resp.media = {
            "domains": [
                {
                    "id": d.id,
                    "name": d.name,
                    "enabled": d.enabled,
                    "description": d.description,
                    "links": self_link(req, f"domains/{d.id}"),
                }
                for d in domains
            ],
            "links": self_link(req, "auth/domains") | {"previous": None, "next": None},
        }
