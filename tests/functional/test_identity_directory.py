"""Keystone v3 domains, projects, users, regions, services and endpoints over real HTTP."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from ciaostack.core.db.models import ApplicationCredential, RoleAssignment
from ciaostack.core.db.session import Database
from tests.support.cloud import Cloud

# A request goes to either of the server's workers: ask a few times so that
# each worker is seen to agree.
TRIES = 6


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def call(
    cloud: Cloud, method: str, path: str, token: str | None, body: Any = None
) -> requests.Response:
    kwargs: dict[str, Any] = {} if body is None else {"json": body}
    return cloud.request(method, f"/identity/v3{path}", token, **kwargs)


def ok(resp: requests.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json() if resp.content else None


def error(resp: requests.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()["error"]
    assert body["code"] == status and body["title"] and body["message"]
    return body


@pytest.fixture(scope="module")
def admin(cloud: Cloud) -> str:
    return cloud.token()


@pytest.fixture(scope="module")
def db(cloud: Cloud):  # noqa: ANN201 - a Database
    database = Database(cloud.env["CIAOSTACK_DATABASE__URL"])
    yield database
    database.dispose()


def grant_member(cloud: Cloud, admin: str, user_id: str, project_id: str) -> None:
    [role] = ok(call(cloud, "GET", "/roles?name=member", admin))["roles"]
    ok(call(cloud, "PUT", f"/projects/{project_id}/users/{user_id}/roles/{role['id']}", admin), 204)


def make_project(cloud: Cloud, admin: str, **fields: Any) -> dict[str, Any]:
    body = {"name": unique("project"), **fields}
    return ok(call(cloud, "POST", "/projects", admin, {"project": body}), 201)["project"]


def make_user(cloud: Cloud, admin: str, **fields: Any) -> dict[str, Any]:
    body = {"name": unique("user"), **fields}
    return ok(call(cloud, "POST", "/users", admin, {"user": body}), 201)["user"]


def member_token(cloud: Cloud, admin: str) -> tuple[dict[str, Any], dict[str, Any], str, str]:
    """A new user with a password and the member role on a new project; and its token."""
    project = make_project(cloud, admin)
    password = uuid.uuid4().hex
    user = make_user(cloud, admin, password=password, default_project_id=project["id"])
    grant_member(cloud, admin, user["id"], project["id"])
    token = cloud.token(user["name"], password, project["name"])
    return user, project, password, token


def assert_rejected(cloud: Cloud, token: str) -> None:
    for _ in range(TRIES):
        assert call(cloud, "GET", "/auth/catalog", token).status_code == 401


# -- domains ----------------------------------------------------------------------


def test_default_domain_exists(cloud: Cloud, admin: str) -> None:
    domain = ok(call(cloud, "GET", "/domains/default", admin))["domain"]
    assert domain["name"] == "Default" and domain["enabled"] is True
    assert domain["links"]["self"] == f"{cloud.identity_url}/domains/default"
    listed = ok(call(cloud, "GET", "/domains?name=Default", admin))
    assert [d["id"] for d in listed["domains"]] == ["default"]
    assert listed["links"] == {
        "self": f"{cloud.identity_url}/domains",
        "previous": None,
        "next": None,
    }


def test_domain_lifecycle(cloud: Cloud, admin: str) -> None:
    name = unique("domain")
    created = ok(
        call(
            cloud,
            "POST",
            "/domains",
            admin,
            {"domain": {"name": name, "description": "first", "tags": ["a"], "colour": "red"}},
        ),
        201,
    )["domain"]
    assert created["name"] == name and created["description"] == "first"
    assert created["enabled"] is True and created["tags"] == ["a"] and created["colour"] == "red"
    domain_id = created["id"]
    assert ok(call(cloud, "GET", f"/domains/{domain_id}", admin))["domain"] == created
    error(call(cloud, "POST", "/domains", admin, {"domain": {"name": name}}), 409)

    updated = ok(
        call(
            cloud,
            "PATCH",
            f"/domains/{domain_id}",
            admin,
            {"domain": {"name": name + "-2", "description": "second"}},
        )
    )["domain"]
    assert updated["name"] == name + "-2" and updated["description"] == "second"
    assert updated["colour"] == "red"

    enabled = ok(call(cloud, "GET", f"/domains?enabled=true&name={name}-2", admin))["domains"]
    assert [d["id"] for d in enabled] == [domain_id]
    # An enabled domain cannot be deleted.
    error(call(cloud, "DELETE", f"/domains/{domain_id}", admin), 403)
    ok(call(cloud, "PATCH", f"/domains/{domain_id}", admin, {"domain": {"enabled": False}}))
    disabled = ok(call(cloud, "GET", "/domains?enabled=false", admin))["domains"]
    assert domain_id in [d["id"] for d in disabled]
    ok(call(cloud, "DELETE", f"/domains/{domain_id}", admin), 204)
    error(call(cloud, "GET", f"/domains/{domain_id}", admin), 404)
    error(call(cloud, "DELETE", f"/domains/{domain_id}", admin), 404)


@pytest.mark.parametrize(
    "body",
    [
        {"domain": {"name": ""}},
        {"domain": {"name": "x" * 65}},
        {"domain": {"name": "ok", "enabled": "yes"}},
        {"domain": {"description": "no name"}},
        {"domian": {"name": "typo"}},
        [],
    ],
)
def test_domain_bad_bodies(cloud: Cloud, admin: str, body: Any) -> None:
    error(call(cloud, "POST", "/domains", admin, body), 400)


def test_domain_delete_takes_its_contents(cloud: Cloud, admin: str, db: Database) -> None:
    domain = ok(call(cloud, "POST", "/domains", admin, {"domain": {"name": unique("d")}}), 201)
    domain_id = domain["domain"]["id"]
    parent = make_project(cloud, admin, domain_id=domain_id)
    child = make_project(cloud, admin, domain_id=domain_id, parent_id=parent["id"])
    user = make_user(cloud, admin, domain_id=domain_id, password="pw-12345")
    grant_member(cloud, admin, user["id"], child["id"])
    token = cloud.token(user["name"], "pw-12345", child["name"], domain=domain_id)

    ok(call(cloud, "PATCH", f"/domains/{domain_id}", admin, {"domain": {"enabled": False}}))
    assert_rejected(cloud, token)  # disabling the domain ends its tokens
    ok(call(cloud, "DELETE", f"/domains/{domain_id}", admin), 204)
    for path in (f"/projects/{parent['id']}", f"/projects/{child['id']}", f"/users/{user['id']}"):
        error(call(cloud, "GET", path, admin), 404)
    with db.session(readonly=True) as session:
        left = session.scalar(
            select(func.count())
            .select_from(RoleAssignment)
            .where(RoleAssignment.user_id == user["id"])
        )
    assert left == 0


# -- projects ---------------------------------------------------------------------


def test_project_lifecycle(cloud: Cloud, admin: str) -> None:
    parent = make_project(cloud, admin, description="top", tags=["blue", "green"], cost="42")
    assert parent["domain_id"] == "default" and parent["parent_id"] == "default"
    assert parent["is_domain"] is False and parent["enabled"] is True
    assert parent["tags"] == ["blue", "green"] and parent["cost"] == "42"
    assert parent["links"]["self"] == f"{cloud.identity_url}/projects/{parent['id']}"
    shown = ok(call(cloud, "GET", f"/projects/{parent['id']}", admin))["project"]
    listed = ok(call(cloud, "GET", "/projects", admin))["projects"]
    assert shown == parent == next(p for p in listed if p["id"] == parent["id"])

    child = make_project(cloud, admin, parent_id=parent["id"])
    assert child["parent_id"] == parent["id"] and child["domain_id"] == "default"
    error(call(cloud, "POST", "/projects", admin, {"project": {"name": child["name"]}}), 409)

    def names(query: str) -> list[str]:
        return [p["name"] for p in ok(call(cloud, "GET", f"/projects?{query}", admin))["projects"]]

    assert names(f"parent_id={parent['id']}") == [child["name"]]
    assert names(f"name={parent['name']}") == [parent["name"]]
    assert parent["name"] in names("domain_id=default&parent_id=default")
    assert child["name"] not in names("parent_id=default")
    assert names("tags=blue,green&enabled=true") == [parent["name"]]
    assert parent["name"] not in names("not-tags-any=green")
    assert "admin" in names("is_domain=false")
    assert names("domain_id=nowhere") == []

    renamed = ok(
        call(
            cloud,
            "PATCH",
            f"/projects/{parent['id']}",
            admin,
            {"project": {"name": parent["name"] + "-2", "description": None, "tags": ["red"]}},
        )
    )["project"]
    assert renamed["name"] == parent["name"] + "-2" and renamed["description"] == ""
    assert renamed["tags"] == ["red"] and renamed["cost"] == "42"
    # The subtree must be disabled first, and a non-leaf stays.
    path = f"/projects/{parent['id']}"
    error(call(cloud, "PATCH", path, admin, {"project": {"enabled": False}}), 403)
    error(call(cloud, "DELETE", path, admin), 403)
    error(call(cloud, "PATCH", path, admin, {"project": {"domain_id": "elsewhere"}}), 400)
    ok(call(cloud, "DELETE", f"/projects/{child['id']}", admin), 204)
    ok(call(cloud, "PATCH", path, admin, {"project": {"enabled": False}}))
    # Nothing new below a disabled project.
    body = {"project": {"name": unique("p"), "parent_id": parent["id"]}}
    error(call(cloud, "POST", "/projects", admin, body), 400)
    ok(call(cloud, "DELETE", path, admin), 204)
    error(call(cloud, "GET", path, admin), 404)
    error(call(cloud, "DELETE", path, admin), 404)


def test_project_depth_is_limited(cloud: Cloud, admin: str) -> None:
    """Five levels of projects below the domain, Keystone's default."""
    parent = make_project(cloud, admin)
    for _ in range(4):
        parent = make_project(cloud, admin, parent_id=parent["id"])
    body = {"project": {"name": unique("deep"), "parent_id": parent["id"]}}
    error(call(cloud, "POST", "/projects", admin, body), 403)


