"""Server groups over real HTTP, and the helpers a server create uses to turn a group
into placement constraints, run against the cloud's own datastore."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from ciaostack.core import errors
from ciaostack.core.compute import server_groups
from ciaostack.core.controller import operations, states
from ciaostack.core.db.models import Instance
from ciaostack.core.db.session import Database
from tests.support.cloud import Cloud
from tests.support.compute_api import call, conforms, fault, needs
from tests.support.identity import Member, new_member


@pytest.fixture(scope="module")
def admin(cloud: Cloud) -> str:
    return cloud.token()


@pytest.fixture
def member(cloud: Cloud, admin: str) -> Member:
    return new_member(cloud, admin)


@pytest.fixture(scope="module")
def db(cloud: Cloud) -> Iterator[Database]:
    database = Database(cloud.env["CIAOSTACK_DATABASE__URL"])
    yield database
    database.dispose()


def create(cloud: Cloud, token: str, mv: str | None = None, **group: object) -> dict:
    body = {"server_group": {"name": "group", "policies": ["anti-affinity"], **group}}
    resp = call(cloud, "POST", "/os-server-groups", token, mv, json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()["server_group"]


def test_crud_at_2_1(cloud: Cloud, member: Member) -> None:
    token = member.token(cloud)
    body = {"server_group": {"name": "web", "policies": ["affinity"]}}
    created = call(cloud, "POST", "/os-server-groups", token, json=body)
    group = conforms(created, "2.1", "server_groups", "create_show_server_group")["server_group"]
    assert group["policies"] == ["affinity"] and group["members"] == [] and group["metadata"] == {}
    assert "project_id" not in group and "policy" not in group
    path = f"/os-server-groups/{group['id']}"
    shown = call(cloud, "GET", path, token)
    assert conforms(shown, "2.1", "server_groups", "create_show_server_group") == {
        "server_group": group
    }
    listed = call(cloud, "GET", "/os-server-groups", token)
    assert conforms(listed, "2.1", "server_groups", "list_server_groups") == {
        "server_groups": [group]
    }
    deleted = call(cloud, "DELETE", path, token)
    assert conforms(deleted, "2.1", "server_groups", "delete_server_group") is None
    assert "could not be found" in fault(call(cloud, "GET", path, token), 404)
    fault(call(cloud, "DELETE", path, token), 404)


def test_bad_requests(cloud: Cloud, member: Member) -> None:
    token = member.token(cloud)
    for bad in (
        {"name": "x", "policies": ["together"]},
        {"name": "x", "policies": ["affinity", "anti-affinity"]},
        {"name": "x", "policies": []},
        {"name": "x"},
        {"policies": ["affinity"]},
        {"name": "", "policies": ["affinity"]},
        # The soft policies arrive with 2.15.
        {"name": "x", "policies": ["soft-affinity"]},
        # `policy` arrives with 2.64.
        {"name": "x", "policy": "affinity"},
    ):
        fault(call(cloud, "POST", "/os-server-groups", token, json={"server_group": bad}), 400)


def test_other_projects_and_all_projects(cloud: Cloud, admin: str, member: Member) -> None:
    token = member.token(cloud)
    mine = create(cloud, token)
    stranger = new_member(cloud, admin).token(cloud)
    path = f"/os-server-groups/{mine['id']}"
    fault(call(cloud, "GET", path, stranger), 403)
    fault(call(cloud, "DELETE", path, stranger), 403)
    assert call(cloud, "GET", "/os-server-groups", stranger).json() == {"server_groups": []}
    # A member asking for all projects quietly gets their own, as in Nova.
    all_for_member = call(cloud, "GET", "/os-server-groups", stranger, params={"all_projects": "1"})
    assert all_for_member.json() == {"server_groups": []}
    everything = call(cloud, "GET", "/os-server-groups", admin, params={"all_projects": "True"})
    assert mine["id"] in [g["id"] for g in everything.json()["server_groups"]]
    assert mine["id"] not in [
        g["id"] for g in call(cloud, "GET", "/os-server-groups", admin).json()["server_groups"]
    ]
    assert call(cloud, "GET", path, admin).status_code == 200


def test_paging_by_offset(cloud: Cloud, member: Member) -> None:
    token = member.token(cloud)
    ids = [create(cloud, token, name=f"g{i}")["id"] for i in range(3)]
    page = call(cloud, "GET", "/os-server-groups", token, params={"limit": 2, "offset": 1}).json()
    assert [g["id"] for g in page["server_groups"]] == ids[1:3]
    fault(call(cloud, "GET", "/os-server-groups", token, params={"offset": "x"}), 400)


def test_project_and_user_from_2_13_soft_policies_from_2_15(cloud: Cloud, member: Member) -> None:
    needs(cloud, "2.15")
    token = member.token(cloud)
    group = create(cloud, token, "2.13")
    assert group["project_id"] == member.project_id and group["user_id"] == member.user_id
    shown = call(cloud, "GET", f"/os-server-groups/{group['id']}", token, "2.13")
    conforms(shown, "2.13", "server_groups", "create_show_server_group")
    soft = create(cloud, token, "2.15", policies=["soft-anti-affinity"])
    assert soft["policies"] == ["soft-anti-affinity"]


def test_policy_and_rules_from_2_64(cloud: Cloud, member: Member) -> None:
    needs(cloud, "2.64")
    token = member.token(cloud)
    body = {
        "server_group": {
            "name": "spread",
            "policy": "anti-affinity",
            "rules": {"max_server_per_host": 1},
        }
    }
    created = call(cloud, "POST", "/os-server-groups", token, "2.64", json=body)
    group = conforms(created, "2.64", "server_groups", "create_show_server_group")["server_group"]
    assert group["policy"] == "anti-affinity" and group["rules"] == {"max_server_per_host": 1}
    assert "policies" not in group and "metadata" not in group
    listed = call(cloud, "GET", "/os-server-groups", token, "2.64")
    conforms(listed, "2.64", "server_groups", "list_server_groups")
    # The same group at 2.1 shows its one policy as a list.
    old = call(cloud, "GET", f"/os-server-groups/{group['id']}", token, "2.1").json()[
        "server_group"
    ]
    assert old["policies"] == ["anti-affinity"]
    soft = {"server_group": {"name": "near", "policy": "soft-affinity"}}
    plain = call(cloud, "POST", "/os-server-groups", token, "2.64", json=soft)
    assert plain.json()["server_group"]["rules"] == {}
    rules_on_affinity = {
        "server_group": {"name": "x", "policy": "affinity", "rules": {"max_server_per_host": 1}}
    }
    assert "Only anti-affinity" in fault(
        call(cloud, "POST", "/os-server-groups", token, "2.64", json=rules_on_affinity), 400
    )
    several = {
        "server_group": {
            "name": "x",
            "policy": "anti-affinity",
            "rules": {"max_server_per_host": 2},
        }
    }
    fault(call(cloud, "POST", "/os-server-groups", token, "2.64", json=several), 409)
    for bad in (
        {"name": "x", "policies": ["affinity"]},
        {"name": "x", "policy": "anti-affinity", "rules": {"max_server_per_host": 0}},
        {"name": "x", "policy": "anti-affinity", "rules": {"colour": 1}},
    ):
        fault(
            call(cloud, "POST", "/os-server-groups", token, "2.64", json={"server_group": bad}), 400
        )


def test_server_groups_quota(cloud: Cloud, admin: str, member: Member) -> None:
    token = member.token(cloud)
    call(
        cloud,
        "PUT",
        f"/os-quota-sets/{member.project_id}",
        admin,
        json={"quota_set": {"server_groups": 1}},
    )
    first = create(cloud, token)
    body = {"server_group": {"name": "second", "policies": ["affinity"]}}
    assert fault(call(cloud, "POST", "/os-server-groups", token, json=body), 403) == (
        "Quota exceeded, too many server groups."
    )
    call(cloud, "DELETE", f"/os-server-groups/{first['id']}", token)
    assert call(cloud, "POST", "/os-server-groups", token, json=body).status_code == 200


# -- what a server create does with a group ------------------------------------------------


def new_instance(db: Database, project_id: str, vm_state: str = states.ACTIVE) -> str:
    spec = operations.InstanceSpec(
        project_id=project_id, user_id="u", name="vm", image_id="img", mem_mb=64, vcpus=1
    )
    with db.session() as session:
        [instance] = operations.create_instances(session, spec)
        instance.vm_state = vm_state
        return instance.id


def test_members_constraints_and_member_quota(
    cloud: Cloud, admin: str, member: Member, db: Database
) -> None:
    token = member.token(cloud)
    spread = create(cloud, token, policies=["anti-affinity"])
    together = create(cloud, token, policies=["affinity"])
    with db.session() as session:
        with pytest.raises(errors.BadRequest):
            server_groups.group_for_hint(session, spread["id"], "another-project")
        with pytest.raises(errors.BadRequest):
            server_groups.group_for_hint(session, str(uuid.uuid4()), member.project_id)

    first, broken = (
        new_instance(db, member.project_id),
        new_instance(db, member.project_id, states.ERROR),
    )
    for instance_id in (first, broken):
        with db.session() as session:
            group = server_groups.group_for_hint(session, spread["id"], member.project_id)
            server_groups.add_member(session, group, instance_id)
    with db.session() as session:
        group = server_groups.group_for_hint(session, spread["id"], member.project_id)
        # Anti-affinity avoids the members that run (not the one in ERROR).
        assert server_groups.placement_constraints(session, group) == ([], [first])
    with db.session() as session:
        group = server_groups.group_for_hint(session, together["id"], member.project_id)
        assert server_groups.placement_constraints(session, group) == ([], [])
        server_groups.add_member(session, group, first)
    with db.session(readonly=True) as session:
        group = server_groups.get(session, together["id"])
        assert server_groups.placement_constraints(session, group) == ([first], [])

    shown = call(cloud, "GET", f"/os-server-groups/{spread['id']}", token).json()["server_group"]
    assert sorted(shown["members"]) == sorted([first, broken])
    # A deleted server leaves the group.
    with db.session() as session:
        session.get(Instance, broken).deleted = True
    shown = call(cloud, "GET", f"/os-server-groups/{spread['id']}", token).json()["server_group"]
    assert shown["members"] == [first]

    call(
        cloud,
        "PUT",
        f"/os-quota-sets/{member.project_id}",
        admin,
        json={"quota_set": {"server_group_members": 1}},
    )
    second = new_instance(db, member.project_id)
    with db.session() as session:
        group = server_groups.group_for_hint(session, spread["id"], member.project_id)
        with pytest.raises(server_groups.GroupMemberLimitExceeded):
            server_groups.add_member(session, group, second)


def test_concurrent_creates_never_pass_the_quota(cloud: Cloud, admin: str, member: Member) -> None:
    """The quota is a conditional update in the create's transaction: racing creates
    cannot both take the last place."""
    token = member.token(cloud)
    quota = {"quota_set": {"server_groups": 3}}
    call(cloud, "PUT", f"/os-quota-sets/{member.project_id}", admin, json=quota)
    body = {"server_group": {"name": "race", "policies": ["anti-affinity"]}}
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(
                lambda _: call(cloud, "POST", "/os-server-groups", token, json=body).status_code,
                range(12),
            )
        )
    assert sorted(statuses) == [200] * 3 + [403] * 9
    listed = call(cloud, "GET", "/os-server-groups", token).json()["server_groups"]
    assert len(listed) == 3
    detail = call(cloud, "GET", f"/os-quota-sets/{member.project_id}/detail", token).json()
    assert detail["quota_set"]["server_groups"]["in_use"] == 3
