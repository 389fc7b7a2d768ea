"""Limits, quota sets and quota classes over real HTTP, at each microversion's shape."""

from __future__ import annotations

import pytest

from tests.support.cloud import Cloud
from tests.support.compute_api import call, conforms, fault, needs
from tests.support.identity import Member, create_user, grant, new_member, role_id

NOVA_DEFAULTS = {
    "instances": 10,
    "cores": 20,
    "ram": 51200,
    "metadata_items": 128,
    "key_pairs": 100,
    "server_groups": 10,
    "server_group_members": 10,
    "injected_files": 5,
    "injected_file_content_bytes": 10240,
    "injected_file_path_bytes": 255,
}


@pytest.fixture(scope="module")
def admin(cloud: Cloud) -> str:
    return cloud.token()


@pytest.fixture
def member(cloud: Cloud, admin: str) -> Member:
    """A fresh project for each test: quotas belong to projects."""
    return new_member(cloud, admin)


def quota_path(member: Member, suffix: str = "") -> str:
    return f"/os-quota-sets/{member.project_id}{suffix}"


def make_groups(cloud: Cloud, token: str, count: int) -> None:
    for i in range(count):
        body = {"server_group": {"name": f"g{i}", "policies": ["affinity"]}}
        assert call(cloud, "POST", "/os-server-groups", token, json=body).status_code == 200


def test_limits_document(cloud: Cloud, member: Member) -> None:
    token = member.token(cloud)
    body = conforms(call(cloud, "GET", "/limits", token), "2.1", "limits", "get_limit")
    absolute = body["limits"]["absolute"]
    assert body["limits"]["rate"] == []
    assert absolute["maxTotalInstances"] == 10 and absolute["maxTotalCores"] == 20
    assert absolute["maxTotalRAMSize"] == 51200 and absolute["maxTotalKeypairs"] == 100
    assert absolute["maxServerMeta"] == absolute["maxImageMeta"] == 128
    assert absolute["maxServerGroups"] == absolute["maxServerGroupMembers"] == 10
    assert absolute["totalInstancesUsed"] == absolute["totalCoresUsed"] == 0
    assert absolute["maxTotalFloatingIps"] == -1
    make_groups(cloud, token, 2)
    again = call(cloud, "GET", "/limits", token).json()["limits"]["absolute"]
    assert again["totalServerGroupsUsed"] == 2


@pytest.mark.parametrize("version", ["2.36", "2.39", "2.57"])
def test_limits_leave_out_what_nova_dropped(cloud: Cloud, member: Member, version: str) -> None:
    needs(cloud, version)
    body = conforms(
        call(cloud, "GET", "/limits", member.token(cloud), version), version, "limits", "get_limit"
    )
    absolute = body["limits"]["absolute"]
    assert "maxSecurityGroups" not in absolute and "totalFloatingIpsUsed" not in absolute
    assert ("maxImageMeta" in absolute) == (version == "2.36")
    assert ("maxPersonality" in absolute) == (version != "2.57")


def test_limits_of_another_project(cloud: Cloud, admin: str, member: Member) -> None:
    call(cloud, "PUT", quota_path(member), admin, json={"quota_set": {"cores": 7}})
    params = {"tenant_id": member.project_id}
    other = call(cloud, "GET", "/limits", admin, params=params).json()["limits"]["absolute"]
    assert other["maxTotalCores"] == 7
    own = call(cloud, "GET", "/limits", admin).json()["limits"]["absolute"]
    assert own["maxTotalCores"] == 20
    fault(call(cloud, "GET", "/limits", new_member(cloud, admin).token(cloud), params=params), 403)