@pytest.mark.parametrize(
    "body",
    [
        {"project": {"name": ""}},
        {"project": {"name": "x" * 65}},
        {"project": {"name": "p", "enabled": "False"}},
        {"project": {"name": "p", "tags": ["a/b"]}},
        {"project": {"name": "p", "domain_id": "no-such-domain"}},
        {"project": {"name": "p", "parent_id": "no-such-project"}},
        {"project": {"name": "p", "options": {"immutable": True}}},
    ],
)
def test_project_bad_bodies(cloud: Cloud, admin: str, body: Any) -> None:
    error(call(cloud, "POST", "/projects", admin, body), 400)


def test_project_tags_api(cloud: Cloud, admin: str) -> None:
    project = make_project(cloud, admin)
    tags = f"/projects/{project['id']}/tags"
    assert ok(call(cloud, "PUT", tags, admin, {"tags": ["x", "y"]}))["tags"] == ["x", "y"]
    ok(call(cloud, "PUT", f"{tags}/z", admin), 201)
    assert ok(call(cloud, "GET", tags, admin))["tags"] == ["x", "y", "z"]
    ok(call(cloud, "GET", f"{tags}/y", admin), 204)
    ok(call(cloud, "DELETE", f"{tags}/y", admin), 204)
    error(call(cloud, "GET", f"{tags}/y", admin), 404)
    ok(call(cloud, "DELETE", tags, admin), 204)
    assert ok(call(cloud, "GET", tags, admin))["tags"] == []


