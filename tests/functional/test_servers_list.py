"""Server lists over real HTTP: every filter clients send, sorting, and paging with
limit/marker and servers_links, on servers the real processes booted."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.support.cloud import Cloud
from tests.support.compute import ComputeClient, World, compute_world, upload_image


@dataclasses.dataclass
class Fleet:
    world: World
    client: ComputeClient
    ids: dict[str, str]  # name -> id
    other_image: str
    started: dt.datetime


@pytest.fixture(scope="module")
def fleet(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Six servers of one project, differing in name, image, flavor, tags and state."""
    with compute_world(cloud, tmp_path_factory.mktemp("compute")) as world:
        started = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=5)
        client = world.member("2.73")
        other_image = upload_image(cloud, world.admin.token, visibility="public")["id"]
        specs = {
            "alpha-1": {"tags": ["web", "prod"]},
            "alpha-2": {"tags": ["web"]},
            "beta": {"imageRef": other_image, "tags": ["db"]},
            "gamma": {"flavorRef": "1"},
            "delta": {},
            "Alpha-3": {},
        }
        ids = {name: world.boot(client, name=name, **spec) for name, spec in specs.items()}
        client.action(ids["delta"], {"os-stop": None})
        client.wait(ids["delta"], "SHUTOFF")
        client.action(ids["gamma"], {"lock": None})
        yield Fleet(world, client, ids, other_image, started)


def names(client: ComputeClient, detail: bool = True, **params: object) -> list[str]:
    resp = client.call("GET", "/servers/detail" if detail else "/servers", params=params)
    assert resp.status_code == 200, resp.text
    return sorted(s["name"] for s in resp.json()["servers"])


def test_name_is_a_regular_expression(fleet: Fleet) -> None:
    client = fleet.client
    assert names(client, name="^alpha-[0-9]$") == ["alpha-1", "alpha-2"]
    assert names(client, name="lph") == ["Alpha-3", "alpha-1", "alpha-2"]
    assert names(client, detail=False, name="^beta$") == ["beta"]
    assert names(client, name="^nothing$") == []
    bad = client.call("GET", "/servers", params={"name": "("})
    assert bad.status_code == 400 and "badRequest" in bad.json()


def test_status_filter(fleet: Fleet) -> None:
    client = fleet.client
    assert names(client, status="SHUTOFF") == ["delta"]
    assert names(client, status="shutoff") == ["delta"]
    assert len(names(client, status="ACTIVE")) == 5
    assert len(names(client, status=["ACTIVE", "SHUTOFF"])) == 6
    assert names(client, status="PAUSED") == []
    assert names(client.at("2.37"), status="SLEEPING") == []
    invalid = client.at("2.38").call("GET", "/servers", params={"status": "SLEEPING"})
    assert invalid.status_code == 400
    deleted = client.call("GET", "/servers", params={"status": "DELETED"})
    assert deleted.status_code == 403


def test_image_flavor_ip_reservation_and_lock_filters(fleet: Fleet) -> None:
    client, ids = fleet.client, fleet.ids
    assert names(client, image=fleet.other_image) == ["beta"]
    href = f"{fleet.world.cloud.url}/compute/images/{fleet.other_image}"
    assert names(client, image=href) == ["beta"]
    assert names(client, flavor="1") == ["gamma"]
    beta = client.show(ids["beta"])
    [address] = beta["addresses"]["private"]
    assert names(client, ip=f"^{re.escape(address['addr'])}$") == ["beta"]
    assert len(names(client, ip=r"^172\.")) == 6
    assert names(client.at("2.5"), ip6="::1") == []
    reservation = fleet.world.admin.at("2.3").show(ids["beta"])["OS-EXT-SRV-ATTR:reservation_id"]
    assert names(client, reservation_id=reservation) == ["beta"]
    assert names(client, locked="true") == ["gamma"]
    assert len(names(client, locked="false")) == 5
    assert client.call("GET", "/servers", params={"locked": "maybe"}).status_code == 400


def test_tag_filters(fleet: Fleet) -> None:
    client = fleet.client.at("2.26")
    assert names(client, tags="web") == ["alpha-1", "alpha-2"]
    assert names(client, tags="web,prod") == ["alpha-1"]
    assert names(client, **{"tags-any": "prod,db"}) == ["alpha-1", "beta"]
    assert names(client, **{"not-tags": "web,prod"}) == [
        "Alpha-3", "alpha-2", "beta", "delta", "gamma",
    ]  # fmt: skip
    assert names(client, **{"not-tags-any": "web,db"}) == ["Alpha-3", "delta", "gamma"]


def test_changes_since_and_before(fleet: Fleet) -> None:
    client = fleet.client
    past = fleet.started.isoformat() + "Z"
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    assert len(names(client, **{"changes-since": past})) == 6
    assert names(client, **{"changes-since": future}) == []
    assert client.call("GET", "/servers", params={"changes-since": "yesterday"}).status_code == 400
    at_266 = client.at("2.66")
    assert names(at_266, **{"changes-before": past}) == []
    assert len(names(at_266, **{"changes-before": future})) == 6
    reversed_range = at_266.call(
        "GET", "/servers", params={"changes-since": future, "changes-before": past}
    )
    assert reversed_range.status_code == 400


