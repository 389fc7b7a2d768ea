"""/v2/images/{id}/members: sharing an image with other projects."""

from __future__ import annotations

import falcon

from ciaostack.compat.glance import schemas, views
from ciaostack.compat.glance.base import Glance
from ciaostack.compat.glance.common import authorizer, caller, read_json


class Members:
    def __init__(self, glance: Glance) -> None:
        self.glance = glance

    def on_get(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        rt = self.glance.rt
        members = self.glance.service.members.list(caller(req, rt), image_id, authorizer(req, rt))
        resp.media = {
            "members": [views.member(m) for m in members],
            "schema": "/v2/schemas/members",
        }

    def on_post(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        body = read_json(req, schemas.MEMBER_CREATE)
        rt = self.glance.rt
        member = self.glance.service.members.add(
            caller(req, rt), image_id, body["member"], authorizer(req, rt)
        )
        resp.media = views.member(member)


class Member:
    def __init__(self, glance: Glance) -> None:
        self.glance = glance

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, image_id: str, member_id: str
    ) -> None:
        rt = self.glance.rt
        member = self.glance.service.members.get(
            caller(req, rt), image_id, member_id, authorizer(req, rt)
        )
        resp.media = views.member(member)

    def on_put(
        self, req: falcon.Request, resp: falcon.Response, image_id: str, member_id: str
    ) -> None:
        body = read_json(req, schemas.MEMBER_UPDATE)
        rt = self.glance.rt
        member = self.glance.service.members.update(
            caller(req, rt), image_id, member_id, body["status"], authorizer(req, rt)
        )
        resp.media = views.member(member)

    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, image_id: str, member_id: str
    ) -> None:
        rt = self.glance.rt
        self.glance.service.members.remove(
            caller(req, rt), image_id, member_id, authorizer(req, rt)
        )
        resp.status = falcon.HTTP_204