def test_project_acting_as_domain(cloud: Cloud, admin: str) -> None:
    body = {"project": {"name": unique("pd"), "is_domain": True}}
    project = ok(call(cloud, "POST", "/projects", admin, body), 201)["project"]
    assert project["is_domain"] is True and project["domain_id"] is None
    listed = ok(call(cloud, "GET", "/projects?is_domain=true", admin))["projects"]
    assert project["id"] in [p["id"] for p in listed]
    domains = ok(call(cloud, "GET", "/domains", admin))["domains"]
    assert project["id"] in [d["id"] for d in domains]
    path = f"/projects/{project['id']}"
    error(call(cloud, "DELETE", path, admin), 400)
    ok(call(cloud, "PATCH", path, admin, {"project": {"enabled": False}}))
    ok(call(cloud, "DELETE", path, admin), 204)
    error(call(cloud, "GET", f"/domains/{project['id']}", admin), 404)


# -- users ------------------------------------------------------------------------


def test_user_lifecycle(cloud: Cloud, admin: str) -> None:
    project = make_project(cloud, admin)
    user = make_user(
        cloud,
        admin,
        password="secret-1",
        description="tester",
        email="t@example.org",
        default_project_id=project["id"],
    )
    assert "password" not in user and user["email"] == "t@example.org"
    assert user["domain_id"] == "default" and user["enabled"] is True
    assert user["default_project_id"] == project["id"] and user["description"] == "tester"
    assert user["password_expires_at"] is None
    assert user["links"]["self"] == f"{cloud.identity_url}/users/{user['id']}"
    assert ok(call(cloud, "GET", f"/users/{user['id']}", admin))["user"] == user
    error(call(cloud, "POST", "/users", admin, {"user": {"name": user["name"]}}), 409)

    def names(query: str) -> list[str]:
        return [u["name"] for u in ok(call(cloud, "GET", f"/users?{query}", admin))["users"]]

    assert names(f"name={user['name']}") == [user["name"]]
    assert "admin" in names("domain_id=default&enabled=true")
    assert user["name"] not in names("enabled=false")

    updated = ok(
        call(
            cloud,
            "PATCH",
            f"/users/{user['id']}",
            admin,
            {"user": {"email": "u@example.org", "enabled": False, "project_id": project["id"]}},
        )
    )["user"]
    assert updated["email"] == "u@example.org" and updated["enabled"] is False
    assert updated["project_id"] == project["id"] and updated["description"] == "tester"
    assert user["name"] in names("enabled=false")
    error(cloud.auth(user["name"], "secret-1", None), 401)
    path = f"/users/{user['id']}"
    error(call(cloud, "PATCH", path, admin, {"user": {"domain_id": "other"}}), 400)
    error(call(cloud, "PATCH", path, admin, {"user": {"id": "other"}}), 400)
    ok(call(cloud, "DELETE", path, admin), 204)
    error(call(cloud, "GET", path, admin), 404)
    error(call(cloud, "DELETE", path, admin), 404)