def test_show_defaults_and_detail(cloud: Cloud, member: Member) -> None:
    token = member.token(cloud)
    shown = conforms(
        call(cloud, "GET", quota_path(member), token), "2.1", "quotas", "get_quota_set"
    )
    assert shown["quota_set"] == {
        "id": member.project_id,
        **NOVA_DEFAULTS,
        "fixed_ips": -1,
        "floating_ips": -1,
        "security_groups": -1,
        "security_group_rules": -1,
    }
    defaults = call(cloud, "GET", quota_path(member, "/defaults"), token)
    assert conforms(defaults, "2.1", "quotas", "get_quota_set") == shown
    make_groups(cloud, token, 3)
    detail = call(cloud, "GET", quota_path(member, "/detail"), token)
    body = conforms(detail, "2.1", "quotas", "get_quota_set_details")["quota_set"]
    assert body["server_groups"] == {"limit": 10, "in_use": 3, "reserved": 0}
    assert body["key_pairs"] == {"limit": 100, "in_use": 0, "reserved": 0}


@pytest.mark.parametrize("version", ["2.36", "2.57"])
def test_quota_sets_leave_out_what_nova_dropped(
    cloud: Cloud, admin: str, member: Member, version: str
) -> None:
    needs(cloud, version)
    token = member.token(cloud)
    shown = call(cloud, "GET", quota_path(member), token, version)
    body = conforms(shown, version, "quotas", "get_quota_set")["quota_set"]
    assert "floating_ips" not in body and ("injected_files" in body) == (version == "2.36")
    detail = call(cloud, "GET", quota_path(member, "/detail"), token, version)
    conforms(detail, version, "quotas", "get_quota_set_details")
    update = call(
        cloud, "PUT", quota_path(member), admin, version, json={"quota_set": {"ram": 1024}}
    )
    assert conforms(update, version, "quotas", "update_quota_set")["quota_set"]["ram"] == 1024
    dropped = {"quota_set": {"floating_ips": 5}}
    fault(call(cloud, "PUT", quota_path(member), admin, version, json=dropped), 400)


def test_update_and_reset(cloud: Cloud, admin: str, member: Member) -> None:
    token = member.token(cloud)
    new = {"ram": "5120", "cores": 2, "instances": -1, "metadata_items": 256}
    updated = call(cloud, "PUT", quota_path(member), admin, json={"quota_set": new})
    body = conforms(updated, "2.1", "quotas", "update_quota_set")["quota_set"]
    assert "id" not in body
    assert (body["ram"], body["cores"], body["instances"], body["metadata_items"]) == (
        5120,
        2,
        -1,
        256,
    )
    shown = call(cloud, "GET", quota_path(member), token).json()["quota_set"]
    assert shown["ram"] == 5120 and shown["key_pairs"] == 100
    fault(call(cloud, "PUT", quota_path(member), token, json={"quota_set": {"ram": 1}}), 403)
    for bad in ({"ram": -2}, {"ram": "lots"}, {"colour": 1}, {"ram": 2**31}):
        fault(call(cloud, "PUT", quota_path(member), admin, json={"quota_set": bad}), 400)
    # Nothing set by the refused updates.
    assert call(cloud, "GET", quota_path(member), token).json()["quota_set"]["ram"] == 5120

    fault(call(cloud, "DELETE", quota_path(member), token), 403)
    reset = call(cloud, "DELETE", quota_path(member), admin)
    assert conforms(reset, "2.1", "quotas", "delete_quota") is None
    assert call(cloud, "GET", quota_path(member), token).json()["quota_set"]["ram"] == 51200


def test_limits_below_usage_need_force(cloud: Cloud, admin: str, member: Member) -> None:
    make_groups(cloud, member.token(cloud), 2)
    low = {"quota_set": {"server_groups": 1}}
    message = fault(call(cloud, "PUT", quota_path(member), admin, json=low), 400)
    assert message == (
        "Quota limit 1 for server_groups must be greater than or equal to already used and "
        "reserved 2."
    )
    forced = {"quota_set": {"server_groups": 1, "force": True}}
    assert (
        call(cloud, "PUT", quota_path(member), admin, json=forced).json()["quota_set"][
            "server_groups"
        ]
        == 1
    )
    body = {"server_group": {"name": "over", "policies": ["affinity"]}}
    over = call(cloud, "POST", "/os-server-groups", member.token(cloud), json=body)
    assert fault(over, 403) == "Quota exceeded, too many server groups."


