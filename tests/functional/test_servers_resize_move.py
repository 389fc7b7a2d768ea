"""A resize the server's node has no room for moves the server to another node, through
the real API, scheduler, controller and two fake launchers: a small node that can hold
m1.nano but not m1.medium, and a large one added after the server is placed.

Checked: the server shows its new host while it waits for a verdict, the node it left
keeps a stopped copy until then; a revert deletes the new copy and runs the old one
again on its first node; a confirm deletes the old copy; a stopped server moves
stopped; a flavor no node can take leaves the server where it was; and a cold
migration (admin) is a resize to the same flavor that always moves.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ciaostack.agents.state import StateStore
from ciaostack.core.ssntp import payloads as P
from tests.support.cloud import Cloud
from tests.support.compute import ComputeClient, World, compute_world
from tests.support.compute_api import call, conforms
from tests.support.core import wait_until

MEDIUM = "3"  # m1.medium: 4096 MB, 2 vCPUs, 40 GB
# The small node: m1.nano (128 MB) fits beyond the 512 MB reserve, m1.medium does not.
SMALL_MEM_MB = "1536"
LARGE_MEM_MB = "16384"
NANO_MB = 128


@pytest.fixture(scope="module")
def world(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with compute_world(
        cloud,
        tmp_path_factory.mktemp("resize-move"),
        launchers=1,
        CIAOSTACK_LAUNCHER__FAKE_MEM_MB=SMALL_MEM_MB,
    ) as world:
        yield world


def copies(world: World, hostname: str) -> dict[str, P.InstanceState]:
    """The instances a node's launcher holds, as its state directory records them."""
    store = StateStore(world.nodes.home / hostname, fsync=False)
    return {i: record.state for i, record in store.load_instances().items()}


def host_of(world: World, server_id: str) -> str:
    return world.admin.show(server_id)["OS-EXT-SRV-ATTR:host"]


def used(client: ComputeClient) -> dict[str, int]:
    usage = client.call("GET", f"/os-quota-sets/{client.project_id}/detail").json()["quota_set"]
    return {name: usage[name]["in_use"] for name in ("cores", "ram")}


def wait_copy(world: World, hostname: str, server_id: str, state: P.InstanceState | None) -> None:
    """Until the node holds the server in `state` (None: holds it no more)."""
    wait_until(
        lambda: copies(world, hostname).get(server_id) == state,
        timeout=30,
        what=f"{hostname} to hold {server_id} as {state}",
    )


@dataclasses.dataclass
class Placed:
    """Servers booted on the small node before the large one joined."""

    client: ComputeClient
    small: str
    large: str
    running: str
    stopped: str
    stopped_too: str


@pytest.fixture(scope="module")
def placed(world: World) -> Placed:
    client = world.member("2.47")
    small = world.nodes.hostnames[0]
    running, stopped, stopped_too = (world.boot(client) for _ in range(3))
    for server_id in (stopped, stopped_too):
        assert client.action(server_id, {"os-stop": None}).status_code == 202
        client.wait(server_id, "SHUTOFF")
    for server_id in (running, stopped, stopped_too):
        assert host_of(world, server_id) == small
    large = f"large-{uuid.uuid4().hex[:6]}"
    world.nodes.add_launcher(large, CIAOSTACK_LAUNCHER__FAKE_MEM_MB=LARGE_MEM_MB)
    return Placed(client, small, large, running, stopped, stopped_too)