def test_user_names_are_unique_per_domain(cloud: Cloud, admin: str) -> None:
    domain = ok(call(cloud, "POST", "/domains", admin, {"domain": {"name": unique("d")}}), 201)
    user = make_user(cloud, admin)
    twin = make_user(cloud, admin, name=user["name"], domain_id=domain["domain"]["id"])
    assert twin["domain_id"] == domain["domain"]["id"] and twin["id"] != user["id"]
    found = ok(call(cloud, "GET", f"/users?name={user['name']}", admin))["users"]
    assert {u["id"] for u in found} == {user["id"], twin["id"]}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"user": {"name": ""}}, 400),
        ({"user": {"name": "u", "enabled": 1}}, 400),
        ({"user": {"name": "u", "password": 12345}}, 400),
        ({"user": {"name": "u", "default_project_id": "default"}}, 400),
        ({"user": {}}, 400),
        ({"user": {"name": "u", "domain_id": "no-such-domain"}}, 404),
    ],
)
def test_user_bad_bodies(cloud: Cloud, admin: str, body: Any, status: int) -> None:
    error(call(cloud, "POST", "/users", admin, body), status)


def test_unknown_ids_are_404(cloud: Cloud, admin: str) -> None:
    for kind in ("domains", "projects", "users", "regions", "services", "endpoints"):
        body = error(call(cloud, "GET", f"/{kind}/no-such-thing", admin), 404)
        assert "no-such-thing" in body["message"]
    error(call(cloud, "PATCH", "/users/nobody", admin, {"user": {"enabled": False}}), 404)
    error(call(cloud, "GET", "/users/nobody/projects", admin), 404)


# -- a member's view -------------------------------------------------------------------


