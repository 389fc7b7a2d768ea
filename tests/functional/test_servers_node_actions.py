"""Server actions the compute nodes carry out, over real HTTP through the real
scheduler, controller and fake launchers: pause/unpause, suspend/resume, rebuild,
resize with confirm and revert, createImage (the node uploads the disk to the image
API with its grant), createBackup (a snapshot, then the rotation) and
os-getConsoleOutput (the node answers over SSNTP).

Each action's refusals are Nova's: 409 in the wrong state, 400 for a bad body,
404 for another project's server, 403 when the quota is exceeded; a resize no
node can take ends with the server ACTIVE on its old flavor and an error event.
"""

from __future__ import annotations

import hashlib
import secrets
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.cloud import Cloud
from tests.support.compute import TINY, ComputeClient, World, compute_world, upload_image
from tests.support.core import wait_until
from tests.support.identity import create_user, grant, role_id

MEDIUM = "3"  # m1.medium: 4096 MB, 2 vCPUs, 40 GB


@pytest.fixture(scope="module")
def world(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with compute_world(cloud, tmp_path_factory.mktemp("node-actions")) as world:
        yield world


def conflict(resp) -> str:  # noqa: ANN001 - requests.Response
    assert resp.status_code == 409, resp.text
    return resp.json()["conflictingRequest"]["message"]


def bad_request(resp) -> str:  # noqa: ANN001 - requests.Response
    assert resp.status_code == 400, resp.text
    return resp.json()["badRequest"]["message"]


def actions_of(client: ComputeClient, server_id: str) -> list[dict[str, Any]]:
    resp = client.call("GET", f"/servers/{server_id}/os-instance-actions")
    assert resp.status_code == 200, resp.text
    return resp.json()["instanceActions"]


def event_of(client: ComputeClient, server_id: str, action: str, timeout: float = 15) -> dict:
    """The (single) event of the newest `action` on the server, once it has a result."""
    deadline = time.monotonic() + timeout
    while True:
        [found, *_] = [a for a in actions_of(client, server_id) if a["action"] == action]
        resp = client.at("2.51").call(
            "GET", f"/servers/{server_id}/os-instance-actions/{found['request_id']}"
        )
        [event] = resp.json()["instanceAction"]["events"]
        if event["result"] or time.monotonic() > deadline:
            return event
        time.sleep(0.2)


def used(client: ComputeClient) -> dict[str, int]:
    absolute = client.call("GET", "/limits").json()["limits"]["absolute"]
    return {"cores": absolute["totalCoresUsed"], "ram": absolute["totalRAMUsed"]}


def test_pause_unpause_suspend_resume(world: World) -> None:
    client = world.member()
    server_id = world.boot(client)
    assert client.action(server_id, {"pause": None}).status_code == 202
    paused = client.wait(server_id, "PAUSED")
    assert paused["OS-EXT-STS:vm_state"] == "paused" and paused["OS-EXT-STS:power_state"] == 3
    listed = client.call("GET", "/servers", params={"status": "PAUSED"}).json()["servers"]
    assert [s["id"] for s in listed] == [server_id]
    assert "vm_state paused" in conflict(client.action(server_id, {"pause": None}))
    assert "vm_state paused" in conflict(client.action(server_id, {"suspend": None}))
    assert "vm_state paused" in conflict(client.action(server_id, {"os-stop": None}))
    assert client.action(server_id, {"unpause": {}}).status_code == 202
    assert client.wait(server_id, "ACTIVE")["OS-EXT-STS:power_state"] == 1
    assert "vm_state active" in conflict(client.action(server_id, {"unpause": None}))
    assert "vm_state active" in conflict(client.action(server_id, {"resume": None}))
    assert client.action(server_id, {"suspend": None}).status_code == 202
    suspended = client.wait(server_id, "SUSPENDED")
    assert suspended["OS-EXT-STS:vm_state"] == "suspended"
    assert suspended["OS-EXT-STS:power_state"] == 7
    assert client.action(server_id, {"resume": None}).status_code == 202
    client.wait(server_id, "ACTIVE")
    # A paused server can be deleted; the pause counted nothing twice.
    assert client.action(server_id, {"pause": None}).status_code == 202
    client.wait(server_id, "PAUSED")
    names = [a["action"] for a in actions_of(client, server_id)]
    assert names == ["pause", "resume", "suspend", "unpause", "pause", "create"]
    for action in ("pause", "suspend", "resume", "unpause"):
        event = event_of(client, server_id, action)
        assert event["event"] == f"compute_{action}_instance" and event["result"] == "Success"
    assert client.call("DELETE", f"/servers/{server_id}").status_code == 204
    client.wait_gone(server_id)
    assert used(client) == {"cores": 0, "ram": 0}


def test_power_actions_refused(world: World) -> None:
    client = world.member("2.73")
    server_id = world.boot(client)
    other = world.member()
    for action in ("pause", "unpause", "suspend", "resume"):
        assert other.action(server_id, {action: None}).status_code == 404
    assert client.action(server_id, {"pause": None, "suspend": None}).status_code == 400
    # A reader of the project sees the server but may not act on it.
    password = secrets.token_urlsafe(12)
    user = create_user(world.cloud, world.admin.token, password)
    grant(
        world.cloud,
        world.admin.token,
        client.project_id,
        user["id"],
        role_id(world.cloud, world.admin.token, "reader"),
    )
    project = world.cloud.request(
        "GET", f"/identity/v3/projects/{client.project_id}", world.admin.token
    ).json()["project"]
    reader = ComputeClient(
        world.cloud, world.cloud.token(user["name"], password, project["name"]), "2.1"
    )
    for body in (
        {"pause": None},
        {"resize": {"flavorRef": MEDIUM}},
        {"rebuild": {"imageRef": world.image["id"]}},
        {"createImage": {"name": "n"}},
        {"os-getConsoleOutput": {}},
    ):
        refused = reader.action(server_id, body)
        assert refused.status_code == 403, (body, refused.text)
    assert client.action("0" * 36, {"pause": None}).status_code == 404
    assert client.action(server_id, {"lock": {"locked_reason": "hands off"}}).status_code == 202
    assert "is locked" in conflict(client.action(server_id, {"pause": None}))
    assert "is locked" in conflict(client.action(server_id, {"suspend": None}))
    assert world.admin.action(server_id, {"pause": None}).status_code == 202
    client.wait(server_id, "PAUSED")
    assert client.action(server_id, {"unlock": None}).status_code == 202
    assert client.action(server_id, {"unpause": None}).status_code == 202
    client.wait(server_id, "ACTIVE")
    # A failure on the node clears the task and leaves the server as it was.
    failing = world.boot(client, metadata={"fake_fail": "suspend"})
    assert client.action(failing, {"suspend": None}).status_code == 202
    assert client.wait(failing, "ACTIVE")["OS-EXT-STS:power_state"] == 1
    assert event_of(client, failing, "suspend")["result"] == "Error"


def test_console_output(world: World) -> None:
    client = world.member()
    server_id = world.boot(client)
    path = f"/servers/{server_id}/action"

    def output(body: dict[str, Any]) -> str:
        resp = client.call("POST", path, json={"os-getConsoleOutput": body})
        assert resp.status_code == 200, resp.text
        assert set(resp.json()) == {"output"}
        return resp.json()["output"]

    full = output({})
    prompt = f"instance-{server_id[:8]} login: "
    assert full.startswith("[    0.000000] Linux version") and full.endswith(prompt)
    assert f"instance {server_id} up (image {world.image['id']})" in full
    assert output({"length": None}) == full == output({"length": -1})
    assert output({"length": 1}) == prompt
    assert output({"length": "2"}).split("\n") == [full.split("\n")[-2], prompt]
    assert output({"length": 0}) == ""
    for length in (-2, "x", "1.5", [1]):
        resp = client.call("POST", path, json={"os-getConsoleOutput": {"length": length}})
        assert resp.status_code == 400, (length, resp.text)
    assert client.call("POST", path, json={"os-getConsoleOutput": {"lines": 1}}).status_code == 400
    other = world.member()
    assert other.action(server_id, {"os-getConsoleOutput": {}}).status_code == 404
    # A stopped server's log is still there; a hard reboot adds a boot.
    client.action(server_id, {"os-stop": None})
    client.wait(server_id, "SHUTOFF")
    assert output({"length": 1}).endswith("reboot: Power down")
    client.action(server_id, {"reboot": {"type": "HARD"}})
    client.wait(server_id, "ACTIVE")
    rebooted = output({"length": 10})
    assert "boot 2" in rebooted and len(rebooted.split("\n")) == 10  # what tempest counts
    # No console on the node: Nova's 404.
    failing = world.boot(client, metadata={"fake_fail": "console"})
    resp = client.action(failing, {"os-getConsoleOutput": {}})
    assert resp.status_code == 404, resp.text
    assert "does not have a console" in resp.json()["itemNotFound"]["message"]


def test_rebuild(world: World) -> None:
    client = world.member("2.57")
    server_id = world.boot(client, metadata={"a": "1"}, name="before")
    before = client.show(server_id)
    new_image = upload_image(world.cloud, world.admin.token, visibility="public")
    resp = client.action(
        server_id,
        {
            "rebuild": {
                "imageRef": new_image["id"],
                "name": "after",
                "metadata": {"b": "2"},
                "adminPass": "s3cret-pass",
                "description": "rebuilt",
                "user_data": "aGVsbG8=",
            }
        },
    )
    assert resp.status_code == 202, resp.text
    server = resp.json()["server"]
    assert server["id"] == server_id and server["status"] == "REBUILD"
    assert server["name"] == "after" and server["metadata"] == {"b": "2"}
    assert server["image"]["id"] == new_image["id"] and server["adminPass"] == "s3cret-pass"
    assert server["description"] == "rebuilt" and server["user_data"] == "aGVsbG8="
    assert server["key_name"] is None and "OS-EXT-STS:vm_state" not in server
    assert resp.headers["Location"].endswith(f"/servers/{server_id}")
    after = client.wait(server_id, "ACTIVE")
    assert after["addresses"] == before["addresses"] and after["image"]["id"] == new_image["id"]
    assert after["metadata"] == {"b": "2"} and after["name"] == "after"
    assert event_of(client, server_id, "rebuild")["event"] == "compute_rebuild_instance"
    # The node rebuilt it: a second boot on its console, which names the new image.
    console = client.action(server_id, {"os-getConsoleOutput": {"length": 5}}).json()["output"]
    assert f"(image {new_image['id']})" in console
    # At 2.1 the answer has none of the later fields, and a generated password.
    plain = client.at("2.1").action(server_id, {"rebuild": {"imageRef": world.image["id"]}})
    assert plain.status_code == 202, plain.text
    shown = plain.json()["server"]
    assert len(shown["adminPass"]) >= 8
    for later in ("locked", "description", "tags", "key_name", "user_data", "server_groups"):
        assert later not in shown, later
    assert shown["metadata"] == {"b": "2"}  # kept when not given
    client.wait(server_id, "ACTIVE")
    # A stopped server is rebuilt and stays stopped.
    client.action(server_id, {"os-stop": None})
    client.wait(server_id, "SHUTOFF")
    resp = client.action(server_id, {"rebuild": {"imageRef": new_image["id"]}})
    assert resp.status_code == 202 and resp.json()["server"]["status"] == "REBUILD"
    assert client.wait(server_id, "SHUTOFF")["image"]["id"] == new_image["id"]


def test_rebuild_refusals(world: World) -> None:
    client = world.member()
    server_id = world.boot(client)
    for body in (
        {"rebuild": {}},
        {"rebuild": {"imageRef": "not-a-uuid"}},
        {"rebuild": {"imageRef": world.image["id"], "description": "only from 2.19"}},
        {"rebuild": {"imageRef": world.image["id"], "metadata": {"k": 1}}},
        {"rebuild": {"imageRef": world.image["id"], "accessIPv4": "300.1.1.1"}},
        {"rebuild": None},
    ):
        assert client.action(server_id, body).status_code == 400, body
    missing = client.action(server_id, {"rebuild": {"imageRef": str(uuid.uuid4())}})
    assert "Cannot find image for rebuild" in bad_request(missing)
    private = upload_image(world.cloud, world.admin.token)  # the admin project's own
    assert client.action(server_id, {"rebuild": {"imageRef": private["id"]}}).status_code == 400
    too_many = {f"k{i}": "v" for i in range(129)}
    refused = client.action(
        server_id, {"rebuild": {"imageRef": world.image["id"], "metadata": too_many}}
    )
    assert refused.status_code == 403, refused.text
    other = world.member()
    assert other.action(server_id, {"rebuild": {"imageRef": world.image["id"]}}).status_code == 404
    client.action(server_id, {"pause": None})
    client.wait(server_id, "PAUSED")
    paused = client.action(server_id, {"rebuild": {"imageRef": world.image["id"]}})
    assert "Cannot 'rebuild' instance" in conflict(paused) and "vm_state paused" in conflict(paused)
    # A rebuild that fails on the node leaves the server in error, as in Nova.
    failing = world.boot(client, metadata={"fake_fail": "rebuild"})
    assert client.action(failing, {"rebuild": {"imageRef": world.image["id"]}}).status_code == 202
    errored = client.wait(failing, "ERROR")
    assert "REBUILD failed" in errored["fault"]["message"]


def test_a_server_in_error_holds_its_quota_and_can_be_brought_back(world: World) -> None:
    """As in Nova: a server in error counts against the quota until it is deleted, a
    rebuild or a hard reboot brings it back to ACTIVE, and one that never ran on any
    node cannot be rebuilt (409)."""
    client = world.member()

    def settled(server_id: str) -> dict[str, Any]:
        # ComputeClient.wait gives up on ERROR, which is where these servers start from.
        wait_until(lambda: client.show(server_id)["OS-EXT-STS:task_state"] is None)
        return client.show(server_id)

    def fail_rebuild(server_id: str) -> None:
        body = {"rebuild": {"imageRef": world.image["id"], "metadata": {"fake_fail": "rebuild"}}}
        assert client.action(server_id, body).status_code == 202
        client.wait(server_id, "ERROR")

    server_id = world.boot(client)
    fail_rebuild(server_id)
    assert used(client) == {"cores": 1, "ram": 128}
    other_image = upload_image(world.cloud, world.admin.token, visibility="public")
    back = {"rebuild": {"imageRef": other_image["id"], "metadata": {}}}
    assert client.action(server_id, back).status_code == 202
    rebuilt = settled(server_id)
    assert rebuilt["status"] == "ACTIVE", rebuilt
    assert rebuilt["image"]["id"] == other_image["id"] and "fault" not in rebuilt
    assert used(client) == {"cores": 1, "ram": 128}

    fail_rebuild(server_id)
    assert client.action(server_id, {"reboot": {"type": "HARD"}}).status_code == 202
    rebooted = settled(server_id)
    assert (rebooted["status"], rebooted["OS-EXT-STS:power_state"]) == ("ACTIVE", 1), rebooted

    never_ran = client.create(
        imageRef=world.image["id"], flavorRef=TINY, metadata={"fake_fail": "launch"}
    )["server"]["id"]
    client.wait(never_ran, "ERROR", timeout=60)
    assert used(client) == {"cores": 2, "ram": 256}
    refused = client.action(never_ran, {"rebuild": {"imageRef": world.image["id"]}})
    assert f"Instance {never_ran} is not ready" in conflict(refused)
    for doomed in (server_id, never_ran):
        assert client.call("DELETE", f"/servers/{doomed}").status_code == 204
    assert used(client) == {"cores": 0, "ram": 0}


def test_resize_confirm_and_revert(world: World) -> None:
    client = world.member("2.47")
    server_id = world.boot(client)
    assert used(client) == {"cores": 1, "ram": 128}
    assert client.action(server_id, {"resize": {"flavorRef": MEDIUM}}).status_code == 202
    client.wait(server_id, "VERIFY_RESIZE")
    resized = client.show(server_id)
    assert resized["OS-EXT-STS:vm_state"] == "resized"
    assert resized["flavor"]["original_name"] == "m1.medium" and resized["flavor"]["vcpus"] == 2
    assert used(client) == {"cores": 2, "ram": 4096}  # the larger flavor is held until decided
    assert "vm_state resized" in conflict(client.action(server_id, {"resize": {"flavorRef": TINY}}))
    assert "vm_state resized" in conflict(client.action(server_id, {"pause": None}))
    confirmed = client.action(server_id, {"confirmResize": None})
    assert confirmed.status_code == 204 and not confirmed.content
    client.wait(server_id, "ACTIVE")
    assert client.show(server_id)["flavor"]["original_name"] == "m1.medium"
    assert used(client) == {"cores": 2, "ram": 4096}
    assert "vm_state active" in conflict(client.action(server_id, {"confirmResize": None}))
    assert "vm_state active" in conflict(client.action(server_id, {"revertResize": None}))
    # Down again, then changed our mind: revert goes back to m1.medium, quota included.
    assert client.action(server_id, {"resize": {"flavorRef": TINY}}).status_code == 202
    client.wait(server_id, "VERIFY_RESIZE")
    assert client.show(server_id)["flavor"]["original_name"] == "m1.nano"
    assert used(client) == {"cores": 2, "ram": 4096}
    assert client.action(server_id, {"revertResize": {}}).status_code == 202
    client.wait(server_id, "ACTIVE")
    assert client.show(server_id)["flavor"]["original_name"] == "m1.medium"
    assert used(client) == {"cores": 2, "ram": 4096}
    # Before 2.47 the flavor is a link to it.
    assert client.at("2.1").show(server_id)["flavor"]["id"] == MEDIUM
    names = [a["action"] for a in actions_of(client, server_id)]
    assert names == ["revertResize", "resize", "confirmResize", "resize", "create"]
    assert event_of(client, server_id, "revertResize")["result"] == "Success"
    assert event_of(client, server_id, "resize")["event"] == "compute_prep_resize"
    # A stopped server is resized stopped, and stays stopped once confirmed.
    client.action(server_id, {"os-stop": None})
    client.wait(server_id, "SHUTOFF")
    assert client.action(server_id, {"resize": {"flavorRef": TINY}}).status_code == 202
    client.wait(server_id, "VERIFY_RESIZE")
    assert client.action(server_id, {"confirmResize": None}).status_code == 204
    client.wait(server_id, "SHUTOFF")
    assert client.show(server_id)["flavor"]["original_name"] == "m1.nano"
    assert used(client) == {"cores": 1, "ram": 128}
    assert client.call("DELETE", f"/servers/{server_id}").status_code == 204
    client.wait_gone(server_id)
    assert used(client) == {"cores": 0, "ram": 0}


def test_resize_refusals(world: World) -> None:
    client = world.member()
    server_id = world.boot(client)
    same = client.action(server_id, {"resize": {"flavorRef": TINY}})
    assert "must change flavor" in bad_request(same)
    assert "could not be found" in bad_request(
        client.action(server_id, {"resize": {"flavorRef": "no-such-flavor"}})
    )
    for body in (
        {"resize": {}},
        {"resize": {"flavorRef": ""}},
        {"resize": {"flavorRef": MEDIUM, "x": 1}},
    ):
        assert client.action(server_id, body).status_code == 400, body
    other = world.member()
    assert other.action(server_id, {"resize": {"flavorRef": MEDIUM}}).status_code == 404
    assert other.action(server_id, {"confirmResize": None}).status_code == 404
    # Quota: the growth must fit, checked when asked.
    quota = {"quota_set": {"cores": 1}}
    path = f"/os-quota-sets/{client.project_id}"
    assert world.admin.call("PUT", path, json=quota).status_code == 200
    over = client.action(server_id, {"resize": {"flavorRef": MEDIUM}})
    assert over.status_code == 403, over.text
    assert "Quota exceeded for cores" in over.json()["forbidden"]["message"]
    assert client.show(server_id)["status"] == "ACTIVE"
    assert used(client) == {"cores": 1, "ram": 128}


def test_resize_no_node_has_room(world: World) -> None:
    """The node holding the server cannot take the larger flavor: the server stays
    ACTIVE on its old flavor, the quota reserved for the new one is freed, and the
    resize action ends with an error event (Nova's "no valid host")."""
    huge = world.admin.call(
        "POST",
        "/flavors",
        json={
            "flavor": {"name": f"huge-{uuid.uuid4().hex[:6]}", "ram": 40000, "vcpus": 1, "disk": 1}
        },
    )
    assert huge.status_code == 200, huge.text
    client = world.member("2.47")
    server_id = world.boot(client)
    resp = client.action(server_id, {"resize": {"flavorRef": huge.json()["flavor"]["id"]}})
    assert resp.status_code == 202, resp.text
    event = event_of(client, server_id, "resize")
    assert event["result"] == "Error", event
    client.wait(server_id, "ACTIVE")
    server = client.show(server_id)
    assert server["flavor"]["original_name"] == "m1.nano" and "fault" not in server
    assert used(client) == {"cores": 1, "ram": 128}
    # The server is as usable as before.
    assert client.action(server_id, {"resize": {"flavorRef": MEDIUM}}).status_code == 202
    client.wait(server_id, "VERIFY_RESIZE")


def test_create_image(world: World) -> None:
    client = world.member()
    server_id = world.boot(client)
    resp = client.action(server_id, {"createImage": {"name": "snap", "metadata": {"purpose": "x"}}})
    assert resp.status_code == 202 and not resp.content, resp.text
    location = resp.headers["Location"]
    image_id = location.rsplit("/", 1)[-1]
    assert location.endswith(f"/image/v2/images/{image_id}")
    image_path = f"/image/v2/images/{image_id}"

    def image() -> dict[str, Any]:
        found = world.cloud.request("GET", image_path, client.token)
        assert found.status_code == 200, found.text
        return found.json()

    assert image()["status"] in ("queued", "saving", "active")
    wait_until(lambda: image()["status"] == "active", timeout=30, what="the snapshot")
    snap = image()
    expected = f"ciaostack fake disk\ninstance {server_id}\nimage {world.image['id']}\n"
    data = expected.encode().ljust(64 * 1024, b"\0")
    assert snap["owner"] == client.project_id and snap["visibility"] == "private"
    assert snap["name"] == "snap" and snap["size"] == len(data)
    assert snap["checksum"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert (snap["disk_format"], snap["container_format"]) == ("raw", "bare")
    assert snap["image_type"] == "snapshot" and snap["instance_uuid"] == server_id
    assert snap["base_image_ref"] == world.image["id"] and snap["purpose"] == "x"
    assert snap["user_id"] and snap["min_disk"] == 1
    download = world.cloud.request("GET", f"{image_path}/file", client.token)
    assert download.status_code == 200 and download.content == data
    client.wait(server_id, "ACTIVE")
    assert event_of(client, server_id, "createImage")["result"] == "Success"
    # 2.45: the id in the body; a paused server can be snapshotted, and boots again.
    client.action(server_id, {"pause": None})
    client.wait(server_id, "PAUSED")
    later = client.at("2.45").action(server_id, {"createImage": {"name": "snap2"}})
    assert later.status_code == 202 and "Location" not in later.headers
    second = later.json()["image_id"]
    wait_until(
        lambda: (
            world.cloud.request("GET", f"/image/v2/images/{second}", client.token).json()["status"]
            == "active"
        ),
        timeout=30,
        what="the second snapshot",
    )
    client.wait(server_id, "PAUSED")
    booted = world.boot(client, imageRef=image_id)
    assert client.show(booted)["image"]["id"] == image_id


def test_create_image_refusals(world: World) -> None:
    client = world.member()
    server_id = world.boot(client)
    for body in (
        {"createImage": {}},
        {"createImage": {"name": ""}},
        {"createImage": {"name": "n", "metadata": {"k": 1}}},
        {"createImage": {"name": "n", "extra": 1}},
    ):
        assert client.action(server_id, body).status_code == 400, body
    reserved = client.action(server_id, {"createImage": {"name": "n", "metadata": {"size": "1"}}})
    assert reserved.status_code == 400, reserved.text
    other = world.member()
    assert other.action(server_id, {"createImage": {"name": "n"}}).status_code == 404
    broken = client.create(
        imageRef=world.image["id"], flavorRef=TINY, metadata={"fake_fail": "launch"}
    )
    client.wait(broken["server"]["id"], "ERROR", timeout=60)
    refused = client.action(broken["server"]["id"], {"createImage": {"name": "n"}})
    assert "Cannot 'createImage'" in conflict(refused) and "vm_state error" in conflict(refused)
    # A snapshot the node fails: the image goes, the server keeps working.
    failing = world.boot(client, metadata={"fake_fail": "snapshot"})
    resp = client.at("2.45").action(failing, {"createImage": {"name": "doomed"}})
    assert resp.status_code == 202, resp.text
    doomed = resp.json()["image_id"]
    assert event_of(client, failing, "createImage")["result"] == "Error"
    client.wait(failing, "ACTIVE")
    gone = world.cloud.request("GET", f"/image/v2/images/{doomed}", client.token)
    assert gone.status_code == 404


def test_create_backup(world: World) -> None:
    """A backup is a snapshot with a type and a rotation: once a new backup is stored,
    the server's backups of that type beyond the rotation go, oldest first."""
    client = world.member()
    server_id = world.boot(client)

    def backup(name: str, rotation: object, kind: str = "daily", version: str = "2.45") -> str:
        body = {"name": name, "backup_type": kind, "rotation": rotation}
        resp = client.at(version).action(server_id, {"createBackup": body})
        assert resp.status_code == 202, resp.text
        assert event_of(client, server_id, "createBackup")["result"] == "Success"
        client.wait(server_id, "ACTIVE")
        if version == "2.45":
            assert "Location" not in resp.headers
            return resp.json()["image_id"]
        assert not resp.content
        return resp.headers.get("Location", "").rsplit("/", 1)[-1]

    def backups(kind: str = "daily") -> list[str]:
        """Names of the server's backups of `kind`, oldest first (as tempest lists them)."""
        params = {
            "image_type": "backup",
            "backup_type": kind,
            "instance_uuid": server_id,
            "sort_key": "created_at",
            "sort_dir": "asc",
        }
        resp = world.cloud.request("GET", "/image/v2/images", client.token, params=params)
        assert resp.status_code == 200, resp.text
        return [image["name"] for image in resp.json()["images"]]

    first = backup("b1", 2, version="2.1")  # before 2.45: the image's URL in Location
    image = world.cloud.request("GET", f"/image/v2/images/{first}", client.token).json()
    assert image["status"] == "active" and image["owner"] == client.project_id
    assert (image["image_type"], image["backup_type"]) == ("backup", "daily")
    assert image["instance_uuid"] == server_id and image["user_id"]
    assert image["base_image_ref"] == world.image["id"]
    backup("b2", 2)
    backup("w1", 1, kind="weekly")
    assert backups() == ["b1", "b2"] and backups("weekly") == ["w1"]
    backup("b3", "2")
    assert backups() == ["b2", "b3"] and backups("weekly") == ["w1"]
    fourth = backup("b4", 1)
    assert backups() == ["b4"]
    assert event_of(client, server_id, "createBackup")["event"] == "compute_backup_instance"
    # A protected backup is kept; rotation 0 deletes every other one, the new one too
    # (and before 2.45 the answer then has no Location).
    protect = world.cloud.request(
        "PATCH",
        f"/image/v2/images/{fourth}",
        client.token,
        json=[{"op": "replace", "path": "/protected", "value": True}],
        headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
    )
    assert protect.status_code == 200, protect.text
    assert backup("b5", 0, version="2.1") == ""
    assert backups() == ["b4"] and backups("weekly") == ["w1"]


def test_create_backup_refusals(world: World) -> None:
    client = world.member()
    server_id = world.boot(client)
    good = {"name": "n", "backup_type": "daily", "rotation": 1}
    for change in (
        {"name": None},
        {"backup_type": None},
        {"rotation": None},
        {"rotation": -1},
        {"rotation": "x"},
        {"rotation": 1.5},
        {"name": ""},
        {"extra": 1},
        {"metadata": {"k": 1}},
    ):
        body = {k: v for k, v in (good | change).items() if v is not None}
        resp = client.action(server_id, {"createBackup": body})
        assert resp.status_code == 400, (body, resp.text)
    other = world.member()
    assert other.action(server_id, {"createBackup": good}).status_code == 404
    broken = client.create(
        imageRef=world.image["id"], flavorRef=TINY, metadata={"fake_fail": "launch"}
    )
    client.wait(broken["server"]["id"], "ERROR", timeout=60)
    refused = client.action(broken["server"]["id"], {"createBackup": good})
    assert "Cannot 'createBackup'" in conflict(refused)
    # A backup the node fails: its image goes and no older backup is rotated out.
    failing = world.boot(client, metadata={"fake_fail": "snapshot"})
    older = upload_image(
        world.cloud,
        client.token,
        image_type="backup",
        backup_type="daily",
        instance_uuid=failing,
    )
    resp = client.at("2.45").action(failing, {"createBackup": good | {"rotation": 0}})
    assert resp.status_code == 202, resp.text
    doomed = resp.json()["image_id"]
    assert event_of(client, failing, "createBackup")["result"] == "Error"
    client.wait(failing, "ACTIVE")
    gone = world.cloud.request("GET", f"/image/v2/images/{doomed}", client.token)
    assert gone.status_code == 404
    kept = world.cloud.request("GET", f"/image/v2/images/{older['id']}", client.token)
    assert kept.status_code == 200, kept.text


def test_snapshot_upload_needs_its_grant(world: World) -> None:
    """The route nodes upload to takes no token, only a valid grant for that image."""
    client = world.member()
    created = world.cloud.request(
        "POST",
        "/image/v2/images",
        client.token,
        json={"name": "target", "disk_format": "raw", "container_format": "bare"},
    )
    image_id = created.json()["id"]
    path = f"/image/internal/snapshots/{image_id}"
    headers = {"Content-Type": "application/octet-stream", "X-Image-Disk-Format": "raw"}
    for token in (None, "", "garbage", "e30.AAAA", f"{'a' * 40}.{'b' * 43}"):
        sent = dict(headers) | ({"X-Upload-Grant": token} if token is not None else {})
        resp = world.cloud.request("PUT", path, headers=sent, data=b"x" * 10)
        assert resp.status_code == 401, (token, resp.text)
    no_format = world.cloud.request(
        "PUT", path, headers={"Content-Type": "application/octet-stream"}, data=b"x"
    )
    assert no_format.status_code == 400
    listed = world.cloud.request("GET", f"/image/v2/images/{image_id}", client.token).json()
    assert listed["status"] == "queued"


def test_console_output_when_the_node_is_silent(world: World) -> None:
    """The node holding the server does not answer: 409 after the API's wait, and the
    node is fine again afterwards."""
    client = world.member()
    server_id = world.boot(client)
    host = world.admin.show(server_id)["OS-EXT-SRV-ATTR:host"]
    [launcher] = [p for p in world.nodes.processes if p.name == host]
    assert launcher.proc is not None
    launcher.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        resp = client.action(server_id, {"os-getConsoleOutput": {}})
        assert "did not answer" in conflict(resp) or "not ready" in conflict(resp)
        assert time.monotonic() - started < 30
    finally:
        launcher.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: world.nodes.connected(host), timeout=30, what=f"{host} to come back")

    def answered() -> bool:
        return client.action(server_id, {"os-getConsoleOutput": {}}).status_code == 200

    wait_until(answered, timeout=30, what="the console to answer again")


def test_hard_reboot_of_a_paused_or_suspended_server(world: World) -> None:
    """As Nova: only a hard reboot takes a paused or suspended server back to ACTIVE."""
    client = world.member()
    server_id = world.boot(client)
    for action, status in (("pause", "PAUSED"), ("suspend", "SUSPENDED")):
        assert client.action(server_id, {action: None}).status_code == 202
        client.wait(server_id, status)
        soft = client.action(server_id, {"reboot": {"type": "SOFT"}})
        assert f"vm_state {status.lower()}" in conflict(soft)
        assert client.action(server_id, {"reboot": {"type": "HARD"}}).status_code == 202
        assert client.wait(server_id, "ACTIVE")["OS-EXT-STS:power_state"] == 1


def test_resize_to_a_disk_smaller_than_the_images_minimum(world: World) -> None:
    client = world.member()
    image = upload_image(world.cloud, client.token, min_disk=30)
    server_id = world.boot(client, imageRef=image["id"], flavorRef=MEDIUM)
    small = client.action(server_id, {"resize": {"flavorRef": "2"}})  # m1.small: 20 GB
    assert bad_request(small) == "Flavor's disk is too small for requested image."
    assert client.show(server_id)["status"] == "ACTIVE"


def test_snapshot_upload_grant_is_for_its_own_instances_queued_image(world: World) -> None:
    """A grant is good only for a queued image of its project that is a snapshot of its
    instance; its backup rotation only deletes backups of that instance and project."""
    from ciaostack.core.images.snapshots import Grant, Rotation, UploadGrants

    grants = UploadGrants(world.cloud.home / "keys")
    client, stranger = world.member(), world.member()
    server = str(uuid.uuid4())

    def queued(owner: ComputeClient, **props: str) -> str:
        body = {"name": "snap", **props}
        resp = world.cloud.request("POST", "/image/v2/images", owner.token, json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()["id"]

    def put(image_id: str, grant: Grant) -> int:
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Image-Disk-Format": "raw",
            "X-Upload-Grant": grants.issue(grant),
        }
        path = f"/image/internal/snapshots/{image_id}"
        return world.cloud.request("PUT", path, headers=headers, data=b"disk").status_code

    def status(image_id: str) -> str:
        resp = world.cloud.request("GET", f"/image/v2/images/{image_id}", client.token)
        return resp.json()["status"] if resp.status_code == 200 else str(resp.status_code)

    project, user = client.project_id, "u"
    not_a_snapshot = queued(client)
    assert put(not_a_snapshot, Grant(not_a_snapshot, project, user, server)) == 401
    other_server = queued(client, instance_uuid=str(uuid.uuid4()))
    assert put(other_server, Grant(other_server, project, user, server)) == 401
    theirs = queued(stranger, instance_uuid=server)
    # Another project's private image is not even found for the grant's project.
    assert put(theirs, Grant(theirs, project, user, server)) == 404
    assert put(theirs, Grant(theirs, stranger.project_id, user, str(uuid.uuid4()))) == 401
    for image_id in (not_a_snapshot, other_server):
        assert status(image_id) == "queued"
    # The right grant stores the data once; the image is no longer queued after.
    backup = {"image_type": "backup", "backup_type": "daily", "instance_uuid": server}
    older = queued(client, **backup)
    their_backup = queued(stranger, **backup)
    new = queued(client, **backup)
    rotation = Rotation(server, "daily", 1)
    assert put(new, Grant(new, project, user, server, rotation)) == 204
    assert status(new) == "active"
    assert put(new, Grant(new, project, user, server)) == 401
    # The rotation kept the new backup and deleted the older one, not the stranger's.
    assert status(older) == "404"
    theirs_now = world.cloud.request("GET", f"/image/v2/images/{their_backup}", stranger.token)
    assert theirs_now.status_code == 200
