"""Identity objects for tests, made through the identity API as a client would make them."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from typing import Any

import requests

from tests.support.cloud import Cloud

V3 = "/identity/v3"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def created(resp: requests.Response, key: str) -> dict[str, Any]:
    assert resp.status_code == 201, f"creating a {key}: {resp.status_code} {resp.text}"
    return resp.json()[key]


@dataclasses.dataclass(frozen=True)
class Member:
    """A user holding one role on a project of their own."""

    user: dict[str, Any]
    password: str
    project: dict[str, Any]

    @property
    def user_id(self) -> str:
        return self.user["id"]

    @property
    def project_id(self) -> str:
        return self.project["id"]

    def auth(self, cloud: Cloud, project: str | None = None) -> requests.Response:
        return cloud.auth(self.user["name"], self.password, project or self.project["name"])

    def token(self, cloud: Cloud) -> str:
        resp = self.auth(cloud)
        assert resp.status_code == 201, resp.text
        return resp.headers["X-Subject-Token"]


def create_project(cloud: Cloud, token: str, domain_id: str = "default") -> dict[str, Any]:
    body = {"project": {"name": unique("proj"), "domain_id": domain_id}}
    return created(cloud.request("POST", f"{V3}/projects", token, json=body), "project")


def create_user(
    cloud: Cloud, token: str, password: str, domain_id: str = "default"
) -> dict[str, Any]:
    body = {"user": {"name": unique("user"), "password": password, "domain_id": domain_id}}
    return created(cloud.request("POST", f"{V3}/users", token, json=body), "user")


def create_role(cloud: Cloud, token: str, **fields: Any) -> dict[str, Any]:
    body = {"role": {"name": unique("role"), **fields}}
    return created(cloud.request("POST", f"{V3}/roles", token, json=body), "role")


def role_id(cloud: Cloud, token: str, name: str) -> str:
    resp = cloud.request("GET", f"{V3}/roles", token, params={"name": name})
    [role] = resp.json()["roles"]
    return role["id"]


def grant(cloud: Cloud, token: str, project_id: str, user_id: str, role: str) -> None:
    path = f"{V3}/projects/{project_id}/users/{user_id}/roles/{role}"
    resp = cloud.request("PUT", path, token)
    assert resp.status_code == 204, resp.text


def new_member(cloud: Cloud, admin: str, role: str = "member") -> Member:
    """A fresh user with `role` (a name) on a fresh project in the default domain."""
    password = secrets.token_urlsafe(12)
    project = create_project(cloud, admin)
    user = create_user(cloud, admin, password)
    grant(cloud, admin, project["id"], user["id"], role_id(cloud, admin, role))
    return Member(user=user, password=password, project=project)


def token_roles(resp: requests.Response) -> set[str]:
    assert resp.status_code in (200, 201), resp.text
    return {r["name"] for r in resp.json()["token"]["roles"]}


def validate(cloud: Cloud, admin: str, subject: str) -> requests.Response:
    return cloud.request("GET", f"{V3}/auth/tokens", admin, headers={"X-Subject-Token": subject})