def test_member_sees_only_itself(cloud: Cloud, admin: str) -> None:
    user, project, _, token = member_token(cloud, admin)
    me = ok(call(cloud, "GET", f"/users/{user['id']}", token))["user"]
    assert me["id"] == user["id"] and "password" not in me
    assert (
        ok(call(cloud, "GET", f"/projects/{project['id']}", token))["project"]["id"]
        == (project["id"])
    )
    mine = ok(call(cloud, "GET", f"/users/{user['id']}/projects", token))["projects"]
    assert [p["id"] for p in mine] == [project["id"]]
    assert mine[0]["links"]["self"].endswith(f"/projects/{project['id']}")

    other = make_user(cloud, admin)
    admin_project = ok(call(cloud, "GET", "/projects?name=admin", admin))["projects"][0]
    for method, path, body in [
        ("GET", "/users", None),
        ("GET", "/projects", None),
        ("GET", "/domains", None),
        ("GET", f"/users/{other['id']}", None),
        ("GET", "/users/no-such-user", None),
        ("GET", f"/users/{other['id']}/projects", None),
        ("GET", f"/projects/{admin_project['id']}", None),
        ("POST", "/users", {"user": {"name": unique("u")}}),
        ("POST", "/projects", {"project": {"name": unique("p")}}),
        ("PATCH", f"/users/{user['id']}", {"user": {"enabled": True}}),
        ("DELETE", f"/projects/{project['id']}", None),
        ("GET", "/services", None),
        ("POST", "/regions", {"region": {}}),
    ]:
        assert call(cloud, method, path, token, body).status_code == 403, (method, path)
    # Regions are public knowledge, and a member may read its own project's domain.
    ok(call(cloud, "GET", "/regions", token))
    assert (
        ok(call(cloud, "GET", f"/domains/{project['domain_id']}", token))["domain"]["id"]
        == (project["domain_id"])
    )


def test_password_change_ends_old_tokens(cloud: Cloud, admin: str) -> None:
    user, project, password, token = member_token(cloud, admin)
    path = f"/users/{user['id']}/password"
    wrong = {"user": {"original_password": "not-it", "password": "new-password-1"}}
    error(call(cloud, "POST", path, token, wrong), 401)
    error(call(cloud, "POST", path, token, {"user": {"password": "x"}}), 400)
    right = {"user": {"original_password": password, "password": "new-password-1"}}
    ok(call(cloud, "POST", path, token, right), 204)

    assert_rejected(cloud, token)
    for _ in range(TRIES):
        check = cloud.request(
            "GET", "/identity/v3/auth/tokens", admin, headers={"X-Subject-Token": token}
        )
        assert check.status_code == 404
    error(cloud.auth(user["name"], password, project["name"]), 401)
    fresh = cloud.token(user["name"], "new-password-1", project["name"])
    for _ in range(TRIES):
        ok(call(cloud, "GET", f"/users/{user['id']}", fresh))
    # Without a token, the original password alone is the proof (as in Keystone).
    again = {"user": {"original_password": "new-password-1", "password": "new-password-2"}}
    ok(call(cloud, "POST", path, None, again), 204)
    error(call(cloud, "POST", path, None, again), 401)
    cloud.token(user["name"], "new-password-2", project["name"])


def test_admin_reset_and_disable_end_tokens(cloud: Cloud, admin: str) -> None:
    user, project, _, token = member_token(cloud, admin)
    path = f"/users/{user['id']}"
    ok(call(cloud, "PATCH", path, admin, {"user": {"password": "reset-by-admin"}}))
    assert_rejected(cloud, token)
    token = cloud.token(user["name"], "reset-by-admin", project["name"])
    ok(call(cloud, "PATCH", path, admin, {"user": {"description": "no effect on tokens"}}))
    ok(call(cloud, "GET", path, token))
    ok(call(cloud, "PATCH", path, admin, {"user": {"enabled": False}}))
    assert_rejected(cloud, token)
    error(cloud.auth(user["name"], "reset-by-admin", project["name"]), 401)


