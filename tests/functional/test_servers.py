"""Servers over real HTTP, booted by real scheduler, controller and fake-launcher
processes: create, show, list, update, delete; the fields each microversion adds;
who may see what; and every way a create request can be refused.

Each test works in a fresh project of its own (a member user), so quotas and
lists never depend on another test.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import pytest

from tests.support.cloud import Cloud
from tests.support.compute import TINY, ComputeClient, World, compute_world, upload_image
from tests.support.identity import V3, grant, new_member, role_id

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
USAGE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")
MAC = re.compile(r"^fa:16:3e(:[0-9a-f]{2}){3}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

BASIC = {
    "id", "name", "status", "tenant_id", "user_id", "metadata", "hostId", "image", "flavor",
    "created", "updated", "addresses", "accessIPv4", "accessIPv6", "links", "OS-DCF:diskConfig",
}  # fmt: skip
DETAIL = BASIC | {
    "progress", "key_name", "config_drive", "OS-EXT-AZ:availability_zone",
    "OS-EXT-STS:task_state", "OS-EXT-STS:vm_state", "OS-EXT-STS:power_state",
    "OS-SRV-USG:launched_at", "OS-SRV-USG:terminated_at",
    "os-extended-volumes:volumes_attached", "security_groups",
}  # fmt: skip
ADMIN_21 = {
    "OS-EXT-SRV-ATTR:host", "OS-EXT-SRV-ATTR:hypervisor_hostname",
    "OS-EXT-SRV-ATTR:instance_name",
}  # fmt: skip
ADMIN_23 = {
    f"OS-EXT-SRV-ATTR:{name}"
    for name in (
        "reservation_id", "launch_index", "hostname", "kernel_id", "ramdisk_id",
        "root_device_name", "user_data",
    )
}  # fmt: skip


@pytest.fixture(scope="module")
def world(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with compute_world(cloud, tmp_path_factory.mktemp("compute")) as world:
        yield world


def test_create_show_list_delete(world: World) -> None:
    client = world.member()
    created = client.create(imageRef=world.image["id"], flavorRef=TINY, name="web-1")
    server = created["server"]
    assert set(server) == {"id", "links", "OS-DCF:diskConfig", "security_groups", "adminPass"}
    assert server["security_groups"] == [{"name": "default"}] and server["adminPass"]
    assert server["links"][0]["href"].endswith(f"/compute/v2.1/servers/{server['id']}")
    assert server["links"][1] == {
        "rel": "bookmark",
        "href": f"{world.cloud.url}/compute/servers/{server['id']}",
    }

    building = client.show(server["id"])
    assert building["status"] == "BUILD" or building["status"] == "ACTIVE"
    shown = client.wait(server["id"], "ACTIVE")
    assert set(shown) == DETAIL, set(shown) ^ DETAIL
    assert shown["name"] == "web-1" and shown["tenant_id"] == client.project_id
    assert shown["OS-EXT-STS:vm_state"] == "active" and shown["OS-EXT-STS:power_state"] == 1
    assert shown["OS-EXT-AZ:availability_zone"] == "nova"
    assert ISO_Z.match(shown["created"]) and ISO_Z.match(shown["updated"])
    assert USAGE_TIME.match(shown["OS-SRV-USG:launched_at"])
    assert shown["OS-SRV-USG:terminated_at"] is None
    assert len(shown["hostId"]) == 56 and shown["progress"] == 0
    assert shown["image"]["id"] == world.image["id"]
    assert shown["flavor"] == {
        "id": TINY,
        "links": [{"rel": "bookmark", "href": f"{world.cloud.url}/compute/flavors/{TINY}"}],
    }
    [(network, [address])] = shown["addresses"].items()
    assert network == "private" and address["version"] == 4
    assert address["OS-EXT-IPS:type"] == "fixed" and MAC.match(address["OS-EXT-IPS-MAC:mac_addr"])
    assert shown["key_name"] is None and shown["config_drive"] == ""

    listed = client.call("GET", "/servers").json()
    assert listed == {"servers": [{"id": server["id"], "name": "web-1", "links": server["links"]}]}
    detail = client.call("GET", "/servers/detail").json()["servers"]
    assert [s["id"] for s in detail] == [server["id"]] and set(detail[0]) == DETAIL
    ips = client.call("GET", f"/servers/{server['id']}/ips").json()
    assert ips == {"addresses": {"private": [{"version": 4, "addr": address["addr"]}]}}
    one = client.call("GET", f"/servers/{server['id']}/ips/private").json()
    assert one == {"private": [{"version": 4, "addr": address["addr"]}]}
    assert client.call("GET", f"/servers/{server['id']}/ips/public").status_code == 404

    assert client.call("DELETE", f"/servers/{server['id']}").status_code == 204
    assert client.call("GET", f"/servers/{server['id']}").status_code == 404
    assert client.call("DELETE", f"/servers/{server['id']}").status_code == 404
    assert client.call("GET", "/servers").json() == {"servers": []}


def test_fields_appear_at_their_microversion(world: World) -> None:
    client = world.member()
    server_id = world.boot(client, metadata={"role": "db"})
    expected = {
        "2.1": DETAIL,
        "2.8": DETAIL,
        "2.9": DETAIL | {"locked"},
        "2.19": DETAIL | {"locked", "description"},
        "2.26": DETAIL | {"locked", "description", "tags"},
        "2.63": DETAIL | {"locked", "description", "tags", "trusted_image_certificates"},
        "2.71": DETAIL
        | {"locked", "description", "tags", "trusted_image_certificates", "server_groups"},
        "2.73": DETAIL
        | {
            "locked",
            "description",
            "tags",
            "trusted_image_certificates",
            "server_groups",
            "locked_reason",
        },  # fmt: skip
    }
    for version, keys in expected.items():
        shown = client.at(version).show(server_id)
        assert set(shown) == keys, (version, set(shown) ^ keys)
        listed = client.at(version).call("GET", "/servers/detail").json()["servers"][0]
        # server_groups is part of a single server's view only.
        assert set(listed) == keys - {"server_groups"}, (version, set(listed) ^ keys)
    latest = client.at("2.74").show(server_id)
    assert latest["flavor"] == {
        "vcpus": 1, "ram": 128, "disk": 1, "ephemeral": 0, "swap": 0,
        "original_name": "m1.nano", "extra_specs": {},
    }  # fmt: skip
    assert latest["locked"] is False and latest["locked_reason"] is None
    assert latest["tags"] == [] and latest["server_groups"] == []
    assert latest["trusted_image_certificates"] is None and latest["description"] is None
    assert latest["metadata"] == {"role": "db"}
    assert client.at("2.46").show(server_id)["flavor"]["id"] == TINY


def test_admins_see_extended_attributes(world: World) -> None:
    client = world.member()
    server_id = world.boot(client)
    admin_view = world.admin.show(server_id)
    assert set(admin_view) == DETAIL | ADMIN_21
    assert admin_view["OS-EXT-SRV-ATTR:host"] in world.nodes.hostnames
    assert admin_view["OS-EXT-SRV-ATTR:hypervisor_hostname"] == admin_view["OS-EXT-SRV-ATTR:host"]
    assert set(world.admin.at("2.3").show(server_id)) == DETAIL | ADMIN_21 | ADMIN_23
    at_216 = world.admin.at("2.16").show(server_id)
    assert at_216["host_status"] == "UP"
    assert "host_status" not in client.at("2.16").show(server_id)
    assert not set(client.at("2.3").show(server_id)) & (ADMIN_21 | ADMIN_23)


def test_other_projects_servers_do_not_exist(world: World) -> None:
    owner, stranger = world.member(), world.member()
    server_id = world.boot(owner)
    for method, path, body in (
        ("GET", f"/servers/{server_id}", None),
        ("PUT", f"/servers/{server_id}", {"server": {"name": "mine"}}),
        ("DELETE", f"/servers/{server_id}", None),
        ("POST", f"/servers/{server_id}/action", {"os-stop": None}),
        ("GET", f"/servers/{server_id}/metadata", None),
        ("GET", f"/servers/{server_id}/ips", None),
        ("GET", f"/servers/{server_id}/os-instance-actions", None),
    ):
        resp = stranger.call(method, path, json=body)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json()["itemNotFound"]["code"] == 404
    assert stranger.call("GET", "/servers").json() == {"servers": []}
    forbidden = stranger.call("GET", "/servers/detail", params={"all_tenants": "1"})
    assert forbidden.status_code == 403 and "forbidden" in forbidden.json()
    everyone = world.admin.call("GET", "/servers", params={"all_tenants": "true"}).json()
    assert server_id in {s["id"] for s in everyone["servers"]}
    only_owner = world.admin.call(
        "GET", "/servers", params={"all_tenants": "1", "project_id": owner.project_id}
    ).json()["servers"]
    assert [s["id"] for s in only_owner] == [server_id]
    assert world.admin.show(server_id)["id"] == server_id
    reader = new_member(world.cloud, world.admin.token, role="reader")
    reader_client = ComputeClient(world.cloud, reader.token(world.cloud))
    refused = reader_client.create(expect=403, imageRef=world.image["id"], flavorRef=TINY)
    assert "os_compute_api:servers:create" in refused["forbidden"]["message"]


def test_interfaces_show_each_servers_port(world: World) -> None:
    """os-interface (what Kubernetes' cloud provider reads a node's addresses from)."""
    client, stranger = world.member(), world.member()
    first, second = world.boot(client), world.boot(client)
    views = {}
    for server_id in (first, second):
        [address] = client.show(server_id)["addresses"]["private"]
        resp = client.call("GET", f"/servers/{server_id}/os-interface")
        assert resp.status_code == 200, resp.text
        [view] = resp.json()["interfaceAttachments"]
        assert set(view) == {"port_state", "fixed_ips", "port_id", "net_id", "mac_addr"}
        assert view["port_state"] == "ACTIVE"
        assert view["mac_addr"] == address["OS-EXT-IPS-MAC:mac_addr"]
        [fixed] = view["fixed_ips"]
        assert fixed["ip_address"] == address["addr"]
        assert all(UUID.match(v) for v in (fixed["subnet_id"], view["port_id"], view["net_id"]))
        one = client.call("GET", f"/servers/{server_id}/os-interface/{view['port_id']}")
        assert one.status_code == 200 and one.json() == {"interfaceAttachment": view}
        views[server_id] = view
    # One project network and subnet, a port each.
    assert views[first]["net_id"] == views[second]["net_id"]
    assert views[first]["fixed_ips"][0]["subnet_id"] == views[second]["fixed_ips"][0]["subnet_id"]
    assert views[first]["port_id"] != views[second]["port_id"]
    tagged = client.at("2.70").call("GET", f"/servers/{first}/os-interface").json()
    assert tagged["interfaceAttachments"][0] == {**views[first], "tag": None}

    other_port = f"/servers/{first}/os-interface/{views[second]['port_id']}"
    assert client.call("GET", other_port).json()["itemNotFound"]["code"] == 404
    for method, path, body in (
        ("GET", f"/servers/{first}/os-interface", None),
        ("GET", f"/servers/{first}/os-interface/{views[first]['port_id']}", None),
        ("POST", f"/servers/{first}/os-interface", {"interfaceAttachment": {}}),
        ("DELETE", f"/servers/{first}/os-interface/{views[first]['port_id']}", None),
    ):
        assert stranger.call(method, path, json=body).status_code == 404, (method, path)
    # A reader of the owner's project: may look, may not ask for a change.
    reader = new_member(world.cloud, world.admin.token, role="reader")
    reader_role = role_id(world.cloud, world.admin.token, "reader")
    grant(world.cloud, world.admin.token, client.project_id, reader.user_id, reader_role)
    project = world.cloud.request("GET", f"{V3}/projects/{client.project_id}", world.admin.token)
    token = reader.auth(world.cloud, project=project.json()["project"]["name"])
    reading = ComputeClient(world.cloud, token.headers["X-Subject-Token"])
    assert reading.call("GET", f"/servers/{first}/os-interface").json() == {
        "interfaceAttachments": [views[first]]
    }
    collection = f"/servers/{first}/os-interface"
    for who, expect in ((reading, 403), (client, 501)):
        attach = who.call("POST", collection, json={"interfaceAttachment": {}})
        detach = who.call("DELETE", f"{collection}/{views[first]['port_id']}")
        for rule, refused in (("create", attach), ("delete", detach)):
            assert refused.status_code == expect, (expect, refused.text)
            if expect == 403:
                assert f"os-attach-interfaces:{rule}" in refused.json()["forbidden"]["message"]
            else:
                assert "not available" in refused.json()["notImplemented"]["message"]
    assert client.call("DELETE", other_port).json()["itemNotFound"]["code"] == 404
    assert client.call("GET", f"/servers/{first}/os-interface").json() == {
        "interfaceAttachments": [views[first]]
    }
    unplugged = world.boot(client.at("2.37"), networks="none")
    listed = client.call("GET", f"/servers/{unplugged}/os-interface")
    assert listed.json() == {"interfaceAttachments": []}


def test_update_name_and_description(world: World) -> None:
    client = world.member("2.19")
    server_id = world.boot(client)
    resp = client.call(
        "PUT", f"/servers/{server_id}", json={"server": {"name": "renamed", "description": "d"}}
    )
    assert resp.status_code == 200, resp.text
    updated = resp.json()["server"]
    assert updated["name"] == "renamed" and updated["description"] == "d"
    # The update view is the basic one: no extension attributes, plain addresses.
    assert set(updated) == BASIC | {"progress", "locked", "description"}
    [address] = updated["addresses"]["private"]
    assert set(address) == {"addr", "version"}
    assert client.show(server_id)["name"] == "renamed"
    too_early = client.at("2.18").call(
        "PUT", f"/servers/{server_id}", json={"server": {"description": "x"}}
    )
    assert too_early.status_code == 400
    for body in ({"server": {"name": ""}}, {"server": {"name": " padded"}}, {"server": {"x": 1}}):
        assert client.call("PUT", f"/servers/{server_id}", json=body).status_code == 400
    access = client.call(
        "PUT", f"/servers/{server_id}", json={"server": {"accessIPv4": "10.1.2.3"}}
    ).json()["server"]
    assert access["accessIPv4"] == "10.1.2.3"
    # An IPv6 address is kept in its compressed form, whatever form it came in.
    long_form = "0000:0000:0000:0000:0000:babe:220.12.22.2"
    access = client.call(
        "PUT", f"/servers/{server_id}", json={"server": {"accessIPv6": long_form}}
    ).json()["server"]
    assert access["accessIPv6"] == "::babe:dc0c:1602"
    bad = client.call("PUT", f"/servers/{server_id}", json={"server": {"accessIPv4": "nope"}})
    assert bad.status_code == 400


def test_create_with_everything(world: World) -> None:
    client = world.member("2.52")
    user_data = base64.b64encode(b"#!/bin/sh\necho hi\n").decode()
    keypair = client.call("POST", "/os-keypairs", json={"keypair": {"name": "k1"}}, version="2.1")
    assert keypair.status_code == 200, keypair.text
    created = client.create(
        imageRef=f"{world.cloud.url}/image/v2/images/{world.image['id']}",
        flavorRef=f"{world.cloud.url}/compute/v2.1/flavors/{TINY}",
        networks="auto",
        key_name="k1",
        user_data=user_data,
        metadata={"a": "1", "b": "2"},
        security_groups=[{"name": "default"}],
        availability_zone="nova",
        config_drive=True,
        description="all of it",
        tags=["x", "y"],
        accessIPv4="192.0.2.10",
        accessIPv6="2001:0db8:0000:0000:0000:0000:0000:0001",
        adminPass="s3cret",
    )
    assert created["server"]["adminPass"] == "s3cret"
    assert created["server"]["security_groups"] == [{"name": "default"}]
    server = client.wait(created["server"]["id"], "ACTIVE")
    server = client.show(server["id"])
    assert server["key_name"] == "k1" and server["config_drive"] == "True"
    assert server["metadata"] == {"a": "1", "b": "2"} and server["tags"] == ["x", "y"]
    assert server["description"] == "all of it" and server["accessIPv4"] == "192.0.2.10"
    assert server["accessIPv6"] == "2001:db8::1"
    assert server["security_groups"] == [{"name": "default"}]
    admin_view = world.admin.at("2.3").show(server["id"])
    assert admin_view["OS-EXT-SRV-ATTR:user_data"] == user_data
    assert admin_view["OS-EXT-SRV-ATTR:hostname"] == server["name"]


def test_create_is_refused_when_the_request_is_wrong(world: World) -> None:
    client = world.member()
    image = world.image["id"]
    queued = world.cloud.request(
        "POST", "/image/v2/images", world.admin.token,
        json={"name": "empty", "disk_format": "raw", "container_format": "bare",
              "visibility": "public"},
    ).json()  # fmt: skip
    big = upload_image(world.cloud, world.admin.token, visibility="public", min_ram=4096)
    private_flavor = world.admin.call(
        "POST", "/flavors", json={"flavor": {"name": "secret-flavor", "ram": 64, "vcpus": 1,
                                             "disk": 1, "os-flavor-access:is_public": False}},
    )  # fmt: skip
    assert private_flavor.status_code == 200, private_flavor.text
    secret = private_flavor.json()["flavor"]["id"]
    cases: list[tuple[str, dict, str]] = [
        ("2.1", {"imageRef": image}, "flavorRef"),
        ("2.1", {"imageRef": image, "flavorRef": "nope"}, "Invalid flavorRef provided."),
        ("2.1", {"imageRef": image, "flavorRef": secret}, "Invalid flavorRef provided."),
        ("2.1", {"imageRef": "0" * 32, "flavorRef": TINY}, "Can not find requested image"),
        ("2.1", {"imageRef": queued["id"], "flavorRef": TINY}, "is not active"),
        ("2.1", {"imageRef": big["id"], "flavorRef": TINY}, "memory is too small"),
        ("2.1", {"flavorRef": TINY}, "Block Device Mapping is Invalid"),
        ("2.1", {"imageRef": image, "flavorRef": TINY, "user_data": "not base64!"}, "base 64"),
        ("2.1", {"imageRef": image, "flavorRef": TINY, "key_name": "none"}, "key_name"),
        ("2.1", {"imageRef": image, "flavorRef": TINY, "colour": "red"}, "colour"),
        ("2.1", {"imageRef": image, "flavorRef": TINY, "networks": "auto"}, "networks"),
        ("2.37", {"imageRef": image, "flavorRef": TINY}, "networks"),
        ("2.1", {"imageRef": image, "flavorRef": TINY, "availability_zone": "mars"}, "zone"),
        ("2.1", {"imageRef": image, "flavorRef": TINY, "min_count": 3, "max_count": 2},
         "min_count"),
        ("2.1", {"imageRef": image, "flavorRef": TINY, "min_count": 0}, "min_count"),
        ("2.1", {"imageRef": image, "flavorRef": TINY, "description": "early"}, "description"),
        ("2.51", {"imageRef": image, "flavorRef": TINY, "networks": "auto", "tags": ["t"]},
         "tags"),
        ("2.1", {"imageRef": image, "flavorRef": TINY, "accessIPv4": "1.2.3"}, "accessIPv4"),
        ("2.1", {"imageRef": image, "flavorRef": TINY, "security_groups": [{"name": "web"}]},
         "security_group"),
        ("2.1", {"imageRef": image, "flavorRef": TINY, "networks": [{"uuid": "nope"}]},
         "Network nope could not be found."),
        ("2.1", {"imageRef": image, "flavorRef": TINY,
                 "networks": [{"port": "6d7d4b29-5bfb-4d2e-9fb1-4a4d0b1b5a8e"}]}, "port"),
        ("2.1", {"imageRef": image, "flavorRef": TINY, "networks": [{"fixed_ip": "10.0.0.9"}]},
         "network uuid"),
        ("2.1", {"imageRef": "", "flavorRef": TINY, "block_device_mapping_v2": [
            {"uuid": "6d7d4b29-5bfb-4d2e-9fb1-4a4d0b1b5a8e", "source_type": "volume",
             "destination_type": "volume", "boot_index": 0}]}, "block storage"),
        ("2.1", {"imageRef": image, "flavorRef": TINY,
                 "personality": [{"path": "/etc/x", "contents": "eA=="}]}, "Personality"),
        ("2.1", {"imageRef": image, "flavorRef": TINY, "metadata": {"k": 1}}, "metadata"),
        ("2.1", {"imageRef": image, "flavorRef": TINY, "name": ""}, "name"),
        ("2.1", {"imageRef": image, "flavorRef": TINY, "availability_zone": "nova:somehost"},
         "forced_host"),
        ("2.74", {"imageRef": image, "flavorRef": TINY, "networks": "auto", "host": "h"},
         "requested_destination"),
    ]  # fmt: skip
    for version, server, needle in cases:
        body = {"server": {"name": "bad", **server}}
        resp = client.at(version).call("POST", "/servers", json=body)
        expected = 403 if needle in ("forced_host", "requested_destination") else 400
        assert resp.status_code == expected, (version, server, resp.text)
        fault = resp.json()["badRequest" if expected == 400 else "forbidden"]
        assert needle in fault["message"], (needle, fault)
    hints = {"server": {"name": "h", "imageRef": image, "flavorRef": TINY},
             "os:scheduler_hints": {"group": "not-a-uuid"}}  # fmt: skip
    assert client.call("POST", "/servers", json=hints).status_code == 400
    assert client.call("POST", "/servers", data="{nope").status_code == 400
    assert client.call("GET", "/servers/detail").json() == {"servers": []}
