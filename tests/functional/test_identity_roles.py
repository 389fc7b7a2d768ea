"""Roles, implied roles, grants and role assignments over real HTTP."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import select

from ciaostack.core.db.migrate import upgrade
from ciaostack.core.db.models import ImpliedRole, Role
from ciaostack.core.db.session import Database
from ciaostack.core.identity.bootstrap import bootstrap
from tests.support.cloud import Cloud
from tests.support.identity import (
    V3,
    create_project,
    create_role,
    create_user,
    created,
    grant,
    new_member,
    role_id,
    token_roles,
    unique,
    validate,
)


@pytest.fixture(scope="module")
def admin(cloud: Cloud) -> str:
    return cloud.token()


def test_role_crud(cloud: Cloud, admin: str) -> None:
    role = create_role(cloud, admin, description="watches", colour="blue")
    assert role["domain_id"] is None and role["description"] == "watches"
    assert role["colour"] == "blue"
    assert role["links"]["self"] == f"{cloud.identity_url}/roles/{role['id']}"
    # A listed role is the very dict the create returned (tempest compares them whole).
    listed = cloud.request("GET", f"{V3}/roles", admin).json()["roles"]
    assert role in listed
    assert {"admin", "member", "reader", "service"} <= {r["name"] for r in listed}
    by_name = cloud.request("GET", f"{V3}/roles", admin, params={"name": role["name"]})
    assert by_name.json()["roles"] == [role]
    dup = cloud.request("POST", f"{V3}/roles", admin, json={"role": {"name": role["name"]}})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == 409

    path = f"{V3}/roles/{role['id']}"
    assert cloud.request("GET", path, admin).json()["role"] == role
    new_name = unique("renamed")
    patched = cloud.request("PATCH", path, admin, json={"role": {"name": new_name}})
    assert patched.status_code == 200 and patched.json()["role"]["name"] == new_name
    moved = cloud.request("PATCH", path, admin, json={"role": {"domain_id": "default"}})
    assert moved.status_code == 400
    taken = cloud.request("PATCH", path, admin, json={"role": {"name": "member"}})
    assert taken.status_code == 409

    assert cloud.request("DELETE", path, admin).status_code == 204
    assert cloud.request("GET", path, admin).status_code == 404
    assert cloud.request("DELETE", path, admin).status_code == 404


def test_role_bad_input(cloud: Cloud, admin: str) -> None:
    for body in ({}, {"role": {}}, {"role": {"name": ""}}, {"role": {"name": 5}}):
        assert cloud.request("POST", f"{V3}/roles", admin, json=body).status_code == 400
    unknown_domain = {"role": {"name": unique("r"), "domain_id": "no-such-domain"}}
    assert cloud.request("POST", f"{V3}/roles", admin, json=unknown_domain).status_code == 404


def test_member_cannot_manage_roles_or_grants(cloud: Cloud, admin: str) -> None:
    member = new_member(cloud, admin)
    token = member.token(cloud)
    assert (
        cloud.request("POST", f"{V3}/roles", token, json={"role": {"name": "x"}}).status_code == 403
    )
    reader = role_id(cloud, admin, "reader")
    path = f"{V3}/projects/{member.project_id}/users/{member.user_id}/roles/{reader}"
    assert cloud.request("PUT", path, token).status_code == 403
    assert cloud.request("GET", f"{V3}/role_assignments", token).status_code == 403
    assert cloud.request("GET", f"{V3}/role_inferences", token).status_code == 403


def test_implied_roles(cloud: Cloud, admin: str) -> None:
    prior = create_role(cloud, admin)
    implied = create_role(cloud, admin)
    path = f"{V3}/roles/{prior['id']}/implies/{implied['id']}"
    put = cloud.request("PUT", path, admin)
    assert put.status_code == 201, put.text
    inference = put.json()["role_inference"]
    assert inference["prior_role"]["id"] == prior["id"]
    assert inference["implies"] == {
        "id": implied["id"],
        "name": implied["name"],
        "links": {"self": implied["links"]["self"]},
    }
    assert cloud.request("GET", path, admin).json() == put.json()
    assert cloud.request("HEAD", path, admin).status_code == 204
    assert cloud.request("PUT", path, admin).status_code == 409

    listed = cloud.request("GET", f"{V3}/roles/{prior['id']}/implies", admin).json()
    assert [r["id"] for r in listed["role_inference"]["implies"]] == [implied["id"]]
    rules = cloud.request("GET", f"{V3}/role_inferences", admin).json()["role_inferences"]
    by_prior = {r["prior_role"]["name"]: [i["name"] for i in r["implies"]] for r in rules}
    assert by_prior["admin"] == ["manager"] and by_prior["manager"] == ["member"]
    assert by_prior["member"] == ["reader"]
    assert by_prior[prior["name"]] == [implied["name"]]

    assert cloud.request("DELETE", path, admin).status_code == 204
    assert cloud.request("GET", path, admin).status_code == 404
    assert cloud.request("HEAD", path, admin).status_code == 404
    assert cloud.request("DELETE", path, admin).status_code == 404


def test_implied_role_refusals(cloud: Cloud, admin: str) -> None:
    role = create_role(cloud, admin)
    admin_role = role_id(cloud, admin, "admin")
    # Nothing may imply admin.
    assert (
        cloud.request("PUT", f"{V3}/roles/{role['id']}/implies/{admin_role}", admin).status_code
        == 403
    )
    assert cloud.request("PUT", f"{V3}/roles/{role['id']}/implies/nope", admin).status_code == 404
    assert cloud.request("GET", f"{V3}/roles/nope/implies", admin).status_code == 404


def test_grant_gives_role_and_revoke_ends_tokens(cloud: Cloud, admin: str) -> None:
    member = new_member(cloud, admin)
    extra = create_role(cloud, admin)
    reader = role_id(cloud, admin, "reader")
    old = member.token(cloud)
    assert token_roles(member.auth(cloud)) == {"member", "reader"}

    grant(cloud, admin, member.project_id, member.user_id, extra["id"])
    path = f"{V3}/projects/{member.project_id}/users/{member.user_id}/roles"
    listed = cloud.request("GET", path, admin).json()["roles"]
    assert {r["name"] for r in listed} == {"member", extra["name"]}
    assert cloud.request("HEAD", f"{path}/{extra['id']}", admin).status_code == 204
    assert cloud.request("HEAD", f"{path}/{reader}", admin).status_code == 404
    # PUT is idempotent.
    assert cloud.request("PUT", f"{path}/{extra['id']}", admin).status_code == 204
    assert token_roles(member.auth(cloud)) == {"member", "reader", extra["name"]}

    assert cloud.request("DELETE", f"{path}/{extra['id']}", admin).status_code == 204
    assert cloud.request("DELETE", f"{path}/{extra['id']}", admin).status_code == 404
    # Tokens issued before the revocation are dead on every worker...
    for _ in range(4):
        assert validate(cloud, admin, old).status_code == 404
        assert cloud.request("GET", f"{V3}/auth/catalog", old).status_code == 401
    # ...and a new token has the roles that remain.
    assert token_roles(member.auth(cloud)) == {"member", "reader"}

    assert (
        cloud.request("DELETE", f"{path}/{role_id(cloud, admin, 'member')}", admin).status_code
        == 204
    )
    assert member.auth(cloud).status_code == 401


def test_grant_not_found(cloud: Cloud, admin: str) -> None:
    member = new_member(cloud, admin)
    role = role_id(cloud, admin, "reader")
    p, u = member.project_id, member.user_id
    for path in (
        f"{V3}/projects/nope/users/{u}/roles/{role}",
        f"{V3}/projects/{p}/users/nope/roles/{role}",
        f"{V3}/projects/{p}/users/{u}/roles/nope",
        f"{V3}/domains/nope/users/{u}/roles/{role}",
        f"{V3}/OS-INHERIT/domains/nope/users/{u}/roles/{role}/inherited_to_projects",
    ):
        resp = cloud.request("PUT", path, admin)
        assert resp.status_code == 404, path
        assert resp.json()["error"]["code"] == 404
    assert cloud.request("GET", f"{V3}/projects/nope/users/{u}/roles", admin).status_code == 404


def test_domain_grant_and_inheritance(cloud: Cloud, admin: str) -> None:
    domain = created(
        cloud.request("POST", f"{V3}/domains", admin, json={"domain": {"name": unique("dom")}}),
        "domain",
    )
    password = secrets.token_urlsafe(12)
    user = create_user(cloud, admin, password, domain_id=domain["id"])
    project = create_project(cloud, admin, domain_id=domain["id"])
    member = role_id(cloud, admin, "member")
    u, d = user["id"], domain["id"]

    def login(scope: dict) -> object:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"id": u, "password": password}},
                },
                "scope": scope,
            }
        }
        return cloud.request("POST", f"{V3}/auth/tokens", json=body)

    on_domain = f"{V3}/domains/{d}/users/{u}/roles/{member}"
    assert cloud.request("PUT", on_domain, admin).status_code == 204
    domain_token = login({"domain": {"id": d}})
    assert token_roles(domain_token) == {"member", "reader"}
    # A plain domain grant does not reach the domain's projects.
    assert login({"project": {"id": project["id"]}}).status_code == 401

    inherited = f"{V3}/OS-INHERIT/domains/{d}/users/{u}/roles/{member}/inherited_to_projects"
    assert cloud.request("PUT", inherited, admin).status_code == 204
    assert cloud.request("HEAD", inherited, admin).status_code == 204
    listed = cloud.request(
        "GET", f"{V3}/OS-INHERIT/domains/{d}/users/{u}/roles/inherited_to_projects", admin
    ).json()["roles"]
    assert [r["id"] for r in listed] == [member]
    project_token = login({"project": {"id": project["id"]}})
    assert token_roles(project_token) == {"member", "reader"}

    direct = cloud.request("GET", f"{V3}/role_assignments", admin, params={"user.id": u}).json()[
        "role_assignments"
    ]
    scopes = sorted(
        (a["scope"].get("OS-INHERIT:inherited_to", ""), a["links"]["assignment"]) for a in direct
    )
    assert scopes == [
        ("", f"{cloud.identity_url}/domains/{d}/users/{u}/roles/{member}"),
        (
            "projects",
            f"{cloud.identity_url}/OS-INHERIT/domains/{d}/users/{u}/roles/{member}"
            "/inherited_to_projects",
        ),
    ]
    effective = cloud.request(
        "GET",
        f"{V3}/role_assignments",
        admin,
        params={"user.id": u, "scope.project.id": project["id"], "effective": ""},
    ).json()["role_assignments"]
    assert {a["role"]["id"] for a in effective} == {member, role_id(cloud, admin, "reader")}
    assert all(a["scope"]["project"]["id"] == project["id"] for a in effective)
    assert all(a["scope"]["OS-INHERIT:inherited_to"] == "projects" for a in effective)
    only_inherited = cloud.request(
        "GET",
        f"{V3}/role_assignments",
        admin,
        params={"user.id": u, "scope.OS-INHERIT:inherited_to": "projects"},
    ).json()["role_assignments"]
    assert len(only_inherited) == 1 and "domain" in only_inherited[0]["scope"]

    # Revoking either grant ends the user's tokens in the domain (as Keystone's
    # user+domain revocation event does); new tokens get what remains.
    assert cloud.request("DELETE", inherited, admin).status_code == 204
    assert validate(cloud, admin, project_token.headers["X-Subject-Token"]).status_code == 404
    assert login({"project": {"id": project["id"]}}).status_code == 401
    domain_token = login({"domain": {"id": d}})
    assert token_roles(domain_token) == {"member", "reader"}
    assert cloud.request("DELETE", on_domain, admin).status_code == 204
    assert validate(cloud, admin, domain_token.headers["X-Subject-Token"]).status_code == 404
    assert login({"domain": {"id": d}}).status_code == 401


def test_effective_assignments_follow_inference_rules(cloud: Cloud, admin: str) -> None:
    member = new_member(cloud, admin)
    member_id = role_id(cloud, admin, "member")
    reader_id = role_id(cloud, admin, "reader")
    params = {"user.id": member.user_id, "scope.project.id": member.project_id}
    direct = cloud.request("GET", f"{V3}/role_assignments", admin, params=params).json()
    assert [a["role"]["id"] for a in direct["role_assignments"]] == [member_id]
    [row] = direct["role_assignments"]
    grant_link = (
        f"{cloud.identity_url}/projects/{member.project_id}"
        f"/users/{member.user_id}/roles/{member_id}"
    )
    assert row == {
        "role": {"id": member_id},
        "user": {"id": member.user_id},
        "scope": {"project": {"id": member.project_id}},
        "links": {"assignment": grant_link},
    }

    effective = cloud.request(
        "GET", f"{V3}/role_assignments?effective&include_names", admin, params=params
    ).json()["role_assignments"]
    by_role = {a["role"]["name"]: a for a in effective}
    assert set(by_role) == {"member", "reader"}
    implied = by_role["reader"]
    assert implied["links"]["assignment"] == grant_link
    assert implied["links"]["prior_role"] == (
        f"{cloud.identity_url}/roles/{member_id}/implies/{reader_id}"
    )
    assert "prior_role" not in by_role["member"]["links"]
    assert implied["user"] == {
        "id": member.user_id,
        "name": member.user["name"],
        "domain": {"id": "default", "name": "Default"},
    }
    assert implied["scope"]["project"]["name"] == member.project["name"]

    only_reader = cloud.request(
        "GET",
        f"{V3}/role_assignments?effective",
        admin,
        params={**params, "role.id": reader_id},
    ).json()["role_assignments"]
    assert [a["role"]["id"] for a in only_reader] == [reader_id]

    # A new inference rule shows in effective assignments and in new tokens.
    extra = create_role(cloud, admin)
    rule = f"{V3}/roles/{reader_id}/implies/{extra['id']}"
    assert cloud.request("PUT", rule, admin).status_code == 201
    try:
        effective = cloud.request(
            "GET", f"{V3}/role_assignments?effective", admin, params=params
        ).json()["role_assignments"]
        assert extra["id"] in {a["role"]["id"] for a in effective}
        assert token_roles(member.auth(cloud)) == {"member", "reader", extra["name"]}
    finally:
        assert cloud.request("DELETE", rule, admin).status_code == 204


def test_role_assignment_filter_errors(cloud: Cloud, admin: str) -> None:
    both = {"scope.project.id": "a", "scope.domain.id": "b"}
    assert cloud.request("GET", f"{V3}/role_assignments", admin, params=both).status_code == 400
    pointless = {
        "effective": "",
        "scope.domain.id": "default",
        "scope.OS-INHERIT:inherited_to": "projects",
    }
    assert (
        cloud.request("GET", f"{V3}/role_assignments", admin, params=pointless).status_code == 400
    )


def test_domain_specific_roles(cloud: Cloud, admin: str) -> None:
    domain = created(
        cloud.request("POST", f"{V3}/domains", admin, json={"domain": {"name": unique("dom")}}),
        "domain",
    )
    d = domain["id"]
    local = create_role(cloud, admin, domain_id=d)
    assert local["domain_id"] == d
    # The same name may exist globally and in another domain.
    same_name = {"role": {"name": local["name"]}}
    assert cloud.request("POST", f"{V3}/roles", admin, json=same_name).status_code == 201
    in_domain = cloud.request("GET", f"{V3}/roles", admin, params={"domain_id": d}).json()["roles"]
    assert in_domain == [local]
    assert local["id"] not in {
        r["id"] for r in cloud.request("GET", f"{V3}/roles", admin).json()["roles"]
    }

    reader = role_id(cloud, admin, "reader")
    # A domain role may imply a global one, never the other way round.
    assert (
        cloud.request("PUT", f"{V3}/roles/{local['id']}/implies/{reader}", admin).status_code == 201
    )
    assert (
        cloud.request("PUT", f"{V3}/roles/{reader}/implies/{local['id']}", admin).status_code == 403
    )

    password = secrets.token_urlsafe(12)
    user = create_user(cloud, admin, password, domain_id=d)
    project = create_project(cloud, admin, domain_id=d)
    elsewhere = create_project(cloud, admin)
    wrong = f"{V3}/projects/{elsewhere['id']}/users/{user['id']}/roles/{local['id']}"
    assert cloud.request("PUT", wrong, admin).status_code == 403
    grant(cloud, admin, project["id"], user["id"], local["id"])
    # The token carries what the domain role implies, not the domain role itself.
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"id": user["id"], "password": password}},
            },
            "scope": {"project": {"id": project["id"]}},
        }
    }
    assert token_roles(cloud.request("POST", f"{V3}/auth/tokens", json=body)) == {"reader"}
    effective = cloud.request(
        "GET",
        f"{V3}/role_assignments?effective",
        admin,
        params={"user.id": user["id"], "scope.project.id": project["id"]},
    ).json()["role_assignments"]
    assert [a["role"]["id"] for a in effective] == [reader]


def test_deleting_a_role_removes_grants_rules_and_tokens(cloud: Cloud, admin: str) -> None:
    member = new_member(cloud, admin, role="reader")
    extra = create_role(cloud, admin)
    reader = role_id(cloud, admin, "reader")
    assert (
        cloud.request("PUT", f"{V3}/roles/{extra['id']}/implies/{reader}", admin).status_code == 201
    )
    grant(cloud, admin, member.project_id, member.user_id, extra["id"])
    token = member.token(cloud)
    assert validate(cloud, admin, token).status_code == 200

    assert cloud.request("DELETE", f"{V3}/roles/{extra['id']}", admin).status_code == 204
    assert validate(cloud, admin, token).status_code == 404
    rows = cloud.request(
        "GET", f"{V3}/role_assignments", admin, params={"role.id": extra["id"]}
    ).json()["role_assignments"]
    assert rows == []
    rules = cloud.request("GET", f"{V3}/role_inferences", admin).json()["role_inferences"]
    assert extra["id"] not in {r["prior_role"]["id"] for r in rules}
    assert token_roles(member.auth(cloud)) == {"reader"}


def test_bootstrap_puts_manager_between_admin_and_member(database_url_factory) -> None:  # noqa: ANN001
    """As Keystone's bootstrap since 2023.2: a deployment bootstrapped before, where
    admin implied member, gets admin -> manager -> member on the next run."""
    url = database_url_factory()
    upgrade(url)
    db = Database(url)

    def chain() -> set[tuple[str, str]]:
        with db.session(readonly=True) as session:
            names = dict(session.execute(select(Role.id, Role.name)).all())
            rows = session.scalars(select(ImpliedRole)).all()
            return {(names[r.prior_role_id], names[r.implied_role_id]) for r in rows}

    try:
        bootstrap(db, "pw", "http://127.0.0.1:5000", "RegionOne", 4)
        expected = {("admin", "manager"), ("manager", "member"), ("member", "reader")}
        assert chain() == expected
        with db.session() as session:  # as an older bootstrap left it
            ids = dict(session.execute(select(Role.name, Role.id)).all())
            session.delete(session.get(ImpliedRole, (ids["admin"], ids["manager"])))
            session.add(ImpliedRole(prior_role_id=ids["admin"], implied_role_id=ids["member"]))
        bootstrap(db, None, "http://127.0.0.1:5000", "RegionOne", 4)
        assert chain() == expected
    finally:
        db.dispose()