def test_deleted_user_leaves_nothing_behind(cloud: Cloud, admin: str, db: Database) -> None:
    user, _, _, token = member_token(cloud, admin)
    ok(call(cloud, "DELETE", f"/users/{user['id']}", admin), 204)
    assert_rejected(cloud, token)
    with db.session(readonly=True) as session:
        for model in (RoleAssignment, ApplicationCredential):
            count = session.scalar(
                select(func.count()).select_from(model).where(model.user_id == user["id"])
            )
            assert count == 0


def test_project_disable_and_delete_end_its_tokens(cloud: Cloud, admin: str, db: Database) -> None:
    user, project, password, token = member_token(cloud, admin)
    path = f"/projects/{project['id']}"
    ok(call(cloud, "PATCH", path, admin, {"project": {"enabled": False}}))
    assert_rejected(cloud, token)
    ok(call(cloud, "PATCH", path, admin, {"project": {"enabled": True}}))
    token = cloud.token(user["name"], password, project["name"])
    ok(call(cloud, "DELETE", path, admin), 204)
    assert_rejected(cloud, token)
    with db.session(readonly=True) as session:
        count = session.scalar(
            select(func.count())
            .select_from(RoleAssignment)
            .where(RoleAssignment.target_id == project["id"])
        )
    assert count == 0
    # The deleted project is no longer anybody's default.
    assert "default_project_id" not in ok(call(cloud, "GET", f"/users/{user['id']}", admin))["user"]


# -- regions, services, endpoints ----------------------------------------------------


def test_regions(cloud: Cloud, admin: str) -> None:
    generated = ok(call(cloud, "POST", "/regions", admin, {"region": {"description": "g"}}), 201)
    generated = generated["region"]
    assert generated["id"] and generated["parent_region_id"] is None
    named = unique("Region")
    posted = ok(
        call(
            cloud,
            "POST",
            "/regions",
            admin,
            {"region": {"id": named, "parent_region_id": generated["id"], "zone": "z1"}},
        ),
        201,
    )["region"]
    assert posted["id"] == named and posted["description"] == "" and posted["zone"] == "z1"
    put_id = unique("Region")
    put = ok(call(cloud, "PUT", f"/regions/{put_id}", admin, {"region": {}}), 201)["region"]
    assert put["id"] == put_id
    error(call(cloud, "PUT", f"/regions/{put_id}", admin, {"region": {}}), 409)
    error(call(cloud, "PUT", f"/regions/{put_id}", admin, {"region": {"id": "other"}}), 400)
    error(call(cloud, "POST", "/regions", admin, {"region": {"id": named}}), 409)
    error(call(cloud, "POST", "/regions", admin, {"region": {"parent_region_id": "nowhere"}}), 404)

    children = ok(call(cloud, "GET", f"/regions?parent_region_id={generated['id']}", admin))
    assert children["regions"] == [posted]
    assert ok(call(cloud, "GET", f"/regions/{named}", admin))["region"] == posted
    cycle = {"region": {"parent_region_id": named}}
    error(call(cloud, "PATCH", f"/regions/{generated['id']}", admin, cycle), 400)
    moved = ok(
        call(cloud, "PATCH", f"/regions/{named}", admin, {"region": {"parent_region_id": put_id}})
    )["region"]
    assert moved["parent_region_id"] == put_id and moved["zone"] == "z1"
    # Deleting a region deletes the regions below it.
    ok(call(cloud, "DELETE", f"/regions/{put_id}", admin), 204)
    error(call(cloud, "GET", f"/regions/{named}", admin), 404)
    ok(call(cloud, "DELETE", f"/regions/{generated['id']}", admin), 204)


