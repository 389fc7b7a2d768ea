"""The real `openstack` CLI, openstacksdk and tempest's response schemas against
ciaostack's compute API, with servers booted by real scheduler, controller and
fake-launcher processes: the CLI's server life cycle includes pause/unpause,
resize with confirm, shelve and unshelve, and the console log."""

from __future__ import annotations

import functools
import importlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ciaostack.compat.microversion import Version
from tests.support.cli import CLI, OPENSTACK
from tests.support.cloud import Cloud
from tests.support.compute import TINY, ComputeClient, World, compute_world
from tests.support.identity import Member, new_member

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with compute_world(cloud, tmp_path_factory.mktemp("compute"), launchers=2) as world:
        yield world


@pytest.fixture(scope="module")
def alice(cloud: Cloud, world: World) -> Member:
    return new_member(cloud, world.admin.token)


def test_cli_server_lifecycle(tmp_path: Path, cloud: Cloud, world: World, alice: Member) -> None:
    assert OPENSTACK.exists(), f"no openstack executable at {OPENSTACK}"
    cli = CLI(tmp_path, cloud)
    cli.add_password_cloud("alice", alice.user["name"], alice.password, alice.project["name"])
    run = functools.partial(cli.ok, cloud="alice")
    as_json = functools.partial(cli.json, cloud="alice")

    keypair = as_json("keypair", "create", "--private-key", str(tmp_path / "key"), "cli-key")
    assert keypair["name"] == "cli-key"
    created = as_json(
        "server", "create", "--flavor", "m1.nano", "--image", world.image["id"],
        "--key-name", "cli-key", "--property", "role=web", "--wait", "cli-vm",
    )  # fmt: skip
    assert created["status"] == "ACTIVE" and created["name"] == "cli-vm"
    server_id = created["id"]
    listed = as_json("server", "list")
    [row] = [r for r in listed if r["ID"] == server_id]
    assert row["Status"] == "ACTIVE" and row["Networks"]
    shown = as_json("server", "show", "cli-vm")
    assert shown["id"] == server_id and shown["key_name"] == "cli-key"
    assert shown["OS-EXT-STS:task_state"] is None and shown["addresses"]
    client = ComputeClient(cloud, alice.token(cloud))
    run("server", "stop", "cli-vm")
    client.wait(server_id, "SHUTOFF")
    run("server", "start", "cli-vm")
    client.wait(server_id, "ACTIVE")
    run("server", "reboot", "--wait", "cli-vm")
    assert as_json("server", "show", "cli-vm")["status"] == "ACTIVE"
    run("server", "reboot", "--hard", "--wait", "cli-vm")
    run("server", "pause", "cli-vm")
    client.wait(server_id, "PAUSED")
    run("server", "unpause", "cli-vm")
    client.wait(server_id, "ACTIVE")
    # --wait returns once the resize waits for its verdict; confirm makes it final.
    run("server", "resize", "--flavor", "m1.tiny", "--wait", "cli-vm")
    assert as_json("server", "show", "cli-vm")["status"] == "VERIFY_RESIZE"
    run("server", "resize", "confirm", "cli-vm")
    resized = client.wait(server_id, "ACTIVE")
    assert resized["flavor"]["id"] == "1"
    assert "m1.tiny" in str(as_json("server", "show", "cli-vm")["flavor"])
    log = run("console", "log", "show", "cli-vm")
    assert log.startswith("[    0.000000] Linux version") and "boot 4" in log
    tail = run("console", "log", "show", "--lines", "3", "cli-vm").splitlines()
    assert len(tail) == 3 and tail[-1] == f"instance-{server_id[:8]} login: "
    # Shelved: offloaded at once; unshelved: running again from its shelved image.
    run("server", "shelve", "--wait", "cli-vm")
    assert as_json("server", "show", "cli-vm")["status"] == "SHELVED_OFFLOADED"
    run("server", "unshelve", "--wait", "cli-vm")
    assert as_json("server", "show", "cli-vm")["status"] == "ACTIVE"
    run("server", "delete", "--wait", "cli-vm")
    assert client.call("GET", f"/servers/{server_id}").status_code == 404
    assert not [r for r in as_json("server", "list") if r["ID"] == server_id]