def test_a_resize_moves_the_server_and_a_revert_brings_it_back(
    world: World, placed: Placed
) -> None:
    client, small, large, server_id = placed.client, placed.small, placed.large, placed.running
    assert client.action(server_id, {"resize": {"flavorRef": MEDIUM}}).status_code == 202
    client.wait(server_id, "VERIFY_RESIZE")
    resized = client.show(server_id)
    assert resized["flavor"]["original_name"] == "m1.medium"
    assert host_of(world, server_id) == large
    assert used(client) == {"cores": 2 + 2, "ram": 4096 + 2 * NANO_MB}
    # The node it left keeps its copy, stopped, for a revert; the new one runs.
    wait_copy(world, small, server_id, P.InstanceState.STOPPED)
    assert copies(world, large)[server_id] == P.InstanceState.RUNNING
    assert client.show(server_id)["OS-EXT-STS:power_state"] == 1

    assert client.action(server_id, {"revertResize": None}).status_code == 202
    client.wait(server_id, "ACTIVE")
    reverted = client.show(server_id)
    assert reverted["flavor"]["original_name"] == "m1.nano"
    assert reverted["OS-EXT-STS:power_state"] == 1
    assert host_of(world, server_id) == small
    assert used(client) == {"cores": 3, "ram": 3 * NANO_MB}
    wait_copy(world, large, server_id, None)
    wait_copy(world, small, server_id, P.InstanceState.RUNNING)
    events = client.call("GET", f"/servers/{server_id}/os-instance-actions").json()
    assert [a["action"] for a in events["instanceActions"]] == ["revertResize", "resize", "create"]

    # Again, and keep it this time: the copy on the small node goes.
    assert client.action(server_id, {"resize": {"flavorRef": MEDIUM}}).status_code == 202
    client.wait(server_id, "VERIFY_RESIZE")
    assert host_of(world, server_id) == large
    assert client.action(server_id, {"confirmResize": None}).status_code == 204
    client.wait(server_id, "ACTIVE")
    confirmed = client.show(server_id)
    assert confirmed["flavor"]["original_name"] == "m1.medium"
    wait_copy(world, small, server_id, None)
    assert copies(world, large)[server_id] == P.InstanceState.RUNNING
    assert used(client) == {"cores": 2 + 2, "ram": 4096 + 2 * NANO_MB}
    # Its usual life goes on where it is now.
    assert client.action(server_id, {"reboot": {"type": "HARD"}}).status_code == 202
    client.wait(server_id, "ACTIVE")
    assert client.call("DELETE", f"/servers/{server_id}").status_code == 204
    client.wait_gone(server_id)
    wait_copy(world, large, server_id, None)
    assert used(client) == {"cores": 2, "ram": 2 * NANO_MB}


def test_a_stopped_server_moves_stopped(world: World, placed: Placed) -> None:
    client, small, large, server_id = placed.client, placed.small, placed.large, placed.stopped
    assert client.action(server_id, {"resize": {"flavorRef": MEDIUM}}).status_code == 202
    client.wait(server_id, "VERIFY_RESIZE")
    assert host_of(world, server_id) == large
    wait_copy(world, large, server_id, P.InstanceState.STOPPED)
    assert copies(world, small)[server_id] == P.InstanceState.STOPPED
    assert client.action(server_id, {"confirmResize": None}).status_code == 204
    client.wait(server_id, "SHUTOFF")
    confirmed = client.show(server_id)
    assert confirmed["flavor"]["original_name"] == "m1.medium"
    wait_copy(world, small, server_id, None)
    # Moved and reverted: stopped on its first node again.
    other = placed.stopped_too
    assert client.action(other, {"resize": {"flavorRef": MEDIUM}}).status_code == 202
    client.wait(other, "VERIFY_RESIZE")
    assert host_of(world, other) == large
    assert client.action(other, {"revertResize": None}).status_code == 202
    client.wait(other, "SHUTOFF")
    reverted = client.show(other)
    assert reverted["flavor"]["original_name"] == "m1.nano"
    assert host_of(world, other) == small
    wait_copy(world, large, other, None)
    assert copies(world, small)[other] == P.InstanceState.STOPPED


def test_a_confirmed_move_waits_for_the_copy_left_behind(world: World, placed: Placed) -> None:
    """Until the node a move left reports its copy deleted, that copy's reports are
    never the server's and a new resize is refused; then the server is free again."""
    client = placed.client
    server_id = world.boot(client)
    before = host_of(world, server_id)
    assert world.admin.action(server_id, {"migrate": None}).status_code == 202
    client.wait(server_id, "VERIFY_RESIZE")
    assert world.admin.action(server_id, {"confirmResize": None}).status_code == 204
    client.wait(server_id, "ACTIVE")
    after = host_of(world, server_id)
    wait_copy(world, before, server_id, None)
    wait_until(
        lambda: client.action(server_id, {"resize": {"flavorRef": MEDIUM}}).status_code == 202,
        timeout=15,
        what="the resize to be accepted",
    )
    client.wait(server_id, "VERIFY_RESIZE")
    assert client.action(server_id, {"confirmResize": None}).status_code == 204
    client.wait(server_id, "ACTIVE")
    assert host_of(world, server_id) in (before, after)