def test_services_and_endpoints(cloud: Cloud, admin: str) -> None:
    stype = unique("type")
    service = ok(
        call(cloud, "POST", "/services", admin, {"service": {"type": stype, "name": "svc"}}),
        201,
    )["service"]
    assert service["type"] == stype and service["name"] == "svc" and service["enabled"] is True
    assert ok(call(cloud, "GET", f"/services?type={stype}", admin))["services"] == [service]
    updated = ok(
        call(
            cloud,
            "PATCH",
            f"/services/{service['id']}",
            admin,
            {"service": {"description": "d2", "owner": "ops"}},
        )
    )["service"]
    assert updated["description"] == "d2" and updated["owner"] == "ops"

    region = unique("Region")
    body = {
        "endpoint": {
            "service_id": service["id"],
            "interface": "public",
            "url": "http://example.org:1234/v1",
            "region": region,  # the legacy field creates the region
        }
    }
    endpoint = ok(call(cloud, "POST", "/endpoints", admin, body), 201)["endpoint"]
    assert endpoint["region"] == endpoint["region_id"] == region and endpoint["enabled"] is True
    ok(call(cloud, "GET", f"/regions/{region}", admin))
    internal = ok(
        call(
            cloud,
            "POST",
            "/endpoints",
            admin,
            {
                "endpoint": {
                    "service_id": service["id"],
                    "interface": "internal",
                    "url": "http://internal:1234/v1",
                    "region_id": region,
                }
            },
        ),
        201,
    )["endpoint"]

    def ids(query: str) -> set[str]:
        found = ok(call(cloud, "GET", f"/endpoints?{query}", admin))["endpoints"]
        return {e["id"] for e in found}

    assert ids(f"service_id={service['id']}") == {endpoint["id"], internal["id"]}
    assert ids(f"service_id={service['id']}&interface=internal") == {internal["id"]}
    assert ids(f"region_id={region}") == {endpoint["id"], internal["id"]}
    error(call(cloud, "GET", "/endpoints?interface=sideways", admin), 400)

    # The new service shows in the catalog of new tokens (after the catalog cache's TTL).
    deadline = time.monotonic() + 10
    while True:
        catalog = cloud.auth().json()["token"]["catalog"]
        if any(s["id"] == service["id"] for s in catalog) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    [entry] = [s for s in catalog if s["id"] == service["id"]]
    assert {e["url"] for e in entry["endpoints"]} == {
        "http://example.org:1234/v1",
        "http://internal:1234/v1",
    }

    changed = ok(
        call(
            cloud,
            "PATCH",
            f"/endpoints/{endpoint['id']}",
            admin,
            {"endpoint": {"interface": "admin", "enabled": False, "url": "https://x/v2"}},
        )
    )["endpoint"]
    assert changed["interface"] == "admin" and changed["enabled"] is False
    assert changed["url"] == "https://x/v2" and changed["region_id"] == region
    assert ok(call(cloud, "GET", f"/endpoints/{endpoint['id']}", admin))["endpoint"] == changed

    # A region with endpoints stays.
    error(call(cloud, "DELETE", f"/regions/{region}", admin), 403)
    ok(call(cloud, "DELETE", f"/endpoints/{internal['id']}", admin), 204)
    error(call(cloud, "GET", f"/endpoints/{internal['id']}", admin), 404)
    # Deleting the service deletes its endpoints; then the region can go.
    ok(call(cloud, "DELETE", f"/services/{service['id']}", admin), 204)
    error(call(cloud, "GET", f"/endpoints/{endpoint['id']}", admin), 404)
    error(call(cloud, "GET", f"/services/{service['id']}", admin), 404)
    ok(call(cloud, "DELETE", f"/regions/{region}", admin), 204)


@pytest.mark.parametrize(
    "fields",
    [
        {"enabled": "False"},
        {"enabled": "True"},
        {"interface": "sideways"},
        {"url": "no-scheme"},
        {"service_id": "no-such-service"},
        {"region_id": "no-such-region"},
    ],
)
def test_endpoint_bad_bodies(cloud: Cloud, admin: str, fields: dict[str, Any]) -> None:
    services = ok(call(cloud, "GET", "/services?type=identity", admin))["services"]
    body = {
        "service_id": services[0]["id"],
        "interface": "public",
        "url": "http://example.org/",
        **fields,
    }
    error(call(cloud, "POST", "/endpoints", admin, {"endpoint": body}), 400)


def test_service_bad_bodies(cloud: Cloud, admin: str) -> None:
    error(call(cloud, "POST", "/services", admin, {"service": {"name": "no type"}}), 400)
    error(call(cloud, "POST", "/services", admin, {"service": {"type": ""}}), 400)
    error(call(cloud, "POST", "/services", admin, {"service": {"type": "t", "enabled": 0}}), 400)
