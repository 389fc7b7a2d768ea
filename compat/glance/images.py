"""/v2/images: the image records, their tags and (de)activation."""

from __future__ import annotations

import urllib.parse
from typing import Any

import falcon

from ciaostack.compat.glance import listing, patch, views
from ciaostack.compat.glance.base import Glance
from ciaostack.compat.glance.common import auth, authorizer, caller, read_json
from ciaostack.core import errors
from ciaostack.core.images.model import WRITABLE
from ciaostack.core.validation import validate


def _empty_id(req: falcon.Request) -> None:
    """`/v2/images/` is an image with an empty id, not the collection: 404 (as in Glance).

    The app answers paths with and without a trailing slash alike, so only
    the raw path tells the two apart.
    """
    if req.env.get("PATH_INFO", "").endswith("/"):
        raise errors.NotFound("No image found with ID ''")


class Images:
    def __init__(self, glance: Glance) -> None:
        self.glance = glance

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        _empty_id(req)
        raise falcon.HTTPMethodNotAllowed(["GET", "POST"])

    on_patch = on_put = on_delete

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _empty_id(req)
        rt, who = self.glance.rt, caller(req, self.glance.rt)
        creds = auth(req).creds()
        rt.policy.authorize("get_images", {"project_id": who.project_id}, creds)
        query = listing.parse(req.params)
        page, more = self.glance.service.images.list(
            who, query, lambda image: rt.policy.check("get_image", image.target(), creds)
        )
        params = [(k, v) for k, v in _pairs(req.params) if k != "marker"]
        body: dict[str, Any] = {
            "images": [views.image(i, self.glance.store_id) for i in page],
            "first": "/v2/images" + (f"?{urllib.parse.urlencode(params)}" if params else ""),
            "schema": "/v2/schemas/images",
        }
        if more and page:
            body["next"] = "/v2/images?" + urllib.parse.urlencode(
                [*params, ("marker", page[-1].id)]
            )
        resp.media = body

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        _empty_id(req)
        body = read_json(req)
        if not isinstance(body, dict):
            raise errors.BadRequest("The request body must be a JSON object describing an image.")
        validate(self.glance.image_schema, body)
        values = {k: v for k, v in body.items() if k in (*WRITABLE, "id")}
        properties = {k: v for k, v in body.items() if k not in values}
        image = self.glance.service.images.create(
            caller(req, self.glance.rt),
            values,
            properties,
            body.get("tags", []),
            authorizer(req, self.glance.rt, hide=False),
        )
        resp.status = falcon.HTTP_201
        resp.location = f"{self.glance.base_url(req)}{views.image_href(image.id)}"
        resp.set_header(
            "OpenStack-image-import-methods", ",".join(self.glance.service.data.import_methods)
        )
        resp.set_header("OpenStack-image-store-ids", self.glance.store_id)
        resp.media = views.image(image, self.glance.store_id)


def _pairs(params: dict[str, Any]) -> list[tuple[str, str]]:
    """Query parameters as pairs again, repeated ones (tag) included."""
    return [(k, item) for k, v in params.items() for item in (v if isinstance(v, list) else [v])]


class Image:
    def __init__(self, glance: Glance) -> None:
        self.glance = glance

    def on_get(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        rt = self.glance.rt
        image = self.glance.service.images.get(caller(req, rt), image_id, authorizer(req, rt))
        resp.media = views.image(image, self.glance.store_id)

    def on_patch(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        media_type = (req.content_type or "").split(";")[0].strip().lower()
        if media_type not in patch.MEDIA_TYPES:
            raise falcon.HTTPUnsupportedMediaType(
                description="Image PATCH expects Content-Type one of: "
                + ", ".join(patch.MEDIA_TYPES),
                headers={"Accept-Patch": ", ".join(patch.MEDIA_TYPES)},
            )
        changes = patch.parse(read_json(req), media_type, self.glance.image_schema)
        rt = self.glance.rt
        image = self.glance.service.images.update(
            caller(req, rt), image_id, changes, authorizer(req, rt)
        )
        resp.media = views.image(image, self.glance.store_id)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        rt = self.glance.rt
        self.glance.service.images.delete(caller(req, rt), image_id, authorizer(req, rt))
        resp.status = falcon.HTTP_204


class Tag:
    def __init__(self, glance: Glance) -> None:
        self.glance = glance

    def on_put(self, req: falcon.Request, resp: falcon.Response, image_id: str, tag: str) -> None:
        validate(self.glance.image_schema, {"tags": [tag]})
        rt = self.glance.rt
        self.glance.service.images.add_tag(caller(req, rt), image_id, tag, authorizer(req, rt))
        resp.status = falcon.HTTP_204

    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, image_id: str, tag: str
    ) -> None:
        rt = self.glance.rt
        self.glance.service.images.remove_tag(caller(req, rt), image_id, tag, authorizer(req, rt))
        resp.status = falcon.HTTP_204


class Action:
    """POST /actions/deactivate and /actions/reactivate."""

    def __init__(self, glance: Glance, active: bool) -> None:
        self.glance = glance
        self.active = active

    def on_post(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        rt = self.glance.rt
        self.glance.service.images.set_active(
            caller(req, rt), image_id, self.active, authorizer(req, rt)
        )
        resp.status = falcon.HTTP_204


class Tasks:
    """GET /v2/images/{image_id}/tasks (Glance 2.12): the image's import tasks."""

    def __init__(self, glance: Glance) -> None:
        self.glance = glance

    def on_get(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        rt = self.glance.rt
        rows = self.glance.service.images.tasks(caller(req, rt), image_id, authorizer(req, rt))
        resp.media = {"tasks": [views.task(row) for row in rows]}
