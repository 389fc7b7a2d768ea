"""Application credentials over real HTTP: the way OCCM and Cinder CSI log in."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import pytest
import requests

from tests.support.cloud import Cloud
from tests.support.identity import (
    V3,
    Member,
    create_role,
    grant,
    new_member,
    role_id,
    token_roles,
    unique,
    validate,
)

NO_ZONE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")


@pytest.fixture(scope="module")
def admin(cloud: Cloud) -> str:
    return cloud.token()


def _path(user_id: str, cred_id: str = "") -> str:
    path = f"{V3}/users/{user_id}/application_credentials"
    return f"{path}/{cred_id}" if cred_id else path


def create(cloud: Cloud, token: str, user_id: str, **fields: Any) -> requests.Response:
    body = {"application_credential": {"name": unique("cred"), **fields}}
    return cloud.request("POST", _path(user_id), token, json=body)


def login(cloud: Cloud, **credential: Any) -> requests.Response:
    body = {
        "auth": {
            "identity": {
                "methods": ["application_credential"],
                "application_credential": credential,
            }
        }
    }
    return requests.post(f"{cloud.identity_url}/auth/tokens", json=body, timeout=30)


def test_full_cycle(cloud: Cloud, admin: str) -> None:
    member = new_member(cloud, admin)
    token = member.token(cloud)
    resp = create(cloud, token, member.user_id, description="for the CSI plugin")
    assert resp.status_code == 201, resp.text
    cred = resp.json()["application_credential"]
    secret = cred.pop("secret")
    assert len(secret) >= 64
    assert cred["project_id"] == member.project_id
    assert {r["name"] for r in cred["roles"]} == {"member", "reader"}
    assert all(r["domain_id"] is None for r in cred["roles"])
    assert cred["expires_at"] is None and cred["unrestricted"] is False
    assert cred["description"] == "for the CSI plugin"
    assert cred["links"]["self"] == f"{cloud.url}{_path(member.user_id, cred['id'])}"

    # The secret is shown once only.
    shown = cloud.request("GET", _path(member.user_id, cred["id"]), token)
    assert shown.status_code == 200 and shown.json()["application_credential"] == cred
    listed = cloud.request("GET", _path(member.user_id), token).json()
    assert listed["application_credentials"] == [cred]
    by_name = cloud.request("GET", _path(member.user_id), token, params={"name": cred["name"]})
    assert by_name.json()["application_credentials"] == [cred]
    none = cloud.request("GET", _path(member.user_id), token, params={"name": "other"})
    assert none.json()["application_credentials"] == []

    by_id = login(cloud, id=cred["id"], secret=secret)
    assert by_id.status_code == 201, by_id.text
    body = by_id.json()["token"]
    assert body["methods"] == ["application_credential"]
    assert body["project"]["id"] == member.project_id
    assert body["user"]["id"] == member.user_id
    assert body["application_credential"] == {
        "id": cred["id"],
        "name": cred["name"],
        "restricted": True,
    }
    assert {r["name"] for r in body["roles"]} == {"member", "reader"}
    assert body["catalog"]

    by_user_id = login(cloud, name=cred["name"], secret=secret, user={"id": member.user_id})
    assert by_user_id.status_code == 201
    by_user_name = login(
        cloud,
        name=cred["name"],
        secret=secret,
        user={"name": member.user["name"], "domain": {"name": "Default"}},
    )
    assert by_user_name.status_code == 201
    assert login(cloud, id=cred["id"], secret=secret + "x").status_code == 401
    assert login(cloud, name="nope", secret=secret, user={"id": member.user_id}).status_code == 401

    # Deleting the credential ends its tokens at once, on every worker.
    cred_token = by_id.headers["X-Subject-Token"]
    assert cloud.request("DELETE", _path(member.user_id, cred["id"]), token).status_code == 204
    for _ in range(4):
        assert validate(cloud, admin, cred_token).status_code == 404
    assert login(cloud, id=cred["id"], secret=secret).status_code == 401
    assert cloud.request("GET", _path(member.user_id, cred["id"]), token).status_code == 404
    assert cloud.request("DELETE", _path(member.user_id, cred["id"]), token).status_code == 404
    # The user's own password token is untouched.
    assert validate(cloud, admin, token).status_code == 200


def test_roles_are_a_subset_of_the_creators(cloud: Cloud, admin: str) -> None:
    member = new_member(cloud, admin)
    token = member.token(cloud)
    reader = role_id(cloud, admin, "reader")
    by_name = create(cloud, token, member.user_id, roles=[{"name": "reader"}])
    assert by_name.status_code == 201, by_name.text
    cred = by_name.json()["application_credential"]
    assert [r["id"] for r in cred["roles"]] == [reader]
    assert token_roles(login(cloud, id=cred["id"], secret=cred["secret"])) == {"reader"}

    # Asking for member brings the role it implies along.
    by_id = create(cloud, token, member.user_id, roles=[{"id": role_id(cloud, admin, "member")}])
    assert by_id.status_code == 201
    assert {r["name"] for r in by_id.json()["application_credential"]["roles"]} == {
        "member",
        "reader",
    }

    admin_role = role_id(cloud, admin, "admin")
    not_held = create(cloud, token, member.user_id, roles=[{"id": admin_role}])
    assert not_held.status_code == 400
    assert create(cloud, token, member.user_id, roles=[{"name": "admin"}]).status_code == 400
    assert create(cloud, token, member.user_id, roles=[{"name": "no-such"}]).status_code == 404
    assert create(cloud, token, member.user_id, roles=[{"id": "no-such"}]).status_code == 400


def test_roles_granted_after_login_can_be_delegated(cloud: Cloud, admin: str) -> None:
    """As tempest does: grant a role, then create with a token issued before the grant."""
    member = new_member(cloud, admin)
    token = member.token(cloud)
    extra = create_role(cloud, admin)
    grant(cloud, admin, member.project_id, member.user_id, extra["id"])
    resp = create(cloud, token, member.user_id, roles=[{"id": extra["id"]}])
    assert resp.status_code == 201, resp.text
    cred = resp.json()["application_credential"]
    issued = login(cloud, id=cred["id"], secret=cred["secret"])
    assert [r["id"] for r in issued.json()["token"]["roles"]] == [extra["id"]]


def test_restricted_credentials_cannot_manage_credentials(cloud: Cloud, admin: str) -> None:
    member = new_member(cloud, admin)
    token = member.token(cloud)
    restricted = create(cloud, token, member.user_id).json()["application_credential"]
    restricted_token = login(cloud, id=restricted["id"], secret=restricted["secret"]).headers[
        "X-Subject-Token"
    ]
    assert create(cloud, restricted_token, member.user_id).status_code == 403
    path = _path(member.user_id, restricted["id"])
    assert cloud.request("DELETE", path, restricted_token).status_code == 403
    # Reading is allowed.
    assert cloud.request("GET", path, restricted_token).status_code == 200

    unrestricted = create(cloud, token, member.user_id, unrestricted=True)
    cred = unrestricted.json()["application_credential"]
    assert cred["unrestricted"] is True
    issued = login(cloud, id=cred["id"], secret=cred["secret"])
    assert issued.json()["token"]["application_credential"]["restricted"] is False
    child = create(
        cloud, issued.headers["X-Subject-Token"], member.user_id, roles=[{"name": "reader"}]
    )
    assert child.status_code == 201, child.text


def test_expiry(cloud: Cloud, admin: str) -> None:
    member = new_member(cloud, admin)
    token = member.token(cloud)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    past = (now - dt.timedelta(minutes=1)).isoformat()
    assert create(cloud, token, member.user_id, expires_at=past).status_code == 400
    assert create(cloud, token, member.user_id, expires_at="next tuesday").status_code == 400

    # gophercloud sends (and parses) this format: microseconds, no zone.
    later = now + dt.timedelta(hours=1)
    resp = create(cloud, token, member.user_id, expires_at=later.strftime("%Y-%m-%dT%H:%M:%S.%f"))
    assert resp.status_code == 201
    assert resp.json()["application_credential"]["expires_at"] == later.isoformat(
        timespec="microseconds"
    )
    zoned = create(cloud, token, member.user_id, expires_at="2099-01-01T00:00:00Z")
    assert zoned.json()["application_credential"]["expires_at"] == "2099-01-01T00:00:00.000000"
    assert NO_ZONE.match(zoned.json()["application_credential"]["expires_at"])

    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat()
    cred = create(cloud, token, member.user_id, expires_at=soon).json()["application_credential"]
    issued = login(cloud, id=cred["id"], secret=cred["secret"])
    assert issued.status_code == 201
    # The token dies with the credential.
    token_expiry = issued.json()["token"]["expires_at"]
    assert token_expiry[:-1] <= cred["expires_at"]
    time.sleep(2.5)
    assert login(cloud, id=cred["id"], secret=cred["secret"]).status_code == 401
    assert validate(cloud, admin, issued.headers["X-Subject-Token"]).status_code == 404


def test_create_refusals(cloud: Cloud, admin: str) -> None:
    member = new_member(cloud, admin)
    token = member.token(cloud)
    name = unique("cred")
    assert create(cloud, token, member.user_id, name=name).status_code == 201
    dup = create(cloud, token, member.user_id, name=name)
    assert dup.status_code == 409 and dup.json()["error"]["code"] == 409
    for bad in ({}, {"application_credential": {}}, {"application_credential": {"name": ""}}):
        assert cloud.request("POST", _path(member.user_id), token, json=bad).status_code == 400
    rules = [{"service": "compute", "method": "GET", "path": "/v2.1/servers"}]
    assert create(cloud, token, member.user_id, access_rules=rules).status_code == 400

    # Only for oneself: not for another user, not even by an administrator.
    other = new_member(cloud, admin)
    assert create(cloud, token, other.user_id).status_code == 403
    assert create(cloud, admin, member.user_id).status_code == 403

    # An unscoped token has no project to delegate.
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"id": member.user_id, "password": member.password}},
            },
            "scope": "unscoped",
        }
    }
    unscoped = requests.post(f"{cloud.identity_url}/auth/tokens", json=body, timeout=30)
    assert create(cloud, unscoped.headers["X-Subject-Token"], member.user_id).status_code == 400


def test_others_credentials_are_out_of_reach(cloud: Cloud, admin: str) -> None:
    owner: Member = new_member(cloud, admin)
    snoop: Member = new_member(cloud, admin)
    cred = create(cloud, owner.token(cloud), owner.user_id).json()["application_credential"]
    snoop_token = snoop.token(cloud)
    assert cloud.request("GET", _path(owner.user_id), snoop_token).status_code == 403
    assert cloud.request("GET", _path(owner.user_id, cred["id"]), snoop_token).status_code == 403
    # Naming oneself in the path does not help: policy looks at the real owner.
    assert cloud.request("GET", _path(snoop.user_id, cred["id"]), snoop_token).status_code == 403
    assert cloud.request("DELETE", _path(snoop.user_id, cred["id"]), snoop_token).status_code == 403
    assert cloud.request("GET", _path(snoop.user_id, "no-such"), snoop_token).status_code == 404
    # An administrator may look and delete.
    assert cloud.request("GET", _path(owner.user_id), admin).json()["application_credentials"]
    assert cloud.request("DELETE", _path(owner.user_id, cred["id"]), admin).status_code == 204


def test_losing_the_grant_ends_credential_tokens(cloud: Cloud, admin: str) -> None:
    member = new_member(cloud, admin)
    cred = create(cloud, member.token(cloud), member.user_id).json()["application_credential"]
    issued = login(cloud, id=cred["id"], secret=cred["secret"])
    assert issued.status_code == 201
    member_role = role_id(cloud, admin, "member")
    path = f"{V3}/projects/{member.project_id}/users/{member.user_id}/roles/{member_role}"
    assert cloud.request("DELETE", path, admin).status_code == 204
    assert validate(cloud, admin, issued.headers["X-Subject-Token"]).status_code == 404
    assert login(cloud, id=cred["id"], secret=cred["secret"]).status_code == 401
    # Given a narrower role back, the credential is narrowed to it.
    grant(cloud, admin, member.project_id, member.user_id, role_id(cloud, admin, "reader"))
    assert token_roles(login(cloud, id=cred["id"], secret=cred["secret"])) == {"reader"}


def test_deleting_a_role_deletes_credentials_built_on_it(cloud: Cloud, admin: str) -> None:
    member = new_member(cloud, admin)
    extra = create_role(cloud, admin)
    grant(cloud, admin, member.project_id, member.user_id, extra["id"])
    token = member.token(cloud)
    cred = create(cloud, token, member.user_id).json()["application_credential"]
    assert cloud.request("DELETE", f"{V3}/roles/{extra['id']}", admin).status_code == 204
    assert login(cloud, id=cred["id"], secret=cred["secret"]).status_code == 401
    token = member.token(cloud)
    assert (
        cloud.request("GET", _path(member.user_id), token).json()["application_credentials"] == []
    )
