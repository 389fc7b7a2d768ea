"""The real `openstack` CLI and openstacksdk against ciaostack's image service.

Two ordinary projects take part, each with a member user: alice owns the
images and shares one with bob, who accepts it. Image data goes through the
clients' own upload and download paths, and comes back byte for byte.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cloud import Cloud
from tests.support.identity import Member, new_member

pytestmark = pytest.mark.e2e

OPENSTACK = Path(sys.executable).with_name("openstack")


class CLI:
    """`openstack` with a clouds.yaml of its own and none of the caller's OS_* variables."""

    def __init__(self, home: Path, cloud: Cloud, users: dict[str, Member]) -> None:
        assert OPENSTACK.exists(), f"no openstack executable at {OPENSTACK}"
        clouds = {
            name: {
                "auth": {
                    "auth_url": f"{cloud.url}/identity",
                    "username": member.user["name"],
                    "password": member.password,
                    "project_name": member.project["name"],
                    "user_domain_name": "Default",
                    "project_domain_id": "default",
                },
                "identity_api_version": 3,
                "interface": "public",
            }
            for name, member in users.items()
        }
        clouds_yaml = home / "clouds.yaml"
        clouds_yaml.write_text(yaml.safe_dump({"clouds": clouds}))
        base = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        self.env = {**base, "HOME": str(home), "OS_CLIENT_CONFIG_FILE": str(clouds_yaml)}

    def run(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(OPENSTACK), "--os-cloud", user, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def ok(self, user: str, *args: str) -> str:
        proc = self.run(user, *args)
        assert proc.returncode == 0, f"openstack {' '.join(args)}:\n{proc.stderr}"
        return proc.stdout

    def json(self, user: str, *args: str) -> Any:
        return json.loads(self.ok(user, *args, "-f", "json"))


@pytest.fixture(scope="module")
def users(cloud: Cloud) -> dict[str, Member]:
    admin = cloud.token()
    return {"alice": new_member(cloud, admin), "bob": new_member(cloud, admin)}


@pytest.fixture
def cli(tmp_path: Path, cloud: Cloud, users: dict[str, Member]) -> CLI:
    return CLI(tmp_path, cloud, users)


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "disk.raw"
    path.write_bytes(os.urandom(5 * (1 << 20) + 17))
    return path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def test_cli_image_lifecycle_and_sharing(
    cli: CLI, users: dict[str, Member], payload: Path, tmp_path: Path
) -> None:
    created = cli.json(
        "alice",
        "image",
        "create",
        "--file",
        str(payload),
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
        "--property",
        "os_distro=debian",
        "cli-image",
    )
    image_id = created["id"]
    try:
        shown = cli.json("alice", "image", "show", "cli-image")
        assert shown["id"] == image_id and shown["status"] == "active"
        assert shown["checksum"] == md5(payload)
        assert shown["size"] == payload.stat().st_size
        assert shown["properties"]["os_distro"] == "debian"
        assert shown["owner"] == users["alice"].project_id

        listed = cli.json("alice", "image", "list")
        assert [i["ID"] for i in listed if i["Name"] == "cli-image"] == [image_id]

        saved = tmp_path / "saved.raw"
        cli.ok("alice", "image", "save", "--file", str(saved), "cli-image")
        assert filecmp.cmp(payload, saved, shallow=False)

        cli.ok(
            "alice",
            "image",
            "set",
            "--property",
            "hw_disk_bus=scsi",
            "--name",
            "cli-renamed",
            image_id,
        )
        shown = cli.json("alice", "image", "show", image_id)
        assert shown["name"] == "cli-renamed"
        assert shown["properties"]["hw_disk_bus"] == "scsi"
        assert shown["properties"]["os_distro"] == "debian"

        # Share with bob's project; bob sees it only once accepted.
        bob_project = users["bob"].project_id
        assert cli.run("bob", "image", "show", image_id).returncode != 0
        member = cli.json("alice", "image", "add", "project", image_id, bob_project)
        assert member["status"] == "pending"
        assert image_id not in {i["ID"] for i in cli.json("bob", "image", "list")}
        cli.ok("bob", "image", "set", "--accept", image_id)
        members = cli.json("alice", "image", "member", "list", image_id)
        assert [(m["Member ID"], m["Status"]) for m in members] == [(bob_project, "accepted")]
        assert image_id in {i["ID"] for i in cli.json("bob", "image", "list")}
        bobs_copy = tmp_path / "bob.raw"
        cli.ok("bob", "image", "save", "--file", str(bobs_copy), image_id)
        assert filecmp.cmp(payload, bobs_copy, shallow=False)
        assert cli.run("bob", "image", "delete", image_id).returncode != 0

        cli.ok("alice", "image", "delete", image_id)
        assert cli.run("alice", "image", "show", image_id).returncode != 0
        assert cli.run("bob", "image", "show", image_id).returncode != 0
    finally:
        cli.run("alice", "image", "delete", image_id)


@pytest.fixture
def conn(cloud: Cloud, users: dict[str, Member]) -> Iterator[Any]:
    import openstack

    alice = users["alice"]
    connection = openstack.connect(
        auth_url=f"{cloud.url}/identity",
        username=alice.user["name"],
        password=alice.password,
        project_name=alice.project["name"],
        user_domain_name="Default",
        project_domain_id="default",
        identity_api_version="3",
    )
    yield connection
    connection.close()


@pytest.mark.parametrize("use_import", [False, True], ids=["put", "glance-direct"])
def test_sdk_create_and_download(
    conn: Any, payload: Path, tmp_path: Path, use_import: bool
) -> None:
    image = conn.create_image(
        f"sdk-{'import' if use_import else 'put'}",
        filename=str(payload),
        disk_format="raw",
        container_format="bare",
        wait=True,
        validate_checksum=True,
        use_import=use_import,
        meta={"ciaostack_note": "from-sdk"},
    )
    try:
        assert image.status == "active"
        fetched = conn.image.get_image(image.id)
        assert fetched.checksum == md5(payload)
        assert fetched.hash_algo == "sha512"
        assert fetched.hash_value == hashlib.sha512(payload.read_bytes()).hexdigest()
        assert fetched.properties["ciaostack_note"] == "from-sdk"
        out = tmp_path / "downloaded.raw"
        conn.image.download_image(image, output=str(out))
        assert filecmp.cmp(payload, out, shallow=False)
        streamed = conn.image.download_image(image, stream=True)
        assert b"".join(streamed.iter_content(1 << 20)) == payload.read_bytes()
        # One image per page: the SDK follows the `next` links to the end.
        assert image.id in [i.id for i in conn.image.images(limit=1)]
    finally:
        conn.delete_image(image.id, wait=True)
    assert conn.image.find_image(image.id) is None
