"""/v3/projects and project tags: Keystone JSON in and out of core/identity/directory.py.

Keystone models a domain as a project "acting as a domain" (`is_domain`), and
clients may create, list, update and delete domains through this API too; such
requests are answered from the domains.
"""

from __future__ import annotations

from typing import Any

import falcon
from sqlalchemy.orm import Session

from ciaostack.compat.keystone.common import authorize, caller, query_bool, read_body
from ciaostack.compat.keystone.domains import (
    BOOLEAN,
    DESCRIPTION,
    NAME,
    OPTIONS,
    TAGS,
    domain_changes,
    extra_of,
)
from ciaostack.compat.keystone.views import collection_links, self_link
from ciaostack.core import errors
from ciaostack.core.db.models import Domain, Project
from ciaostack.core.identity import directory
from ciaostack.core.runtime import Runtime
from ciaostack.core.validation import validate

_NULLABLE_ID = {"type": ["string", "null"], "maxLength": 64}
_PROPERTIES = {
    "name": NAME,
    "description": DESCRIPTION,
    "enabled": BOOLEAN,
    "is_domain": BOOLEAN,
    "domain_id": _NULLABLE_ID,
    "parent_id": _NULLABLE_ID,
    "tags": TAGS,
    "options": OPTIONS,
}
CREATE = {
    "type": "object",
    "properties": {
        "project": {"type": "object", "properties": _PROPERTIES, "required": ["name"]},
    },
    "required": ["project"],
    "additionalProperties": False,
}
UPDATE = {
    "type": "object",
    "properties": {
        "project": {"type": "object", "properties": _PROPERTIES, "minProperties": 1},
    },
    "required": ["project"],
    "additionalProperties": False,
}
TAG = TAGS["items"]
SET_TAGS = {
    "type": "object",
    "properties": {"tags": TAGS},
    "required": ["tags"],
    "additionalProperties": False,
}
_FIELDS = {
    "id",
    "links",
    "name",
    "description",
    "enabled",
    "is_domain",
    "domain_id",
    "parent_id",
    "tags",
    "options",
}


def project_view(req: falcon.Request, project: Project | Domain) -> dict[str, Any]:
    """A project; a domain in the shape of the project that acts as it."""
    if isinstance(project, Domain):
        extra = {k: v for k, v in project.extra.items() if k != "tags"}
        fields = {
            "domain_id": None,
            "parent_id": None,
            "is_domain": True,
            "tags": project.extra.get("tags", []),
        }
    else:
        extra = project.extra
        fields = {
            "domain_id": project.domain_id,
            "parent_id": project.parent_id or project.domain_id,
            "is_domain": False,
            "tags": project.tags,
        }
    return {
        **extra,
        **fields,
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "enabled": project.enabled,
        "options": {},
        "links": self_link(req, f"projects/{project.id}"),
    }


def _csv(req: falcon.Request, name: str) -> list[str] | None:
    value = req.get_param(name)
    return None if value is None else [t for t in value.split(",") if t]


def list_filters(req: falcon.Request) -> dict[str, Any]:
    """The list filters Keystone's project listings take from the query."""
    return {
        "name": req.get_param("name"),
        "domain_id": req.get_param("domain_id"),
        "enabled": query_bool(req, "enabled"),
        "parent_id": req.get_param("parent_id"),
        "tags": _csv(req, "tags"),
        "tags_any": _csv(req, "tags-any"),
        "not_tags": _csv(req, "not-tags"),
        "not_tags_any": _csv(req, "not-tags-any"),
    }


def _lookup(session: Session, project_id: str) -> Project | Domain | None:
    return session.get(Project, project_id) or session.get(Domain, project_id)


def _target(project: Project | Domain | None, project_id: str) -> dict[str, Any]:
    """Policy target; the project's domain when it exists, as Keystone supplies it."""
    target: dict[str, Any] = {"id": project_id, "project_id": project_id}
    if isinstance(project, Project):
        target["domain_id"] = project.domain_id
    return target


class Projects:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ctx = authorize(req, self.rt, "identity:list_projects")
        filters = list_filters(req)
        with self.rt.db.session(readonly=True) as session:
            rows: list[Project | Domain]
            if query_bool(req, "is_domain"):
                rows = list(
                    directory.list_domains(
                        session, name=filters["name"], enabled=filters["enabled"]
                    )
                )
            else:
                rows = list(directory.list_projects(session, **filters))
            views = [project_view(req, p) for p in rows]
        if ctx.domain_id:  # a domain-scoped token sees its own domain's projects only
            views = [v for v in views if v["domain_id"] == ctx.domain_id]
        resp.media = {"projects": views, "links": collection_links(req, "projects")}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_body(req, CREATE)["project"]
        ctx = caller(req)
        # Keystone: a domain-scoped token's domain, else the parent's, else default.
        domain_id = body.get("domain_id") or ctx.domain_id
        authorize(req, self.rt, "identity:create_project", {"domain_id": domain_id})
        with self.rt.db.session() as session:
            project: Project | Domain
            if body.get("is_domain"):
                if body.get("parent_id"):
                    raise errors.BadRequest("Only a top-level project can act as a domain.")
                project = directory.create_domain(
                    session,
                    name=body["name"],
                    description=body.get("description") or "",
                    enabled=body.get("enabled", True),
                    extra={**extra_of(body, _FIELDS), "tags": body.get("tags", [])},
                )
            else:
                project = directory.create_project(
                    session,
                    name=body["name"],
                    domain_id=domain_id,
                    parent_id=body.get("parent_id"),
                    description=body.get("description") or "",
                    enabled=body.get("enabled", True),
                    tags=body.get("tags"),
                    extra=extra_of(body, _FIELDS),
                )
            resp.media = {"project": project_view(req, project)}
        resp.status = falcon.HTTP_201


