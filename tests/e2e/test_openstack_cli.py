"""The real `openstack` CLI and openstacksdk against a real ciaostack identity API."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import CLI
from tests.support.cloud import Cloud

pytestmark = pytest.mark.e2e


@pytest.fixture
def cli(cloud: Cloud, tmp_path: Path) -> CLI:
    c = CLI(tmp_path, cloud)
    c.add_password_cloud("admin", "admin", cloud.admin_password, "admin")
    return c


@pytest.fixture
def cleanup(cloud: Cloud) -> Iterator[list[str]]:
    """Identity paths (e.g. "users/<id>") to delete after the test, whatever its outcome."""
    paths: list[str] = []
    yield paths
    token = cloud.token()
    for path in reversed(paths):
        resp = cloud.request("DELETE", f"/identity/v3/{path}", token)
        assert resp.status_code in (204, 404), resp.text


def _admin_ids(cloud: Cloud) -> tuple[str, str]:
    token = cloud.auth().json()["token"]
    return token["user"]["id"], token["project"]["id"]


def _expires(value: str) -> dt.datetime:
    """The CLI prints `expires` as e.g. 2026-01-02T03:04:05+0000."""
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")


def test_token_issue_and_catalog(cli: CLI, cloud: Cloud) -> None:
    admin_user_id, admin_project_id = _admin_ids(cloud)
    token = cli.json("token", "issue")
    assert token["user_id"] == admin_user_id
    assert token["project_id"] == admin_project_id
    assert _expires(token["expires"]) > dt.datetime.now(dt.UTC)
    check = cloud.request(
        "GET", "/identity/v3/auth/tokens", cloud.token(), headers={"X-Subject-Token": token["id"]}
    )
    assert check.status_code == 200 and check.json()["token"]["user"]["name"] == "admin"

    catalog = cli.json("catalog", "list")
    [identity] = [s for s in catalog if s["Type"] == "identity"]
    assert identity["Name"] == "keystone"
    endpoints = identity["Endpoints"]
    assert {e["interface"] for e in endpoints} == {"public", "internal", "admin"}
    assert {e["url"] for e in endpoints} == {f"{cloud.url}/identity"}
    assert all(e["region_id"] and e["region"] == e["region_id"] for e in endpoints)


def test_user_lifecycle_with_application_credential(
    cli: CLI, cloud: Cloud, cleanup: list[str]
) -> None:
    suffix = uuid.uuid4().hex[:8]
    project_name, user_name = f"e2e-project-{suffix}", f"e2e-user-{suffix}"
    password = secrets.token_urlsafe(12)

    # No --domain: the project goes to the domain of the admin's project, Default.
    project = cli.json("project", "create", project_name, "--description", "e2e")
    cleanup.append(f"projects/{project['id']}")
    assert project["name"] == project_name
    assert project["domain_id"] == "default"
    assert project["enabled"] is True and project["description"] == "e2e"

    user = cli.json(
        "user",
        "create",
        user_name,
        f"--password={password}",  # a password may start with "-"
        "--project",
        project_name,
    )
    cleanup.append(f"users/{user['id']}")
    assert user["name"] == user_name and user["domain_id"] == "default"
    assert user["default_project_id"] == project["id"] and user["enabled"] is True

    assert cli.ok("role", "add", "--project", project_name, "--user", user_name, "member") == ""
    assignments = cli.json(
        "role", "assignment", "list", "--user", user_name, "--project", project_name, "--names"
    )
    assert assignments == [
        {
            "Role": "member",
            "User": f"{user_name}@Default",
            "Group": "",
            "Project": f"{project_name}@Default",
            "Domain": "",
            "System": "",
            "Inherited": False,
        }
    ]

    cli.add_password_cloud("user", user_name, password, project_name)
    user_token = cli.json("token", "issue", cloud="user")
    assert user_token["user_id"] == user["id"]
    assert user_token["project_id"] == project["id"]

    cred = cli.json("application", "credential", "create", f"e2e-cred-{suffix}", cloud="user")
    assert cred["Name"] == f"e2e-cred-{suffix}" and cred["ID"] and cred["Secret"]
    assert cred["Project ID"] == project["id"]
    # Without --role the credential takes the roles of the token that made it.
    assert {r["name"] for r in cred["Roles"]} == {"member", "reader"}
    app_env = {
        "OS_AUTH_TYPE": "v3applicationcredential",
        "OS_AUTH_URL": f"{cloud.url}/identity",
        "OS_IDENTITY_API_VERSION": "3",
        "OS_APPLICATION_CREDENTIAL_ID": cred["ID"],
        "OS_APPLICATION_CREDENTIAL_SECRET": cred["Secret"],
    }
    app_token = cli.json("token", "issue", cloud=None, env=app_env)
    assert app_token["user_id"] == user["id"]
    assert app_token["project_id"] == project["id"]
    validated = cloud.request(
        "GET",
        "/identity/v3/auth/tokens",
        cloud.token(),
        headers={"X-Subject-Token": app_token["id"]},
    )
    assert validated.status_code == 200, validated.text
    body = validated.json()["token"]
    assert body["methods"] == ["application_credential"]
    assert body["application_credential"]["id"] == cred["ID"]
    assert {r["name"] for r in body["roles"]} == {"member", "reader"}

    # Revoke the user's password token as admin: validation must fail everywhere.
    assert cli.ok("token", "revoke", user_token["id"]) == ""
    gone = cloud.request(
        "GET",
        "/identity/v3/auth/tokens",
        cloud.token(),
        headers={"X-Subject-Token": user_token["id"]},
    )
    assert gone.status_code == 404
    assert cloud.request("GET", "/identity/v3/auth/catalog", user_token["id"]).status_code == 401
    revoked = cli.run(
        "token",
        "issue",
        cloud=None,
        env={
            "OS_AUTH_TYPE": "v3token",
            "OS_AUTH_URL": f"{cloud.url}/identity",
            "OS_TOKEN": user_token["id"],
            "OS_PROJECT_ID": project["id"],
        },
    )
    assert revoked.returncode != 0 and "401" in revoked.stderr, revoked.stderr

    assert cli.ok("project", "delete", project["id"]) == ""
    assert cli.ok("user", "delete", user["id"]) == ""
    admin = cloud.token()
    for path in (f"users/{user['id']}", f"projects/{project['id']}"):
        assert cloud.request("GET", f"/identity/v3/{path}", admin).status_code == 404


# openstacksdk warns about its own internals (deprecations it plans for itself).
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:openstack")
def test_openstacksdk(cloud: Cloud, cleanup: list[str]) -> None:
    import openstack

    conn = openstack.connect(
        auth_url=f"{cloud.url}/identity",
        username="admin",
        password=cloud.admin_password,
        project_name="admin",
        user_domain_id="default",
        project_domain_id="default",
        identity_api_version="3",
        load_yaml_config=False,
        load_envvars=False,
    )
    try:
        token = conn.authorize()
        assert isinstance(token, str) and token
        names = {p.name for p in conn.identity.projects()}
        assert {"admin", "service"} <= names

        name = f"e2e-sdk-{uuid.uuid4().hex[:8]}"
        password = secrets.token_urlsafe(12)
        user = conn.identity.create_user(name=name, password=password, domain_id="default")
        cleanup.append(f"users/{user.id}")
        assert user.name == name and user.domain_id == "default" and user.is_enabled
        assert conn.identity.get_user(user.id).name == name
        # The new user has no role anywhere, but can still get an unscoped token.
        resp = cloud.auth(user=name, password=password, project=None)
        assert resp.status_code == 201 and resp.json()["token"]["user"]["id"] == user.id
    finally:
        conn.close()