def test_a_move_keeps_the_group_rules_as_they_are_now(world: World, placed: Placed) -> None:
    """The first member of an anti-affinity group cannot move onto the node of a member
    that joined after it (its boot knew of none)."""
    client = placed.client
    hints = {"group": client.group("apart", "anti-affinity")}
    first = world.boot(client, hints=hints)
    second = world.boot(client, hints=hints)
    assert host_of(world, first) != host_of(world, second)
    assert world.admin.action(first, {"migrate": None}).status_code == 202
    # The only other node holds the second member: no valid host, and it stays.
    wait_until(
        lambda: client.show(first)["OS-EXT-STS:task_state"] is None,
        timeout=30,
        what="the migration to end",
    )
    assert client.show(first)["status"] == "ACTIVE"
    assert host_of(world, first) != host_of(world, second)
    listed = call(world.cloud, "GET", f"/os-migrations?instance_uuid={first}", world.admin.token)
    assert [m["status"] for m in listed.json()["migrations"]] == ["error"]


def test_no_node_can_take_the_new_flavor(world: World) -> None:
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
    before = host_of(world, server_id)
    resp = client.action(server_id, {"resize": {"flavorRef": huge.json()["flavor"]["id"]}})
    assert resp.status_code == 202, resp.text

    def resize_event() -> dict[str, Any] | None:
        path = f"/servers/{server_id}/os-instance-actions"
        request_id = client.call("GET", path).json()["instanceActions"][0]["request_id"]
        action = client.at("2.51").call("GET", f"{path}/{request_id}").json()["instanceAction"]
        return action["events"][0] if action["events"][0].get("finish_time") else None

    wait_until(lambda: resize_event() is not None, timeout=30, what="the resize to end")
    assert resize_event()["result"] == "Error"
    client.wait(server_id, "ACTIVE")
    server = client.show(server_id)
    assert server["flavor"]["original_name"] == "m1.nano"
    assert host_of(world, server_id) == before
    assert used(client) == {"cores": 1, "ram": NANO_MB}


def test_migrate(world: World, placed: Placed) -> None:
    """Cold migration (admin): a resize to the same flavor that always moves; at 2.56
    the administrator may name the host."""
    client = placed.client
    server_id = world.boot(client)
    before = host_of(world, server_id)
    other = placed.large if before == placed.small else placed.small
    usage = used(client)
    assert client.action(server_id, {"migrate": None}).status_code == 403
    admin = world.admin
    assert admin.action(server_id, {"migrate": None}).status_code == 202
    client.wait(server_id, "VERIFY_RESIZE")
    assert host_of(world, server_id) == other
    assert client.show(server_id)["flavor"]["original_name"] == "m1.nano"
    assert used(client) == usage
    wait_copy(world, before, server_id, P.InstanceState.STOPPED)
    assert admin.action(server_id, {"confirmResize": None}).status_code == 204
    client.wait(server_id, "ACTIVE")
    wait_copy(world, before, server_id, None)
    assert used(client) == usage
    actions = client.call("GET", f"/servers/{server_id}/os-instance-actions").json()
    assert [a["action"] for a in actions["instanceActions"]] == [
        "confirmResize",
        "migrate",
        "create",
    ]

    # 2.56: to a host by name; not to where it is, nor to a host that does not exist.
    at_2_56 = admin.at("2.56")

    def refusal(body: dict[str, Any], version: ComputeClient = at_2_56) -> str:
        resp = version.action(server_id, body)
        assert resp.status_code == 400, resp.text
        return resp.json()["badRequest"]["message"]

    assert "same one" in refusal({"migrate": {"host": other}})
    assert "could not be found" in refusal({"migrate": {"host": "no-such-host"}})
    assert refusal({"migrate": {"host": before, "extra": 1}})
    assert refusal({"migrate": {"host": before}}, admin)  # before 2.56: no host
    # A new move waits (409) until the node the last one left has deleted its copy.
    wait_until(
        lambda: at_2_56.action(server_id, {"migrate": {"host": before}}).status_code != 409,
        timeout=15,
        what="the migration to be accepted",
    )
    client.wait(server_id, "VERIFY_RESIZE")
    assert host_of(world, server_id) == before
    assert admin.action(server_id, {"revertResize": None}).status_code == 202
    client.wait(server_id, "ACTIVE")
    assert host_of(world, server_id) == other
    wait_copy(world, before, server_id, None)
    # A migrated server waits for its verdict before it can move again.
    assert admin.action(server_id, {"migrate": None}).status_code == 202
    client.wait(server_id, "VERIFY_RESIZE")
    conflict = admin.action(server_id, {"migrate": None})
    assert conflict.status_code == 409 and "vm_state resized" in conflict.text
    assert admin.action(server_id, {"confirmResize": None}).status_code == 204
    client.wait(server_id, "ACTIVE")
    assert host_of(world, server_id) == before