def test_cli_migrate_as_admin(tmp_path: Path, cloud: Cloud, world: World) -> None:
    """`openstack server migrate --wait`, `server migration list` and `server
    migration confirm` as the administrator: the server ends on the other node."""
    cli = CLI(tmp_path, cloud)
    cli.add_password_cloud("admin", "admin", cloud.admin_password, "admin")
    run, as_json = cli.ok, cli.json

    created = as_json(
        "server", "create", "--flavor", "m1.nano", "--image", world.image["id"],
        "--wait", "mig-vm",
    )  # fmt: skip
    server_id = created["id"]
    before = created["OS-EXT-SRV-ATTR:host"]
    run("server", "migrate", "--wait", server_id)
    moved = as_json("server", "show", server_id)
    assert moved["status"] == "VERIFY_RESIZE"
    assert moved["OS-EXT-SRV-ATTR:host"] not in (before, None)
    [row] = as_json("server", "migration", "list", "--server", server_id)
    assert row["Status"] == "finished" and row["Source Compute"] == before
    assert row["Dest Compute"] == moved["OS-EXT-SRV-ATTR:host"]
    run("server", "migration", "confirm", server_id)
    admin = world.admin
    confirmed = admin.wait(server_id, "ACTIVE")
    assert confirmed["OS-EXT-SRV-ATTR:host"] == moved["OS-EXT-SRV-ATTR:host"]
    [row] = as_json("server", "migration", "list", "--server", server_id)
    assert row["Status"] == "confirmed"
    run("server", "delete", "--wait", server_id)


def test_openstacksdk_create_and_delete_with_wait(
    tmp_path: Path, cloud: Cloud, world: World, alice: Member
) -> None:
    import openstack

    conn = openstack.connect(
        auth_url=f"{cloud.url}/identity",
        username=alice.user["name"],
        password=alice.password,
        project_name=alice.project["name"],
        user_domain_name="Default",
        project_domain_id="default",
    )
    try:
        # auto_ip=False: with no network service in the catalog the SDK takes the cloud
        # for a nova-network one and looks for floating IP pools, which need the
        # network API; the fixed address it waits for is there either way.
        server = conn.create_server(
            "sdk-vm",
            image=world.image["id"],
            flavor="m1.nano",
            wait=True,
            timeout=120,
            auto_ip=False,
        )
        assert server.status == "ACTIVE"
        assert server.private_v4 and server.private_v4.startswith("172.")
        [interface] = conn.compute.server_interfaces(server.id)
        [fixed_ip] = interface.fixed_ips
        assert fixed_ip["ip_address"] == server.private_v4
        assert uuid.UUID(fixed_ip["subnet_id"]) and uuid.UUID(interface.port_id)
        assert interface.port_state == "ACTIVE" and interface.net_id and interface.mac_addr
        assert conn.get_server(server.id).status == "ACTIVE"
        assert conn.delete_server(server.id, wait=True, timeout=120)
        assert conn.get_server(server.id) is None
    finally:
        conn.close()


# -- tempest's response schemas -------------------------------------------------------------

VERSIONS = ("2.1", "2.3", "2.9", "2.16", "2.19", "2.26", "2.47", "2.51", "2.58", "2.62",
            "2.63", "2.71", "2.73", "2.74")  # fmt: skip


class Checker:
    """Validates responses with tempest's own validator and the schema module a tempest
    compute client (the servers client by default) would use at the request's
    microversion."""

    def __init__(self, module: str = "servers_client", client: str = "ServersClient") -> None:
        self.rest_client = importlib.import_module("tempest.lib.common.rest_client").RestClient
        services = importlib.import_module(f"tempest.lib.services.compute.{module}")
        self.versions = getattr(services, client).schema_versions_info

    def module(self, version: str) -> Any:
        wanted = Version.parse(version)
        for item in self.versions:
            low = Version.parse(item["min"]) if item["min"] else None
            high = Version.parse(item["max"]) if item["max"] else None
            if (low is None or low <= wanted) and (high is None or wanted <= high):
                return item["schema"]
        raise AssertionError(f"no tempest schema for {version}")

    def check(self, version: str, name: str, resp: requests.Response) -> None:
        # The servers client uses its 2.1 schema for what no later module redefines.
        schema = getattr(self.module(version), name, None) or getattr(self.module("2.1"), name)
        headers = _Headers({k.lower(): v for k, v in resp.headers.items()})
        headers.status = resp.status_code
        body = resp.json() if resp.content else None
        self.rest_client.validate_response(schema, headers, body)


