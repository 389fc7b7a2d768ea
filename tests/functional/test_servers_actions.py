"""Server actions, metadata, tags and instance actions over real HTTP, with the fake
launchers doing the work: state changes follow the nodes' reports, refusals are
Nova's (409 for a state conflict or a lock, 403 for policy, 501 for what the nodes
cannot do)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
import requests

from tests.support.cloud import Cloud
from tests.support.compute import TINY, ComputeClient, World, compute_world
from tests.support.identity import create_user, grant, role_id


@pytest.fixture(scope="module")
def world(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with compute_world(cloud, tmp_path_factory.mktemp("compute")) as world:
        yield world


def conflict(resp) -> str:  # noqa: ANN001 - requests.Response
    assert resp.status_code == 409, resp.text
    return resp.json()["conflictingRequest"]["message"]


def test_stop_start_reboot(world: World) -> None:
    client = world.member()
    server_id = world.boot(client)
    assert client.action(server_id, {"os-stop": None}).status_code == 202
    stopped = client.wait(server_id, "SHUTOFF")
    assert stopped["OS-EXT-STS:vm_state"] == "stopped" and stopped["OS-EXT-STS:power_state"] == 4
    assert "vm_state stopped" in conflict(client.action(server_id, {"os-stop": None}))
    assert "vm_state stopped" in conflict(client.action(server_id, {"reboot": {"type": "SOFT"}}))
    assert client.action(server_id, {"os-start": {}}).status_code == 202
    assert client.wait(server_id, "ACTIVE")["OS-EXT-STS:power_state"] == 1
    assert "vm_state active" in conflict(client.action(server_id, {"os-start": None}))
    for kind in ("SOFT", "HARD"):
        assert client.action(server_id, {"reboot": {"type": kind}}).status_code == 202
        client.wait(server_id, "ACTIVE")
    # A hard reboot starts a stopped server.
    client.action(server_id, {"os-stop": None})
    client.wait(server_id, "SHUTOFF")
    assert client.action(server_id, {"reboot": {"type": "HARD"}}).status_code == 202
    client.wait(server_id, "ACTIVE")
    bad = client.action(server_id, {"reboot": {"type": "GENTLE"}})
    assert bad.status_code == 400
    assert client.action(server_id, {"reboot": {}}).status_code == 400


def test_action_refusals(world: World) -> None:
    client = world.member()
    server_id = world.boot(client)
    unknown = client.action(server_id, {"dance": None})
    assert (
        unknown.status_code == 400 and "no such action" in unknown.json()["badRequest"]["message"]
    )
    two = client.action(server_id, {"os-stop": None, "os-start": None})
    assert two.status_code == 400
    for action in ("os-migrateLive", "rescue", "changePassword", "evacuate"):
        resp = client.action(server_id, {action: {}})
        assert resp.status_code == 501, (action, resp.text)
        assert resp.json()["notImplemented"]["code"] == 501
    missing = client.action("0" * 36, {"rescue": None})
    assert missing.status_code == 404
    # A reader of the project sees the server but may not change it.
    password = secrets.token_urlsafe(12)
    user = create_user(world.cloud, world.admin.token, password)
    reader_role = role_id(world.cloud, world.admin.token, "reader")
    grant(world.cloud, world.admin.token, client.project_id, user["id"], reader_role)
    project = world.cloud.request(
        "GET", f"/identity/v3/projects/{client.project_id}", world.admin.token
    ).json()["project"]
    reader = ComputeClient(
        world.cloud, world.cloud.token(user["name"], password, project["name"]), "2.1"
    )
    assert reader.show(server_id)["id"] == server_id
    for method, path, body in (
        ("POST", f"/servers/{server_id}/action", {"os-stop": None}),
        ("DELETE", f"/servers/{server_id}", None),
        ("PUT", f"/servers/{server_id}", {"server": {"name": "x"}}),
        ("POST", f"/servers/{server_id}/metadata", {"metadata": {"a": "b"}}),
    ):
        assert reader.call(method, path, json=body).status_code == 403, (method, path)
    assert client.action(server_id, {"os-stop": {"force": True}}).status_code == 202


def test_security_groups(world: World) -> None:
    """Only `default` exists: a server leaves it and joins it again; Nova's 404s for a
    group that does not exist, is not the server's, or a server without a port."""
    client = world.member()
    server_id = world.boot(client)

    def change(action: str, name: object, member: ComputeClient = client) -> requests.Response:
        return member.action(server_id, {action: {"name": name}})

    def not_found(resp: requests.Response) -> str:
        assert resp.status_code == 404, resp.text
        return resp.json()["itemNotFound"]["message"]

    assert client.show(server_id)["security_groups"] == [{"name": "default"}]
    # Already in it: nothing changes.
    assert change("addSecurityGroup", "default").status_code == 202
    assert client.show(server_id)["security_groups"] == [{"name": "default"}]
    removed = change("removeSecurityGroup", "default")
    assert removed.status_code == 202 and not removed.content, removed.text
    assert "security_groups" not in client.show(server_id)
    [listed] = client.call("GET", "/servers/detail").json()["servers"]
    assert "security_groups" not in listed
    assert "not associated" in not_found(change("removeSecurityGroup", "default"))
    for action in ("addSecurityGroup", "removeSecurityGroup"):
        assert "web is not found" in not_found(change(action, "web"))
        for body in ({}, {"name": ""}, {"name": 1}, {"name": "default", "x": 1}, None):
            resp = client.action(server_id, {action: body})
            assert resp.status_code == 400, (action, body, resp.text)
        blank = change(action, "  ")
        assert blank.status_code == 400 and "cannot be empty" in blank.text
    assert change("addSecurityGroup", "default").status_code == 202
    assert client.show(server_id)["security_groups"] == [{"name": "default"}]
    # Another project's server is not found; a server with no port has no group to change.
    assert change("removeSecurityGroup", "default", world.member()).status_code == 404
    portless = world.boot(client.at("2.37"), networks="none")
    resp = client.action(portless, {"addSecurityGroup": {"name": "default"}})
    assert "could not be found as device id" in not_found(resp)


