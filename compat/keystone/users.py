"""/v3/users, a user's password and projects: Keystone JSON in and out of
core/identity/directory.py.

Attributes beyond Keystone's own (email, and anything else) are kept and
returned as Keystone does. Passwords are write-only.
"""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.compat.keystone.common import authorize, caller, query_bool, read_body
from ciaostack.compat.keystone.domains import BOOLEAN, DESCRIPTION, ID, OPTIONS, extra_of
from ciaostack.compat.keystone.projects import list_filters, project_view
from ciaostack.compat.keystone.views import collection_links, self_link
from ciaostack.core import errors
from ciaostack.core.db.models import User
from ciaostack.core.identity import directory, passwords
from ciaostack.core.identity.bootstrap import DEFAULT_DOMAIN_ID
from ciaostack.core.runtime import Runtime

_PASSWORD = {"type": "string", "maxLength": passwords.MAX_LENGTH}
_PROPERTIES = {
    "name": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"\S"},
    "domain_id": ID,
    "enabled": BOOLEAN,
    "password": {**_PASSWORD, "type": ["string", "null"]},
    "default_project_id": {"type": ["string", "null"], "maxLength": 64},
    "description": DESCRIPTION,
    "options": OPTIONS,
}
CREATE = {
    "type": "object",
    "properties": {
        "user": {"type": "object", "properties": _PROPERTIES, "required": ["name"]},
    },
    "required": ["user"],
    "additionalProperties": False,
}
UPDATE = {
    "type": "object",
    "properties": {
        "user": {"type": "object", "properties": _PROPERTIES, "minProperties": 1},
    },
    "required": ["user"],
    "additionalProperties": False,
}
CHANGE_PASSWORD = {
    "type": "object",
    "properties": {
        "user": {
            "type": "object",
            "properties": {"original_password": _PASSWORD, "password": _PASSWORD},
            "required": ["original_password", "password"],
            "additionalProperties": False,
        }
    },
    "required": ["user"],
    "additionalProperties": False,
}
# Never kept as extras: secrets above all.
_FIELDS = {
    "id",
    "links",
    "name",
    "domain_id",
    "enabled",
    "password",
    "original_password",
    "password_expires_at",
    "default_project_id",
    "description",
    "options",
}


def user_view(req: falcon.Request, user: User) -> dict[str, Any]:
    body = {
        **user.extra,
        "id": user.id,
        "name": user.name,
        "domain_id": user.domain_id,
        "enabled": user.enabled,
        "description": user.description,
        "password_expires_at": None,
        "options": {},
        "links": self_link(req, f"users/{user.id}"),
    }
    if user.default_project_id:  # Keystone leaves it out when unset
        body["default_project_id"] = user.default_project_id
    return body


def _target(user: User | None, user_id: str) -> dict[str, Any]:
    """Policy target; the user's domain when the user exists, as Keystone supplies it."""
    target: dict[str, Any] = {"id": user_id, "user_id": user_id}
    if user is not None:
        target["domain_id"] = user.domain_id
    return target


class Users:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ctx = authorize(req, self.rt, "identity:list_users")
        with self.rt.db.session(readonly=True) as session:
            rows = directory.list_users(
                session,
                name=req.get_param("name"),
                domain_id=req.get_param("domain_id"),
                enabled=query_bool(req, "enabled"),
            )
            if ctx.domain_id:  # a domain-scoped token sees its own domain's users only
                rows = [u for u in rows if u.domain_id == ctx.domain_id]
            resp.media = {
                "users": [user_view(req, u) for u in rows],
                "links": collection_links(req, "users"),
            }

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_body(req, CREATE)["user"]
        # Keystone: the body's domain, else a domain-scoped token's, else default.
        domain_id = body.get("domain_id") or caller(req).domain_id or DEFAULT_DOMAIN_ID
        authorize(req, self.rt, "identity:create_user", {"domain_id": domain_id})
        with self.rt.db.session() as session:
            user = directory.create_user(
                session,
                name=body["name"],
                domain_id=domain_id,
                hash_rounds=self.rt.identity.hash_rounds,
                password=body.get("password"),
                enabled=body.get("enabled", True),
                default_project_id=body.get("default_project_id"),
                description=body.get("description") or "",
                extra=extra_of(body, _FIELDS),
            )
            resp.media = {"user": user_view(req, user)}
        resp.status = falcon.HTTP_201


class UserItem:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        with self.rt.db.session(readonly=True) as session:
            user = session.get(User, user_id)
            authorize(req, self.rt, "identity:get_user", _target(user, user_id))
            resp.media = {"user": user_view(req, directory.get_user(session, user_id))}

    def on_patch(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        body = read_body(req, UPDATE)["user"]
        if body.get("id", user_id) != user_id:
            raise errors.BadRequest("The user id in the body differs from the URL's.")
        changes = {
            k: body[k]
            for k in (
                "name",
                "domain_id",
                "enabled",
                "password",
                "default_project_id",
                "description",
            )
            if k in body
        }
        extra = extra_of(body, _FIELDS)
        if extra:
            changes["extra"] = extra
        identity = self.rt.identity
        with directory.unit_of_work(self.rt.db, identity.revocations) as session:
            user = session.get(User, user_id)
            authorize(req, self.rt, "identity:update_user", _target(user, user_id))
            user = directory.update_user(
                session, identity.revocations, user_id, identity.hash_rounds, **changes
            )
            resp.media = {"user": user_view(req, user)}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        identity = self.rt.identity
        with directory.unit_of_work(self.rt.db, identity.revocations) as session:
            user = session.get(User, user_id)
            authorize(req, self.rt, "identity:delete_user", _target(user, user_id))
            directory.delete_user(session, identity.revocations, user_id)
        resp.status = falcon.HTTP_204


class UserPassword:
    """POST changes the user's own password; the original password is the proof.

    Like Keystone this works without a token, so that a user whose password
    has to change can still change it; a token, when sent, must be valid and
    pass `identity:change_password`.
    """

    public = True

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_post(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        token = req.get_header("X-Auth-Token")
        if token:
            req.context.auth = self.rt.identity.validate(token)
            authorize(req, self.rt, "identity:change_password", {"user_id": user_id})
        body = read_body(req, CHANGE_PASSWORD)["user"]
        identity = self.rt.identity
        with directory.unit_of_work(self.rt.db, identity.revocations) as session:
            directory.change_password(
                session,
                identity.revocations,
                user_id,
                original_password=body["original_password"],
                new_password=body["password"],
                hash_rounds=identity.hash_rounds,
            )
        resp.status = falcon.HTTP_204


class UserProjects:
    """The projects a user holds a role on, directly or inherited from a domain."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        with self.rt.db.session(readonly=True) as session:
            user = session.get(User, user_id)
            authorize(req, self.rt, "identity:list_user_projects", _target(user, user_id))
            ids = directory.user_projects(session, user_id)
            rows = directory.list_projects(session, ids=ids, **list_filters(req))
            resp.media = {
                "projects": [project_view(req, p) for p in rows],
                "links": collection_links(req, f"users/{user_id}/projects"),
            }


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    app.add_route(f"{prefix}/v3/users", Users(rt))
    app.add_route(f"{prefix}/v3/users/{{user_id}}", UserItem(rt))
    app.add_route(f"{prefix}/v3/users/{{user_id}}/password", UserPassword(rt))
    app.add_route(f"{prefix}/v3/users/{{user_id}}/projects", UserProjects(rt))
