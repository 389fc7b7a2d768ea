"""Availability zones come from the nodes: each launcher is configured in one, the
compute API lists them, accepts a server's zone only when it exists, and shows a
server in its node's zone once placed, as Nova does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from ciaostack.core.db.models import ComputeNode
from tests.support.cloud import Cloud
from tests.support.compute import World, compute_world
from tests.support.compute_api import conforms
from tests.support.core import wait_until

ZONE = "zone-b"


@pytest.fixture(scope="module")
def world(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with compute_world(cloud, tmp_path_factory.mktemp("zones"), launchers=1) as world:
        world.nodes.add_launcher("zoned-node", CIAOSTACK_LAUNCHER__AVAILABILITY_ZONE=ZONE)
        wait_until(lambda: zone_of(world, "zoned-node") == ZONE, timeout=30, what="its STATS")
        yield world


def zone_of(world: World, hostname: str) -> str | None:
    with world.nodes.db.session(readonly=True) as session:
        return session.scalar(
            select(ComputeNode.availability_zone).where(ComputeNode.hostname == hostname)
        )


def test_zones_are_listed_from_the_nodes(world: World) -> None:
    client = world.member()
    resp = client.call("GET", "/os-availability-zone")
    zones = conforms(resp, "2.1", "availability_zone", "list_availability_zone_list")
    listed = {z["zoneName"]: z["zoneState"]["available"] for z in zones["availabilityZoneInfo"]}
    assert listed[ZONE] is True and listed["nova"] is True

    detail = world.admin.call("GET", "/os-availability-zone/detail")
    info = conforms(detail, "2.1", "availability_zone", "list_availability_zone_list_detail")
    hosts = {z["zoneName"]: z["hosts"] for z in info["availabilityZoneInfo"]}
    assert list(hosts[ZONE]) == ["zoned-node"]
    assert hosts[ZONE]["zoned-node"]["nova-compute"]["available"] is True
    assert "zoned-node" not in hosts["nova"]

    services = world.admin.call("GET", "/os-services", params={"host": "zoned-node"}).json()
    assert [s["zone"] for s in services["services"]] == [ZONE]


def test_a_server_asking_for_a_zone_runs_there(world: World) -> None:
    client = world.member()
    server_id = world.boot(client, availability_zone=ZONE)
    shown = world.admin.show(server_id)
    assert shown["OS-EXT-SRV-ATTR:host"] == "zoned-node"
    assert client.show(server_id)["OS-EXT-AZ:availability_zone"] == ZONE


def test_a_server_asking_for_no_zone_shows_its_nodes_zone(world: World) -> None:
    client = world.member()
    for _ in range(4):
        server_id = world.boot(client)
        host = world.admin.show(server_id)["OS-EXT-SRV-ATTR:host"]
        expected = ZONE if host == "zoned-node" else "nova"
        assert client.show(server_id)["OS-EXT-AZ:availability_zone"] == expected


def test_an_unknown_zone_is_refused(world: World) -> None:
    client = world.member()
    client.create(expect=400, imageRef=world.image["id"], flavorRef="42", availability_zone="mars")
