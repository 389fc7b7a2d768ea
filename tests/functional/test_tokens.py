"""Token issue, validation and revocation over real HTTP."""

from __future__ import annotations

import re

import requests

from tests.support.cloud import Cloud

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_version_documents(cloud: Cloud) -> None:
    root = requests.get(f"{cloud.url}/identity/", timeout=10)
    assert root.status_code == 300
    [v3] = root.json()["versions"]["values"]
    assert v3["status"] == "stable" and v3["id"].startswith("v3.")
    assert v3["links"][0]["href"] == f"{cloud.url}/identity/v3/"
    one = requests.get(f"{cloud.url}/identity/v3", timeout=10)
    assert one.status_code == 200 and one.json()["version"]["id"] == v3["id"]


def test_password_token_project_scoped(cloud: Cloud) -> None:
    resp = cloud.auth()
    assert resp.status_code == 201
    token = resp.json()["token"]
    assert resp.headers["X-Subject-Token"]
    assert ISO_Z.match(token["expires_at"]) and ISO_Z.match(token["issued_at"])
    assert token["project"]["name"] == "admin"
    assert token["project"]["domain"] == {"id": "default", "name": "Default"}
    assert {r["name"] for r in token["roles"]} == {"admin", "manager", "member", "reader"}
    [identity] = [s for s in token["catalog"] if s["type"] == "identity"]
    assert {e["interface"] for e in identity["endpoints"]} == {"public", "internal", "admin"}
    assert all(e["region_id"] == "RegionOne" for e in identity["endpoints"])


def test_access_line_names_the_user_given_a_token(cloud: Cloud) -> None:
    resp = cloud.auth()
    assert resp.status_code == 201
    token = resp.json()["token"]
    request_id = resp.headers["x-openstack-request-id"]
    [line] = [x for x in cloud.log_path.read_text().splitlines() if request_id in x]
    assert "ciaostack.access" in line and "status=201" in line
    assert f"user={token['user']['id']} project={token['project']['id']} " in line
    assert resp.headers["X-Subject-Token"] not in line
    failed = cloud.auth(password="not-the-password")
    [line] = [
        x
        for x in cloud.log_path.read_text().splitlines()
        if failed.headers["x-openstack-request-id"] in x
    ]
    assert "status=401 user=- project=-" in line and "not-the-password" not in line


def test_wrong_password_and_unknown_user_look_the_same(cloud: Cloud) -> None:
    wrong = cloud.auth(password="not-the-password")
    unknown = cloud.auth(user="nobody-at-all")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == 401


def test_validate_and_revoke(cloud: Cloud) -> None:
    admin = cloud.token()
    subject = cloud.token()
    path = "/identity/v3/auth/tokens"
    ok = cloud.request("GET", path, admin, headers={"X-Subject-Token": subject})
    assert ok.status_code == 200 and ok.headers["X-Subject-Token"] == subject
    assert (
        cloud.request("HEAD", path, admin, headers={"X-Subject-Token": subject}).status_code == 200
    )
    assert (
        cloud.request("DELETE", path, admin, headers={"X-Subject-Token": subject}).status_code
        == 204
    )
    # Every worker must see the revocation at once, so ask several times.
    for _ in range(6):
        gone = cloud.request("GET", path, admin, headers={"X-Subject-Token": subject})
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == 404
    # A revoked token is refused as a caller's token too.
    assert cloud.request("GET", "/identity/v3/auth/catalog", subject).status_code == 401


def test_no_scope_means_default_project(cloud: Cloud) -> None:
    resp = cloud.auth(project=None)
    assert resp.status_code == 201
    assert resp.json()["token"]["project"]["name"] == "admin"


def test_rescope_with_token_method(cloud: Cloud) -> None:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": "admin",
                        "domain": {"id": "default"},
                        "password": cloud.admin_password,
                    }
                },
            },
            "scope": "unscoped",
        }
    }
    unscoped = requests.post(f"{cloud.identity_url}/auth/tokens", json=body, timeout=10)
    assert unscoped.status_code == 201
    assert "project" not in unscoped.json()["token"]
    assert "catalog" not in unscoped.json()["token"]
    body = {
        "auth": {
            "identity": {
                "methods": ["token"],
                "token": {"id": unscoped.headers["X-Subject-Token"]},
            },
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}},
        }
    }
    resp = requests.post(f"{cloud.identity_url}/auth/tokens", json=body, timeout=10)
    assert resp.status_code == 201, resp.text
    token = resp.json()["token"]
    assert token["project"]["name"] == "admin"
    assert token["expires_at"] == unscoped.json()["token"]["expires_at"]
    assert token["audit_ids"][1] == unscoped.json()["token"]["audit_ids"][0]


def test_garbled_tokens_are_401(cloud: Cloud) -> None:
    for bad in ("garbage", "gAAAAA" + "x" * 100, "é"):
        resp = cloud.request(
            "GET", "/identity/v3/auth/catalog", bad.encode("utf-8").decode("latin-1")
        )
        assert resp.status_code == 401
        assert resp.headers["WWW-Authenticate"].startswith("Keystone uri=")


def test_malformed_bodies_are_400(cloud: Cloud) -> None:
    url = f"{cloud.identity_url}/auth/tokens"
    not_json = requests.post(
        url, data="{nope", headers={"Content-Type": "application/json"}, timeout=10
    )
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == 400
    wrong_type = requests.post(
        url, json={"auth": {"identity": {"methods": "password"}}}, timeout=10
    )
    assert wrong_type.status_code == 400
    missing = requests.post(url, json={"auth": {}}, timeout=10)
    assert missing.status_code == 400


def test_unknown_path_is_json_404(cloud: Cloud) -> None:
    resp = requests.get(f"{cloud.url}/identity/v3/no-such-thing", timeout=10)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == 404
    assert resp.headers["x-openstack-request-id"].startswith("req-")