def test_quotas_of_a_user(cloud: Cloud, admin: str, member: Member) -> None:
    user = create_user(cloud, admin, "pw-of-a-user")
    grant(cloud, admin, member.project_id, user["id"], role_id(cloud, admin, "member"))
    params = {"user_id": user["id"]}
    call(cloud, "PUT", quota_path(member), admin, json={"quota_set": {"ram": 8192}})
    set_user = call(
        cloud, "PUT", quota_path(member), admin, params=params, json={"quota_set": {"ram": "2048"}}
    )
    assert set_user.json()["quota_set"]["ram"] == 2048
    shown = call(cloud, "GET", quota_path(member), admin, params=params)
    assert conforms(shown, "2.1", "quotas", "get_quota_set")["quota_set"]["ram"] == 2048
    assert call(cloud, "GET", quota_path(member), admin).json()["quota_set"]["ram"] == 8192
    # A user's limit fits in what the project's leaves; the project's covers its users'.
    too_big = {"quota_set": {"ram": 9000}}
    assert "less than or equal to 8192" in fault(
        call(cloud, "PUT", quota_path(member), admin, params=params, json=too_big), 400
    )
    assert "greater than or equal" in fault(
        call(cloud, "PUT", quota_path(member), admin, json={"quota_set": {"ram": 1024}}), 400
    )
    detail = call(cloud, "GET", quota_path(member, "/detail"), admin, params=params)
    assert detail.json()["quota_set"]["ram"] == {"limit": 2048, "in_use": 0, "reserved": 0}
    call(cloud, "DELETE", quota_path(member), admin, params=params)
    assert (
        call(cloud, "GET", quota_path(member), admin, params=params).json()["quota_set"]["ram"]
        == 8192
    )


def test_who_may_read_quotas(cloud: Cloud, admin: str, member: Member) -> None:
    stranger = new_member(cloud, admin).token(cloud)
    fault(call(cloud, "GET", quota_path(member), stranger), 403)
    fault(call(cloud, "GET", quota_path(member, "/detail"), stranger), 403)
    # Anyone may read the defaults.
    assert call(cloud, "GET", quota_path(member, "/defaults"), stranger).status_code == 200
    assert "not a valid project" in fault(call(cloud, "GET", "/os-quota-sets/no-such", admin), 400)


def test_quota_classes(cloud: Cloud, admin: str, member: Member) -> None:
    shown = call(cloud, "GET", "/os-quota-class-sets/default", admin)
    body = conforms(shown, "2.1", "quota_classes", "get_quota_class_set")["quota_class_set"]
    assert body["id"] == "default" and "server_groups" not in body and body["cores"] == 20
    fault(call(cloud, "GET", "/os-quota-class-sets/default", member.token(cloud)), 403)
    fault(
        call(
            cloud,
            "PUT",
            "/os-quota-class-sets/default",
            member.token(cloud),
            json={"quota_class_set": {}},
        ),
        403,
    )
    # The default class sets the defaults of every project without limits of its own.
    raised = call(
        cloud,
        "PUT",
        "/os-quota-class-sets/default",
        admin,
        json={"quota_class_set": {"cores": 120}},
    )
    try:
        assert (
            conforms(raised, "2.1", "quota_classes", "update_quota_class_set")["quota_class_set"][
                "cores"
            ]
            == 120
        )
        assert call(cloud, "GET", quota_path(member), admin).json()["quota_set"]["cores"] == 120
        defaults = call(cloud, "GET", quota_path(member, "/defaults"), admin).json()["quota_set"]
        assert defaults["cores"] == 120
    finally:
        call(
            cloud,
            "PUT",
            "/os-quota-class-sets/default",
            admin,
            json={"quota_class_set": {"cores": 20}},
        )
    fault(
        call(
            cloud,
            "PUT",
            "/os-quota-class-sets/default",
            admin,
            json={"quota_class_set": {"cores": -5}},
        ),
        400,
    )
    needs(cloud, "2.57")
    for version in ("2.50", "2.57"):
        shown = call(cloud, "GET", "/os-quota-class-sets/default", admin, version)
        body = conforms(shown, version, "quota_classes", "get_quota_class_set")["quota_class_set"]
        assert body["server_groups"] == 10 and "floating_ips" not in body