def test_os_migrations_record_each_resize_and_migration(world: World, placed: Placed) -> None:
    """Every resize and migration is listed for administrators, newest first, with
    where it went, its flavors and how it ended; by microversion, tempest's schemas."""
    cloud, token = world.cloud, world.admin.token
    server_id = world.boot(placed.client)
    source = host_of(world, server_id)
    assert world.admin.action(server_id, {"migrate": None}).status_code == 202
    placed.client.wait(server_id, "VERIFY_RESIZE")
    assert world.admin.action(server_id, {"revertResize": None}).status_code == 202
    placed.client.wait(server_id, "ACTIVE")
    assert placed.client.action(server_id, {"resize": {"flavorRef": MEDIUM}}).status_code == 202
    placed.client.wait(server_id, "VERIFY_RESIZE")
    dest = host_of(world, server_id)
    assert placed.client.action(server_id, {"confirmResize": None}).status_code == 204
    placed.client.wait(server_id, "ACTIVE")

    mine = f"/os-migrations?instance_uuid={server_id}"
    body = conforms(call(cloud, "GET", mine, token), "2.1", "migrations", "list_migrations")
    resize, migration = body["migrations"]
    assert (resize["status"], migration["status"]) == ("confirmed", "reverted")
    assert (resize["old_instance_type_id"], resize["new_instance_type_id"]) == (42, 3)
    assert migration["old_instance_type_id"] == migration["new_instance_type_id"] == 42
    assert resize["source_compute"] == source and resize["dest_compute"] == dest
    assert migration["source_compute"] == source and migration["dest_compute"] != source
    typed = call(cloud, "GET", mine, token, "2.23")
    typed = conforms(typed, "2.23", "migrations", "list_migrations")
    assert [m["migration_type"] for m in typed["migrations"]] == ["resize", "migration"]
    only = call(cloud, "GET", f"{mine}&migration_type=migration", token, "2.23").json()
    assert [m["id"] for m in only["migrations"]] == [migration["id"]]
    assert call(cloud, "GET", f"{mine}&status=reverted", token).json()["migrations"] == [migration]
    assert call(cloud, "GET", "/os-migrations?host=no-such-host", token).json() == {
        "migrations": []
    }
    # 2.59: uuids, and pages by limit and marker (tempest's schema has no page links).
    conforms(call(cloud, "GET", mine, token, "2.59"), "2.59", "migrations", "list_migrations")
    page = call(cloud, "GET", f"{mine}&limit=1", token, "2.59").json()
    assert [m["id"] for m in page["migrations"]] == [resize["id"]]
    marker = page["migrations"][0]["uuid"]
    assert f"marker={marker}" in page["migrations_links"][0]["href"]
    rest = call(cloud, "GET", f"{mine}&limit=1&marker={marker}", token, "2.59").json()
    assert [m["id"] for m in rest["migrations"]] == [migration["id"]]
    bad = call(cloud, "GET", f"/os-migrations?marker={uuid.uuid4()}", token, "2.59")
    assert bad.status_code == 400, bad.text
    # Administrators only.
    refused = call(cloud, "GET", "/os-migrations", placed.client.token)
    assert refused.status_code == 403, refused.text
