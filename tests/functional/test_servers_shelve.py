"""shelve, unshelve and shelveOffload through the real API, scheduler, controller and
fake launchers: a shelved server's disk is kept as the image `<name>-shelved` and the
server leaves its node at once (SHELVED_OFFLOADED, no host, its quota still held);
unshelve starts it again from that image on a node, and the image goes once it runs;
deleting a shelved server deletes the image too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ciaostack.agents.state import StateStore
from tests.support.cloud import Cloud
from tests.support.compute import ComputeClient, World, compute_world
from tests.support.core import wait_until


@pytest.fixture(scope="module")
def world(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with compute_world(cloud, tmp_path_factory.mktemp("shelve")) as world:
        yield world


def held_anywhere(world: World, server_id: str) -> bool:
    return any(
        server_id in StateStore(world.nodes.home / name, fsync=False).load_instances()
        for name in world.nodes.hostnames
    )


def shelved_images(world: World, client: ComputeClient, server: dict[str, Any]) -> list[dict]:
    name = f"{server['name']}-shelved"
    found = world.cloud.request("GET", f"/image/v2/images?name={name}", client.token)
    assert found.status_code == 200, found.text
    return found.json()["images"]


def used(client: ComputeClient) -> dict[str, int]:
    usage = client.call("GET", f"/os-quota-sets/{client.project_id}/detail").json()["quota_set"]
    return {name: usage[name]["in_use"] for name in ("instances", "cores", "ram")}


def conflict(resp) -> str:  # noqa: ANN001 - requests.Response
    assert resp.status_code == 409, resp.text
    return resp.json()["conflictingRequest"]["message"]


def test_shelve_and_unshelve(world: World) -> None:
    client = world.member()
    server_id = world.boot(client)
    usage = used(client)
    assert "vm_state active" in conflict(client.action(server_id, {"unshelve": None}))
    assert client.action(server_id, {"shelve": None}).status_code == 202
    shelved = client.wait(server_id, "SHELVED_OFFLOADED")
    assert shelved["OS-EXT-STS:vm_state"] == "shelved_offloaded"
    assert shelved["OS-EXT-STS:power_state"] == 4
    assert world.admin.show(server_id)["OS-EXT-SRV-ATTR:host"] is None
    assert not held_anywhere(world, server_id)
    [image] = shelved_images(world, client, shelved)
    assert image["status"] == "active" and image["instance_uuid"] == server_id
    assert used(client) == usage  # a shelved server keeps its quota, as in Nova
    assert "vm_state shelved_offloaded" in conflict(client.action(server_id, {"shelve": None}))
    assert "vm_state shelved_offloaded" in conflict(client.action(server_id, {"os-start": None}))
    listed = client.call("GET", "/servers/detail?status=SHELVED_OFFLOADED").json()["servers"]
    assert [s["id"] for s in listed] == [server_id]

    assert client.action(server_id, {"unshelve": None}).status_code == 202
    running = client.wait(server_id, "ACTIVE")
    assert running["OS-EXT-STS:power_state"] == 1
    assert world.admin.show(server_id)["OS-EXT-SRV-ATTR:host"] in world.nodes.hostnames
    assert held_anywhere(world, server_id)
    image_path = f"/image/v2/images/{image['id']}"
    wait_until(
        lambda: world.cloud.request("GET", image_path, client.token).status_code == 404,
        timeout=15,
        what="the shelved image to be deleted",
    )
    actions = client.call("GET", f"/servers/{server_id}/os-instance-actions").json()
    assert [a["action"] for a in actions["instanceActions"]] == ["unshelve", "shelve", "create"]
    # Its usual life goes on.
    assert client.action(server_id, {"reboot": {"type": "HARD"}}).status_code == 202
    client.wait(server_id, "ACTIVE")


def test_shelve_a_paused_server_and_delete_it_shelved(world: World) -> None:
    client = world.member()
    server_id = world.boot(client)
    assert client.action(server_id, {"pause": None}).status_code == 202
    client.wait(server_id, "PAUSED")
    assert client.action(server_id, {"shelve": {}}).status_code == 202
    shelved = client.wait(server_id, "SHELVED_OFFLOADED")
    [image] = shelved_images(world, client, shelved)
    # shelveOffload is for administrators, and only for a server still on its node.
    assert client.action(server_id, {"shelveOffload": None}).status_code == 403
    refused = world.admin.action(server_id, {"shelveOffload": None})
    assert "vm_state shelved_offloaded" in conflict(refused)
    assert client.call("DELETE", f"/servers/{server_id}").status_code == 204
    client.wait_gone(server_id)
    assert used(client) == {"instances": 0, "cores": 0, "ram": 0}
    wait_until(
        lambda: (
            world.cloud.request("GET", f"/image/v2/images/{image['id']}", client.token).status_code
            == 404
        ),
        timeout=15,
        what="the shelved image to be deleted",
    )
    assert client.action("0" * 36, {"shelve": None}).status_code == 404
    assert client.action("0" * 36, {"unshelve": None}).status_code == 404


def test_a_shelved_member_constrains_no_placement(world: World) -> None:
    """An offloaded member of an affinity group runs nowhere: the next member boots,
    and the shelved one unshelves next to it (the group as it is now)."""
    client = world.member()
    hints = {"group": client.group("together", "affinity")}
    first = world.boot(client, hints=hints)
    assert client.action(first, {"shelve": None}).status_code == 202
    client.wait(first, "SHELVED_OFFLOADED")
    second = world.boot(client, hints=hints)
    assert client.action(first, {"unshelve": None}).status_code == 202
    client.wait(first, "ACTIVE")
    hosts = {world.admin.show(s)["OS-EXT-SRV-ATTR:host"] for s in (first, second)}
    assert len(hosts) == 1