def test_locks(world: World) -> None:
    client = world.member("2.73")
    server_id = world.boot(client)
    too_early = client.at("2.72").action(server_id, {"lock": {"locked_reason": "why"}})
    assert too_early.status_code == 400
    assert client.action(server_id, {"lock": {"locked_reason": "maintenance"}}).status_code == 202
    shown = client.show(server_id)
    assert shown["locked"] is True and shown["locked_reason"] == "maintenance"
    assert client.call("GET", "/servers/detail", params={"locked": "true"}).json()["servers"]
    assert not client.call("GET", "/servers", params={"locked": "false"}).json()["servers"]
    for body in ({"os-stop": None}, {"reboot": {"type": "HARD"}}, {"forceDelete": None}):
        assert "is locked" in conflict(client.action(server_id, body))
    assert "is locked" in conflict(client.call("DELETE", f"/servers/{server_id}"))
    meta = client.call("POST", f"/servers/{server_id}/metadata", json={"metadata": {"k": "v"}})
    assert "is locked" in conflict(meta)
    # An administrator acts on a locked server, and may lock it in turn.
    assert world.admin.action(server_id, {"os-stop": None}).status_code == 202
    client.wait(server_id, "SHUTOFF")
    assert client.action(server_id, {"unlock": None}).status_code == 202
    assert client.show(server_id)["locked_reason"] is None
    assert world.admin.action(server_id, {"lock": None}).status_code == 202
    refused = client.action(server_id, {"unlock": None})
    assert refused.status_code == 403, refused.text
    assert world.admin.action(server_id, {"unlock": None}).status_code == 202
    assert client.show(server_id)["locked"] is False
    assert client.at("2.1").action(server_id, {"lock": {"locked_reason": "x"}}).status_code == 400
    assert client.action(server_id, {"os-start": None}).status_code == 202
    client.wait(server_id, "ACTIVE")


def test_admin_state_actions(world: World) -> None:
    """os-resetState, injectNetworkInfo and restore, as an administrator and as not."""
    client = world.member()
    server_id = world.boot(client)
    for body in ({"os-resetState": {"state": "error"}}, {"injectNetworkInfo": None}):
        assert client.action(server_id, body).status_code == 403
    assert world.admin.action(server_id, {"os-resetState": {"state": "error"}}).status_code == 202
    shown = client.show(server_id)
    assert (shown["status"], shown["OS-EXT-STS:task_state"]) == ("ERROR", None)
    # The node still reports it running: that does not undo an administrator's reset.
    time.sleep(1.5)
    assert client.show(server_id)["status"] == "ERROR"
    listed = world.admin.call("GET", "/servers", params={"status": "ERROR", "all_tenants": "1"})
    assert server_id in {s["id"] for s in listed.json()["servers"]}
    assert world.admin.action(server_id, {"os-resetState": {"state": "active"}}).status_code == 202
    assert client.show(server_id)["status"] == "ACTIVE"
    actions = client.call("GET", f"/servers/{server_id}/os-instance-actions").json()
    assert [a["action"] for a in actions["instanceActions"]][:2] == ["resetState", "resetState"]
    for state in ("invalid", None):
        bad = world.admin.action(server_id, {"os-resetState": {"state": state}})
        assert bad.status_code == 400, bad.text
    missing = world.admin.action("0" * 36, {"os-resetState": {"state": "active"}})
    assert missing.status_code == 404
    assert world.admin.action(server_id, {"injectNetworkInfo": {}}).status_code == 202
    assert "vm_state active" in conflict(client.action(server_id, {"restore": {}}))
    # Before 2.56 a migrate carries nothing, as null or as an empty object (tempest's).
    assert world.admin.action(server_id, {"migrate": {"host": "x"}}).status_code == 400
    assert world.admin.action("0" * 36, {"migrate": {}}).status_code == 404