def test_deleted_servers_show_with_changes_since(fleet: Fleet) -> None:
    client, world = fleet.client, fleet.world
    server_id = world.boot(client, name="ephemeral")
    assert client.call("DELETE", f"/servers/{server_id}").status_code == 204
    since = fleet.started.isoformat()
    listed = client.call("GET", "/servers/detail", params={"changes-since": since}).json()
    [gone] = [s for s in listed["servers"] if s["id"] == server_id]
    assert gone["status"] == "DELETED"
    assert "ephemeral" not in names(client)
    admin = world.admin
    deleted = admin.call(
        "GET", "/servers", params={"all_tenants": "1", "deleted": "true", "name": "^ephemeral$"}
    ).json()["servers"]
    assert [s["id"] for s in deleted] == [server_id]


def test_admin_only_filters_are_ignored_for_members(fleet: Fleet) -> None:
    client, admin, ids = fleet.client, fleet.world.admin, fleet.ids
    host = admin.show(ids["beta"])["OS-EXT-SRV-ATTR:host"]
    on_host = admin.call(
        "GET", "/servers", params={"all_tenants": "1", "host": host,
                                   "project_id": client.project_id},
    ).json()["servers"]  # fmt: skip
    assert ids["beta"] in {s["id"] for s in on_host}
    assert all(admin.show(s["id"])["OS-EXT-SRV-ATTR:host"] == host for s in on_host)
    assert len(names(client, host="no-such-host")) == 6
    assert names(admin, all_tenants="1", availability_zone="elsewhere") == []


def test_sorting(fleet: Fleet) -> None:
    client = fleet.client
    listed = client.call(
        "GET", "/servers", params={"sort_key": "display_name", "sort_dir": "asc"}
    ).json()["servers"]
    assert [s["name"] for s in listed] == sorted(fleet.ids)
    listed = client.call(
        "GET", "/servers", params={"sort_key": ["vm_state", "display_name"],
                                   "sort_dir": ["desc", "asc"]},
    ).json()["servers"]  # fmt: skip
    assert [s["name"] for s in listed][0] == "delta"  # stopped sorts before active
    newest_first = client.call("GET", "/servers").json()["servers"]
    assert [s["name"] for s in newest_first][0] == "Alpha-3"
    assert client.call("GET", "/servers", params={"sort_key": "colour"}).status_code == 400
    bad_dir = client.call("GET", "/servers", params={"sort_key": "uuid", "sort_dir": "up"})
    assert bad_dir.status_code == 400
    assert client.call("GET", "/servers", params={"sort_key": "host"}).status_code == 403
    by_host = fleet.world.admin.call("GET", "/servers", params={"sort_key": "host"})
    assert by_host.status_code == 200
    ignored = client.call("GET", "/servers", params={"sort_key": "kernel_id"})
    assert ignored.status_code == 200 and len(ignored.json()["servers"]) == 6


def test_paging_with_limit_marker_and_links(fleet: Fleet) -> None:
    client = fleet.client
    for params in ({}, {"sort_key": "display_name", "sort_dir": "asc"}):
        seen: list[str] = []
        resp = client.call("GET", "/servers/detail", params={"limit": 2, **params}).json()
        while True:
            seen += [s["name"] for s in resp["servers"]]
            links = resp.get("servers_links")
            if not links:
                break
            assert len(resp["servers"]) == 2
            [link] = links
            assert link["rel"] == "next" and "/compute/v2.1/servers/detail?" in link["href"]
            url = urlsplit(link["href"])
            resp = client.cloud.request(
                "GET", f"{url.path}?{url.query}", client.token,
                headers={"OpenStack-API-Version": f"compute {client.version}"},
            ).json()  # fmt: skip
        assert sorted(seen) == sorted(fleet.ids) and len(seen) == len(set(seen))
        if params:
            assert seen == sorted(fleet.ids)
    first = client.call("GET", "/servers", params={"limit": 1}).json()
    assert first["servers_links"][0]["href"].split("?")[0].endswith("/compute/v2.1/servers")
    assert client.call("GET", "/servers", params={"limit": 0}).json() == {"servers": []}
    everything = client.call("GET", "/servers", params={"limit": 5000}).json()
    assert len(everything["servers"]) == 6 and "servers_links" not in everything
    assert client.call("GET", "/servers", params={"marker": "nope"}).status_code == 400
    # Another project's server is no marker for this one's list.
    stranger = fleet.world.member()
    foreign = stranger.call("GET", "/servers", params={"marker": fleet.ids["beta"]})
    assert foreign.status_code == 400
    assert client.call("GET", "/servers", params={"limit": "-1"}).status_code == 400
    assert client.call("GET", "/servers", params={"limit": "x"}).status_code == 400
