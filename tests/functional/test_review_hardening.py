"""Bad input and probing over real HTTP: JSON errors, never a 500 or a forged log line.

The session's `cloud` fixture fails the run if the server logged a traceback,
so each test here also proves the input was refused without one.
"""

from __future__ import annotations

import uuid

import pytest

from tests.support.cloud import Cloud

IDENTITY = "/identity/v3"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def admin(cloud: Cloud) -> str:
    return cloud.token()


def _member(cloud: Cloud, admin: str) -> tuple[str, str, str]:
    """A fresh user with the member role on a fresh project: (user id, name, password)."""
    suffix = uuid.uuid4().hex[:8]
    project = cloud.request(
        "POST", f"{IDENTITY}/projects", admin, json={"project": {"name": f"rv-{suffix}"}}
    ).json()["project"]
    user = cloud.request(
        "POST",
        f"{IDENTITY}/users",
        admin,
        json={"user": {"name": f"rv-{suffix}", "password": "rv-secret"}},
    ).json()["user"]
    roles = cloud.request("GET", f"{IDENTITY}/roles?name=member", admin).json()["roles"]
    grant = f"{IDENTITY}/projects/{project['id']}/users/{user['id']}/roles/{roles[0]['id']}"
    assert cloud.request("PUT", grant, admin).status_code == 204
    return user["id"], user["name"], project["name"]


@pytest.mark.parametrize(
    "path", [f"{IDENTITY}/users", f"{IDENTITY}/auth/tokens", "/image/v2/images"]
)
def test_deeply_nested_json_is_a_bad_request(cloud: Cloud, admin: str, path: str) -> None:
    body = "[" * 100_000 + "]" * 100_000
    resp = cloud.request("POST", path, admin, data=body, headers=JSON)
    assert resp.status_code == 400, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")


def test_oversized_json_body_is_refused_before_it_is_read(cloud: Cloud, admin: str) -> None:
    body = '{"user": {"name": "big", "description": "' + "x" * (2 << 20) + '"}}'
    resp = cloud.request("POST", f"{IDENTITY}/users", admin, data=body, headers=JSON)
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == 413


@pytest.mark.parametrize("collection", ["users", "projects", "domains"])
def test_repeated_boolean_filter_uses_the_last_value(
    cloud: Cloud, admin: str, collection: str
) -> None:
    resp = cloud.request("GET", f"{IDENTITY}/{collection}?enabled=0&enabled=1", admin)
    assert resp.status_code == 200, resp.text
    assert resp.json()[collection], "enabled=1 (the last value) lists the enabled ones"


def test_access_log_cannot_be_forged_with_a_newline(cloud: Cloud, admin: str) -> None:
    marker = f"FORGED-{uuid.uuid4().hex}"
    resp = cloud.request("GET", f"{IDENTITY}/users/x%0A{marker}%20INFO%20fake", admin)
    assert resp.status_code == 404
    lines = [line for line in cloud.log_path.read_text().splitlines() if marker in line]
    assert lines and all(line.split(" ", 3)[2] == "INFO" for line in lines)
    assert all("path=/identity/v3/users/x%0A" + marker in line for line in lines)


@pytest.mark.parametrize(
    "query",
    [
        "size_min=99999999999999999999999999",
        "min_ram=-99999999999999999999999",
        "created_at=gte:0001-01-01T00:00:00%2B01:00",
        "updated_at=lt:9999-12-31T23:59:59-01:00",
    ],
)
def test_image_filters_out_of_range_are_bad_requests(cloud: Cloud, admin: str, query: str) -> None:
    resp = cloud.request("GET", f"/image/v2/images?{query}", admin)
    assert resp.status_code == 400, resp.text