def test_force_delete(world: World) -> None:
    client = world.member()
    server_id = world.boot(client)
    assert client.action(server_id, {"forceDelete": None}).status_code == 202
    client.wait_gone(server_id)


def test_metadata(world: World) -> None:
    client = world.member()
    server_id = world.boot(client, metadata={"a": "1"})
    base = f"/servers/{server_id}/metadata"
    assert client.call("GET", base).json() == {"metadata": {"a": "1"}}
    merged = client.call("POST", base, json={"metadata": {"b": "2", "a": "one"}})
    assert merged.status_code == 200 and merged.json() == {"metadata": {"a": "one", "b": "2"}}
    replaced = client.call("PUT", base, json={"metadata": {"c": "3"}})
    assert replaced.json() == {"metadata": {"c": "3"}}
    assert client.call("GET", base).json() == {"metadata": {"c": "3"}}
    item = client.call("PUT", f"{base}/d", json={"meta": {"d": "4"}})
    assert item.status_code == 200 and item.json() == {"meta": {"d": "4"}}
    assert client.call("GET", f"{base}/d").json() == {"meta": {"d": "4"}}
    assert client.call("PUT", f"{base}/d", json={"meta": {"e": "4"}}).status_code == 400
    assert client.call("PUT", f"{base}/d", json={"meta": {"d": "4", "e": "5"}}).status_code == 400
    assert client.call("DELETE", f"{base}/d").status_code == 204
    assert client.call("GET", f"{base}/d").status_code == 404
    assert client.call("DELETE", f"{base}/d").status_code == 404
    assert client.call("POST", base, json={"metadata": {"bad/key": "x"}}).status_code == 400
    assert client.call("POST", base, json={"metadata": {"k": "x" * 256}}).status_code == 400
    assert client.call("POST", base, json={"metadata": {"k": 5}}).status_code == 400
    assert client.call("POST", base, json={"meta": {}}).status_code == 400
    many = {f"k{i}": "v" for i in range(128)}
    over = client.call("POST", base, json={"metadata": many})
    assert over.status_code == 403 and "128" in over.json()["forbidden"]["message"]
    assert client.show(server_id)["metadata"] == {"c": "3"}


def test_tags(world: World) -> None:
    client = world.member("2.26")
    server_id = world.boot(client)
    base = f"/servers/{server_id}/tags"
    assert client.at("2.25").call("GET", base).status_code == 404
    assert client.call("GET", base).json() == {"tags": []}
    added = client.call("PUT", f"{base}/red")
    assert added.status_code == 201 and added.headers["Location"].endswith(f"{base}/red")
    again = client.call("PUT", f"{base}/red")
    assert again.status_code == 204 and again.headers["Location"].endswith(f"{base}/red")
    assert client.call("GET", f"{base}/red").status_code == 204
    assert client.call("GET", f"{base}/blue").status_code == 404
    replaced = client.call("PUT", base, json={"tags": ["b", "a", "a"]})
    assert replaced.status_code == 200 and replaced.json() == {"tags": ["a", "b"]}
    assert client.show(server_id)["tags"] == ["a", "b"]
    assert client.call("DELETE", f"{base}/a").status_code == 204
    assert client.call("DELETE", f"{base}/a").status_code == 404
    assert client.call("PUT", f"{base}/a,b").status_code == 400
    assert client.call("PUT", f"{base}/{'x' * 61}").status_code == 400
    assert client.call("PUT", base, json={"tags": [f"t{i}" for i in range(51)]}).status_code == 400
    assert client.call("PUT", base, json={"tags": "a"}).status_code == 400
    fifty = client.call("PUT", base, json={"tags": [f"t{i}" for i in range(50)]})
    assert fifty.status_code == 200
    assert client.call("PUT", f"{base}/one-more").status_code == 400
    assert client.call("DELETE", base).status_code == 204
    assert client.call("GET", base).json() == {"tags": []}