class ProjectItem:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
        with self.rt.db.session(readonly=True) as session:
            project = _lookup(session, project_id)
            authorize(req, self.rt, "identity:get_project", _target(project, project_id))
            if project is None:
                raise errors.NotFound(f"Could not find project: {project_id}.")
            resp.media = {"project": project_view(req, project)}

    def on_patch(self, req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
        body = read_body(req, UPDATE)["project"]
        if body.get("id", project_id) != project_id:
            raise errors.BadRequest("The project id in the body differs from the URL's.")
        identity = self.rt.identity
        with directory.unit_of_work(self.rt.db, identity.revocations) as session:
            project = _lookup(session, project_id)
            authorize(req, self.rt, "identity:update_project", _target(project, project_id))
            if isinstance(project, Domain):
                if body.get("is_domain") is False:
                    raise errors.BadRequest("A project acting as a domain stays one.")
                # name, description, enabled as themselves; tags and extras as extras.
                kept = _FIELDS - {"name", "description", "enabled", "tags"}
                changes = domain_changes(extra_of(body, kept))
                project = directory.update_domain(
                    session, identity.revocations, project_id, **changes
                )
            else:
                if body.get("is_domain"):
                    raise errors.BadRequest("A project cannot start acting as a domain.")
                changes = {
                    k: body[k]
                    for k in ("name", "description", "enabled", "tags", "domain_id", "parent_id")
                    if k in body
                }
                extra = extra_of(body, _FIELDS)
                if extra:
                    changes["extra"] = extra
                project = directory.update_project(
                    session, identity.revocations, project_id, **changes
                )
            resp.media = {"project": project_view(req, project)}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
        identity = self.rt.identity
        with directory.unit_of_work(self.rt.db, identity.revocations) as session:
            project = _lookup(session, project_id)
            authorize(req, self.rt, "identity:delete_project", _target(project, project_id))
            if isinstance(project, Domain):
                if project.enabled:
                    raise errors.BadRequest(
                        f"Cannot delete the enabled project {project_id} acting as a domain: "
                        "disable it first."
                    )
                directory.delete_domain(session, identity.revocations, project_id)
            else:
                directory.delete_project(session, identity.revocations, project_id)
        resp.status = falcon.HTTP_204


class ProjectTags:
    """GET lists a project's tags, PUT replaces them all, DELETE removes them all."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
        with self.rt.db.session(readonly=True) as session:
            project = session.get(Project, project_id)
            authorize(req, self.rt, "identity:get_project", _target(project, project_id))
            resp.media = {
                "tags": directory.get_project(session, project_id).tags,
                "links": self_link(req, f"projects/{project_id}/tags"),
            }

    def _replace(self, req: falcon.Request, project_id: str, tags: list[str]) -> Project:
        with self.rt.db.session() as session:
            project = session.get(Project, project_id)
            authorize(req, self.rt, "identity:update_project", _target(project, project_id))
            return directory.set_project_tags(session, project_id, tags)

    def on_put(self, req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
        tags = read_body(req, SET_TAGS)["tags"]
        project = self._replace(req, project_id, tags)
        resp.media = {"tags": project.tags, "links": self_link(req, f"projects/{project_id}/tags")}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
        self._replace(req, project_id, [])
        resp.status = falcon.HTTP_204


class ProjectTag:
    """GET (or HEAD) checks one tag (204 or 404), PUT adds it (201), DELETE removes it."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, project_id: str, tag: str) -> None:
        with self.rt.db.session(readonly=True) as session:
            project = session.get(Project, project_id)
            authorize(req, self.rt, "identity:get_project", _target(project, project_id))
            if tag not in directory.get_project(session, project_id).tags:
                raise errors.NotFound(f"Could not find project tag: {tag}.")
        resp.status = falcon.HTTP_204

    on_head = on_get

    def on_put(self, req: falcon.Request, resp: falcon.Response, project_id: str, tag: str) -> None:
        validate(TAG, tag)
        with self.rt.db.session() as session:
            project = session.get(Project, project_id)
            authorize(req, self.rt, "identity:update_project", _target(project, project_id))
            directory.add_project_tag(session, project_id, tag)
        resp.status = falcon.HTTP_201
        resp.set_header("Location", self_link(req, f"projects/{project_id}/tags/{tag}")["self"])

    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, project_id: str, tag: str
    ) -> None:
        with self.rt.db.session() as session:
            project = session.get(Project, project_id)
            authorize(req, self.rt, "identity:update_project", _target(project, project_id))
            directory.remove_project_tag(session, project_id, tag)
        resp.status = falcon.HTTP_204


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    app.add_route(f"{prefix}/v3/projects", Projects(rt))
    app.add_route(f"{prefix}/v3/projects/{{project_id}}", ProjectItem(rt))
    app.add_route(f"{prefix}/v3/projects/{{project_id}}/tags", ProjectTags(rt))
    app.add_route(f"{prefix}/v3/projects/{{project_id}}/tags/{{tag}}", ProjectTag(rt))
