"""Where servers go and how many there may be: scheduler hints, server groups, an
administrator's choice of host, multiple creates, quotas under concurrency, and
the networks a server is attached to. Two fake launchers run the servers."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from ciaostack.core.db.models import IPAllocation, Port
from tests.support.cloud import Cloud
from tests.support.compute import TINY, ComputeClient, World, compute_world


@pytest.fixture(scope="module")
def world(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with compute_world(cloud, tmp_path_factory.mktemp("compute"), launchers=2) as world:
        yield world


def host_of(world: World, server_id: str) -> str:
    return world.admin.show(server_id)["OS-EXT-SRV-ATTR:host"]


def address_of(client: ComputeClient, server_id: str) -> str:
    [address] = client.show(server_id)["addresses"]["private"]
    return address["addr"]


def set_quota(world: World, project_id: str, **limits: int) -> None:
    resp = world.admin.call("PUT", f"/os-quota-sets/{project_id}", json={"quota_set": limits})
    assert resp.status_code == 200, resp.text


def test_same_and_different_host_hints(world: World) -> None:
    client = world.member()
    first = world.boot(client)
    near = world.boot(client, hints={"same_host": [first]})
    far = world.boot(client, hints={"different_host": first})
    assert host_of(world, near) == host_of(world, first)
    assert host_of(world, far) != host_of(world, first)
    assert client.show(near)["hostId"] == client.show(first)["hostId"]


def test_server_groups_place_their_members(world: World) -> None:
    client = world.member("2.71")
    groups = {}
    for policy in ("affinity", "anti-affinity"):
        resp = client.at("2.64").call(
            "POST", "/os-server-groups", json={"server_group": {"name": policy, "policy": policy}}
        )
        assert resp.status_code == 200, resp.text
        groups[policy] = resp.json()["server_group"]["id"]
    together = [world.boot(client, hints={"group": groups["affinity"]}) for _ in range(2)]
    assert host_of(world, together[0]) == host_of(world, together[1])
    assert client.show(together[0])["server_groups"] == [groups["affinity"]]
    apart = [world.boot(client, hints={"group": groups["anti-affinity"]}) for _ in range(2)]
    assert host_of(world, apart[0]) != host_of(world, apart[1])
    # Two nodes: a third member that must avoid both has nowhere to go.
    third = client.create(
        imageRef=world.image["id"], flavorRef=TINY, networks="auto",
        hints={"group": groups["anti-affinity"]},
    )["server"]["id"]  # fmt: skip
    failed = client.wait(third, "ERROR", timeout=60)
    assert "No valid host" in failed["fault"]["message"]
    group = client.call("GET", f"/os-server-groups/{groups['anti-affinity']}").json()
    assert set(group["server_group"]["members"]) == {*apart, third}
    missing = client.create(
        expect=400, imageRef=world.image["id"], flavorRef=TINY, networks="auto",
        hints={"group": str(uuid.uuid4())},
    )  # fmt: skip
    assert "could not be found" in missing["badRequest"]["message"]


def test_administrators_choose_the_host(world: World) -> None:
    admin = world.admin
    target = world.nodes.hostnames[1]
    project = world.member()
    zone_form = world.boot(admin, availability_zone=f"nova:{target}")
    assert host_of(world, zone_form) == target
    at_274 = world.boot(admin.at("2.74"), host=target)
    assert host_of(world, at_274) == target
    unknown = admin.at("2.74").create(
        expect=400, imageRef=world.image["id"], flavorRef=TINY, networks="auto", host="nowhere"
    )
    assert "nowhere could not be found" in unknown["badRequest"]["message"]
    refused = project.create(
        expect=403, imageRef=world.image["id"], flavorRef=TINY,
        availability_zone=f"nova:{target}",
    )  # fmt: skip
    assert "forced_host" in refused["forbidden"]["message"]
    for server_id in (zone_form, at_274):
        assert admin.call("DELETE", f"/servers/{server_id}").status_code == 204


def test_multiple_create(world: World) -> None:
    client = world.member()
    resp = client.create(
        imageRef=world.image["id"], flavorRef=TINY, name="batch", min_count=3,
        return_reservation_id=True,
    )  # fmt: skip
    assert set(resp) == {"reservation_id"} and resp["reservation_id"].startswith("r-")
    servers = client.call(
        "GET", "/servers/detail", params={"reservation_id": resp["reservation_id"]}
    ).json()["servers"]
    assert sorted(s["name"] for s in servers) == ["batch-1", "batch-2", "batch-3"]
    for server in servers:
        client.wait(server["id"], "ACTIVE")
    addresses = {address_of(client, s["id"]) for s in servers}
    assert len(addresses) == 3
    indexes = {world.admin.at("2.3").show(s["id"])["OS-EXT-SRV-ATTR:launch_index"] for s in servers}
    assert indexes == {0, 1, 2}
    single = client.create(imageRef=world.image["id"], flavorRef=TINY, name="solo", max_count=2)
    assert set(single["server"]) >= {"id", "adminPass"}
    assert {s["name"] for s in client.call("GET", "/servers").json()["servers"]} >= {
        "solo-1", "solo-2",
    }  # fmt: skip


def test_quota_limits_creates(world: World) -> None:
    client = world.member()
    set_quota(world, client.project_id, instances=3)
    resp = client.create(
        imageRef=world.image["id"], flavorRef=TINY, min_count=1, max_count=5, name="q"
    )
    listed = client.call("GET", "/servers").json()["servers"]
    assert len(listed) == 3 and resp["server"]["id"] in {s["id"] for s in listed}
    refused = client.create(expect=403, imageRef=world.image["id"], flavorRef=TINY)
    assert refused["forbidden"]["message"] == (
        "Quota exceeded for instances: Requested 1, but already used 3 of 3 instances"
    )
    too_many = client.create(expect=403, imageRef=world.image["id"], flavorRef=TINY, min_count=2)
    assert "Quota exceeded for instances" in too_many["forbidden"]["message"]
    set_quota(world, client.project_id, instances=10, cores=3)
    cores = client.create(expect=403, imageRef=world.image["id"], flavorRef="3")  # 2 vCPUs
    assert cores["forbidden"]["message"] == (
        "Quota exceeded for cores: Requested 2, but already used 3 of 3 cores"
    )
    # Deleting gives the quota back.
    client.call("DELETE", f"/servers/{listed[0]['id']}")
    client.wait_gone(listed[0]["id"])
    world.boot(client)


def test_concurrent_creates_never_pass_the_quota(world: World) -> None:
    client = world.member()
    set_quota(world, client.project_id, instances=5)
    statuses: list[int] = []
    lock = threading.Lock()

    def create() -> None:
        body = {"server": {"name": "race", "imageRef": world.image["id"], "flavorRef": TINY}}
        code = client.call("POST", "/servers", json=body).status_code
        with lock:
            statuses.append(code)

    threads = [threading.Thread(target=create) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [202] * 5 + [403] * 7
    servers = client.call("GET", "/servers").json()["servers"]
    assert len(servers) == 5
    for server in servers:
        client.wait(server["id"], "ACTIVE")
    assert len({address_of(client, s["id"]) for s in servers}) == 5
    absolute = client.call("GET", "/limits").json()["limits"]["absolute"]
    assert absolute["totalInstancesUsed"] == 5


def test_networks(world: World) -> None:
    client = world.member("2.37")
    quiet = world.boot(client, networks="none")
    assert client.show(quiet)["addresses"] == {}
    auto = world.boot(client, networks="auto")
    [address] = client.show(auto)["addresses"]["private"]
    with world.nodes.db.session(readonly=True) as session:
        port = session.scalar(select(Port).where(Port.device_id == auto))
        assert port is not None and port.mac_address == address["OS-EXT-IPS-MAC:mac_addr"]
        network_id = port.network_id
    prefix = address["addr"].rsplit(".", 1)[0]
    chosen = f"{prefix}.200"
    fixed = world.boot(client, networks=[{"uuid": network_id, "fixed_ip": chosen}])
    assert address_of(client, fixed) == chosen
    taken = client.create(
        expect=400, imageRef=world.image["id"], flavorRef=TINY,
        networks=[{"uuid": network_id, "fixed_ip": chosen}],
    )  # fmt: skip
    assert "already in use" in taken["badRequest"]["message"]
    outside = client.create(
        expect=400, imageRef=world.image["id"], flavorRef=TINY,
        networks=[{"uuid": network_id, "fixed_ip": "10.99.0.5"}],
    )  # fmt: skip
    assert "not an assignable address" in outside["badRequest"]["message"]
    two = client.create(
        expect=400, imageRef=world.image["id"], flavorRef=TINY,
        networks=[{"uuid": network_id}, {"uuid": network_id}],
    )  # fmt: skip
    assert "one network interface" in two["badRequest"]["message"]
    # Another project cannot use this project's network.
    stranger = world.member("2.37")
    foreign = stranger.create(
        expect=400, imageRef=world.image["id"], flavorRef=TINY, networks=[{"uuid": network_id}]
    )
    assert "could not be found" in foreign["badRequest"]["message"]
    stranger_id = world.boot(stranger)
    assert address_of(stranger, stranger_id).rsplit(".", 1)[0] != prefix
    # Deleting a server frees its port and address at once.
    assert client.call("DELETE", f"/servers/{fixed}").status_code == 204
    with world.nodes.db.session(readonly=True) as session:
        held = session.scalar(
            select(func.count()).select_from(IPAllocation).where(IPAllocation.ip_address == chosen)
        )
        assert held == 0
    reused = world.boot(client, networks=[{"uuid": network_id, "fixed_ip": chosen}])
    assert address_of(client, reused) == chosen