def events_of(client: ComputeClient, server_id: str, request_id: str) -> list[dict]:
    resp = client.call("GET", f"/servers/{server_id}/os-instance-actions/{request_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()["instanceAction"].get("events")


def test_instance_actions(world: World) -> None:
    client = world.member("2.62")
    server_id = world.boot(client)
    stop = client.action(server_id, {"os-stop": None})
    client.wait(server_id, "SHUTOFF")
    client.action(server_id, {"os-start": None})
    client.wait(server_id, "ACTIVE")
    listed = client.call("GET", f"/servers/{server_id}/os-instance-actions").json()
    actions = listed["instanceActions"]
    assert [a["action"] for a in actions] == ["start", "stop", "create"]
    assert set(actions[0]) == {
        "action", "instance_uuid", "message", "project_id", "request_id", "start_time",
        "user_id", "updated_at",
    }  # fmt: skip
    assert actions[1]["request_id"] == stop.headers["x-openstack-request-id"]
    [event] = events_of(client, server_id, actions[1]["request_id"])
    assert event["event"] == "compute_stop_instance" and event["result"] == "Success"
    assert event["finish_time"] >= event["start_time"] and len(event["hostId"]) == 56
    assert "host" not in event and "traceback" not in event
    admin_event = events_of(world.admin.at("2.62"), server_id, actions[1]["request_id"])[0]
    assert admin_event["host"] in world.nodes.hostnames and "traceback" in admin_event
    # Events are for administrators before 2.51; the action itself is for everyone.
    assert events_of(client.at("2.50"), server_id, actions[1]["request_id"]) is None
    assert (
        "updated_at"
        not in client.at("2.57")
        .call("GET", f"/servers/{server_id}/os-instance-actions")
        .json()["instanceActions"][0]
    )
    page = client.call(
        "GET", f"/servers/{server_id}/os-instance-actions", params={"limit": 2}
    ).json()
    assert [a["action"] for a in page["instanceActions"]] == ["start", "stop"]
    marker = page["instanceActions"][-1]["request_id"]
    assert page["links"][0]["rel"] == "next" and marker in page["links"][0]["href"]
    rest = client.call(
        "GET", f"/servers/{server_id}/os-instance-actions", params={"marker": marker}
    ).json()["instanceActions"]
    assert [a["action"] for a in rest] == ["create"]
    bad = client.call("GET", f"/servers/{server_id}/os-instance-actions", params={"marker": "x"})
    assert bad.status_code == 400
    assert (
        client.call("GET", f"/servers/{server_id}/os-instance-actions/req-nope").status_code == 404
    )
    # A deleted server's actions stay readable from 2.21.
    client.call("DELETE", f"/servers/{server_id}")
    gone = client.at("2.21").call("GET", f"/servers/{server_id}/os-instance-actions").json()
    assert gone["instanceActions"][0]["action"] == "delete"
    early = client.at("2.20").call("GET", f"/servers/{server_id}/os-instance-actions")
    assert early.status_code == 404


def test_failed_build_shows_a_fault_and_holds_the_quota_until_deleted(world: World) -> None:
    client = world.member("2.51")
    created = client.create(
        imageRef=world.image["id"],
        flavorRef=TINY,
        networks="auto",
        metadata={"fake_fail": "launch"},
    )
    server_id = created["server"]["id"]
    server = client.wait(server_id, "ERROR", timeout=60)
    fault = server["fault"]
    assert fault["code"] == 500 and "No valid host" in fault["message"]
    assert set(fault) == {"code", "created", "message"}
    assert fault["created"].endswith("Z")
    assert "details" in world.admin.show(server_id)["fault"]
    # Metadata and tags change only on a settled, healthy server (Nova's rule).
    refused = client.call("POST", f"/servers/{server_id}/metadata", json={"metadata": {"a": "b"}})
    assert "vm_state error" in conflict(refused)
    assert "vm_state error" in conflict(client.call("PUT", f"/servers/{server_id}/tags/t"))
    # As in Nova, it counts against the quota until deleted.
    limits = client.call("GET", "/limits").json()["limits"]["absolute"]
    assert limits["totalInstancesUsed"] == 1
    actions = client.call("GET", f"/servers/{server_id}/os-instance-actions").json()
    [create] = actions["instanceActions"]
    deadline = time.monotonic() + 10
    while True:
        [event] = events_of(client, server_id, create["request_id"])
        if event["result"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert event["result"] == "Error"
    assert client.call("DELETE", f"/servers/{server_id}").status_code == 204
    client.wait_gone(server_id)
    limits = client.call("GET", "/limits").json()["limits"]["absolute"]
    assert limits["totalInstancesUsed"] == 0