@pytest.mark.parametrize("expires_at", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_app_cred_expiry_out_of_range_is_a_bad_request(
    cloud: Cloud, admin: str, expires_at: str
) -> None:
    me = cloud.request(
        "GET", f"{IDENTITY}/auth/tokens", admin, headers={"X-Subject-Token": admin}
    ).json()["token"]["user"]["id"]
    resp = cloud.request(
        "POST",
        f"{IDENTITY}/users/{me}/application_credentials",
        admin,
        json={
            "application_credential": {"name": f"rv-{uuid.uuid4().hex}", "expires_at": expires_at}
        },
    )
    assert resp.status_code == 400, resp.text


def test_endpoint_with_an_empty_legacy_region(cloud: Cloud, admin: str) -> None:
    service = cloud.request("GET", f"{IDENTITY}/services", admin).json()["services"][0]
    body = {"service_id": service["id"], "interface": "public", "url": "http://rv", "region": ""}
    created = cloud.request("POST", f"{IDENTITY}/endpoints", admin, json={"endpoint": body})
    assert created.status_code == 201, created.text
    endpoint = created.json()["endpoint"]
    assert endpoint["region_id"] is None
    item = f"{IDENTITY}/endpoints/{endpoint['id']}"
    patched = cloud.request("PATCH", item, admin, json={"endpoint": {"region": ""}})
    assert patched.status_code == 200 and patched.json()["endpoint"]["region_id"] is None
    assert cloud.request("DELETE", item, admin).status_code == 204


@pytest.mark.parametrize(
    "path",
    [
        "/identity",
        IDENTITY,
        f"{IDENTITY}/users",
        f"{IDENTITY}/projects",
        f"{IDENTITY}/auth/catalog",
        f"{IDENTITY}/auth/projects",
        f"{IDENTITY}/roles",
    ],
)
def test_identity_answers_head_wherever_it_answers_get(cloud: Cloud, admin: str, path: str) -> None:
    get = cloud.request("GET", path, admin)
    head = cloud.request("HEAD", path, admin)
    assert head.status_code == get.status_code and head.content == b""
    assert cloud.request("HEAD", f"{IDENTITY}/users", None).status_code == 401


def test_microversion_with_thousands_of_digits_is_a_bad_request(cloud: Cloud, admin: str) -> None:
    header = {"OpenStack-API-Version": "compute 2." + "1" * 5000}
    resp = cloud.request("GET", "/compute/v2.1/flavors", admin, headers=header)
    assert resp.status_code == 400, resp.text


def test_scope_refusal_does_not_tell_which_projects_exist(cloud: Cloud, admin: str) -> None:
    _, name, _ = _member(cloud, admin)
    answers = [
        cloud.auth(user=name, password="rv-secret", project=project).json()
        for project in ("admin", f"no-such-{uuid.uuid4().hex}")
    ]
    assert answers[0]["error"]["code"] == 401
    assert answers[0] == answers[1]


def test_image_min_ram_beyond_32_bits_is_a_bad_request(cloud: Cloud, admin: str) -> None:
    created = cloud.request("POST", "/image/v2/images", admin, json={"min_ram": 2**31})
    assert created.status_code == 400, created.text
    image = cloud.request("POST", "/image/v2/images", admin, json={"name": "rv"}).json()
    patch = [{"op": "replace", "path": "/min_disk", "value": 10**30}]
    resp = cloud.request(
        "PATCH",
        f"/image/v2/images/{image['id']}",
        admin,
        json=patch,
        headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
    )
    assert resp.status_code == 400, resp.text


def test_image_null_kernel_id_leaves_the_property_unset(cloud: Cloud, admin: str) -> None:
    created = cloud.request("POST", "/image/v2/images", admin, json={"kernel_id": None})
    assert created.status_code == 201, created.text
    assert "kernel_id" not in created.json()
    kernel = "0b5f5d7e-3a4c-4d0e-9f3a-2f1c7b9e8d6a"
    path = f"/image/v2/images/{created.json()['id']}"
    headers = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
    for value, present in ((kernel, True), (None, False)):
        patch = [{"op": "add", "path": "/kernel_id", "value": value}]
        resp = cloud.request("PATCH", path, admin, json=patch, headers=headers)
        assert resp.status_code == 200, resp.text
        assert ("kernel_id" in resp.json()) is present