class _Headers(dict):
    status: int = 0


def test_responses_match_tempest_schemas(world: World) -> None:
    checker = Checker()
    interfaces = Checker("interfaces_client", "InterfacesClient")
    for role, client in (("member", world.member()), ("admin", world.admin)):
        for version in VERSIONS:
            c = client.at(version)
            mv = Version.parse(version)
            body: dict[str, Any] = {
                "name": f"schema-{uuid.uuid4().hex[:6]}",
                "imageRef": world.image["id"],
                "flavorRef": TINY,
                "metadata": {"k": "v"},
            }
            if mv.matches("2.37"):
                body["networks"] = "auto"
            created = c.call("POST", "/servers", json={"server": body})
            checker.check(version, "create_server_with_admin_pass", created)
            server_id = created.json()["server"]["id"]
            c.wait(server_id, "ACTIVE")
            path = f"/servers/{server_id}"
            context = (role, version)
            for name, resp in (
                ("get_server", c.call("GET", path)),
                ("list_servers", c.call("GET", "/servers")),
                ("list_servers_detail", c.call("GET", "/servers/detail")),
                ("update_server", c.call("PUT", path, json={"server": {"name": "renamed"}})),
                ("list_addresses", c.call("GET", f"{path}/ips")),
                ("list_addresses_by_network", c.call("GET", f"{path}/ips/private")),
                ("list_server_metadata", c.call("GET", f"{path}/metadata")),
                ("set_server_metadata", c.call("PUT", f"{path}/metadata",
                                               json={"metadata": {"a": "b"}})),
                ("update_server_metadata", c.call("POST", f"{path}/metadata",
                                                  json={"metadata": {"c": "d"}})),
                ("set_show_server_metadata_item", c.call("GET", f"{path}/metadata/a")),
                ("delete_server_metadata_item", c.call("DELETE", f"{path}/metadata/a")),
                ("server_actions_common_schema", c.action(server_id, {"os-stop": None})),
                ("list_instance_actions", c.call("GET", f"{path}/os-instance-actions")),
            ):  # fmt: skip
                try:
                    checker.check(version, name, resp)
                except Exception as exc:
                    raise AssertionError(f"{context} {name}: {exc}\n{resp.text}") from exc
            listed = c.call("GET", f"{path}/os-interface")
            interfaces.check(version, "list_interfaces", listed)
            port_id = listed.json()["interfaceAttachments"][0]["port_id"]
            shown = c.call("GET", f"{path}/os-interface/{port_id}")
            interfaces.check(version, "get_create_interfaces", shown)
            c.wait(server_id, "SHUTOFF")
            actions = c.call("GET", f"{path}/os-instance-actions").json()["instanceActions"]
            shown = c.call("GET", f"{path}/os-instance-actions/{actions[0]['request_id']}")
            checker.check(version, "show_instance_action", shown)
            if mv.matches("2.26"):
                checker.check(version, "update_tag", c.call("PUT", f"{path}/tags/blue"))
                checker.check(version, "list_tags", c.call("GET", f"{path}/tags"))
                checker.check(
                    version, "update_all_tags", c.call("PUT", f"{path}/tags", json={"tags": ["x"]})
                )
                checker.check(version, "check_tag_existence", c.call("GET", f"{path}/tags/x"))
                checker.check(version, "delete_tag", c.call("DELETE", f"{path}/tags/x"))
                checker.check(version, "delete_all_tags", c.call("DELETE", f"{path}/tags"))
            checker.check(version, "delete_server", c.call("DELETE", path))
            c.wait_gone(server_id)
