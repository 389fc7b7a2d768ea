"""The compute side of a test cloud: scheduler, controller and fake launchers as real
processes beside the API server, sharing its datastore and home, plus a client for
the compute API with the waits servers need."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select

from ciaostack.compat.microversion import Version
from ciaostack.core.db.models import ComputeNode
from ciaostack.core.db.session import Database
from tests.support.cloud import CIAOSTACK, Cloud
from tests.support.core import Process, free_port, wait_until
from tests.support.identity import new_member

COMPUTE = "/compute/v2.1"
TINY = "42"  # m1.nano, one of the flavors bootstrap creates


@dataclasses.dataclass
class ComputeNodes:
    """The processes behind the compute API, and the names of the nodes they run."""

    env: dict[str, str]
    home: Path
    db: Database
    processes: list[Process]
    hostnames: list[str]

    def add_launcher(self, hostname: str | None = None, **settings: str) -> Process:
        """A fake launcher; `settings` are extra CIAOSTACK_* variables for it alone."""
        hostname = hostname or f"node-{uuid.uuid4().hex[:6]}"
        proc = Process(
            hostname,
            ["launcher", "--state-dir", str(self.home / hostname), "--hostname", hostname],
            {**self.env, **settings},
            self.home,
        ).start()
        self.processes.append(proc)
        self.hostnames.append(hostname)
        wait_until(lambda: self.connected(hostname), timeout=30, what=f"{hostname} to report")
        return proc

    def connected(self, hostname: str) -> bool:
        with self.db.session(readonly=True) as session:
            return (
                session.scalar(
                    select(ComputeNode.uuid).where(
                        ComputeNode.hostname == hostname, ComputeNode.connected.is_(True)
                    )
                )
                is not None
            )

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.text()[-3000:]}" for p in self.processes)


@contextlib.contextmanager
def compute_nodes(
    cloud: Cloud, home: Path, launchers: int = 2, **settings: str
) -> Iterator[ComputeNodes]:
    """Scheduler, controller and `launchers` fake launchers for `cloud`, stopped afterwards;
    their logs must hold no traceback. `settings` are extra CIAOSTACK_* variables."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **cloud.env,
        "CIAOSTACK_SSNTP__PORT": str(free_port()),
        "CIAOSTACK_SSNTP__HEARTBEAT": "1",
        "CIAOSTACK_CONTROLLER__RESEND_AFTER": "3",
        "CIAOSTACK_LAUNCHER__STATS_INTERVAL": "1",
        "CIAOSTACK_LAUNCHER__FAKE_BOOT_DELAY": "0.05",
        "CIAOSTACK_LAUNCHER__STATE_FSYNC": "false",
        **settings,
    }
    subprocess.run(
        [CIAOSTACK, "certs", "init", "--local"], env=env, check=True, capture_output=True
    )
    db = Database(env["CIAOSTACK_DATABASE__URL"])
    nodes = ComputeNodes(env=env, home=home, db=db, processes=[], hostnames=[])
    try:
        for name in ("scheduler", "controller"):
            nodes.processes.append(Process(name, [name], env, home).start())
        for _ in range(launchers):
            nodes.add_launcher()
        yield nodes
    finally:
        for proc in reversed(nodes.processes):
            proc.stop()
        db.dispose()
    for proc in nodes.processes:
        assert "Traceback" not in proc.text(), f"{proc.name}:\n{proc.text()[-4000:]}"


@dataclasses.dataclass
class ComputeClient:
    """One caller of the compute API at a chosen microversion."""

    cloud: Cloud
    token: str
    version: str = "2.1"
    project_id: str = ""

    def call(
        self, method: str, path: str, version: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = {"OpenStack-API-Version": f"compute {version or self.version}"}
        headers.update(kwargs.pop("headers", {}) or {})
        return self.cloud.request(method, f"{COMPUTE}{path}", self.token, headers=headers, **kwargs)

    def at(self, version: str) -> ComputeClient:
        return dataclasses.replace(self, version=version)

    def create(self, expect: int = 202, **server: Any) -> dict[str, Any]:
        body = {"server": {"name": f"vm-{uuid.uuid4().hex[:6]}", **server}}
        hints = body["server"].pop("hints", None)
        if hints is not None:
            body["os:scheduler_hints"] = hints
        resp = self.call("POST", "/servers", json=body)
        assert resp.status_code == expect, resp.text
        return resp.json()

    def group(self, name: str, policy: str) -> str:
        """A server group of the caller's project (2.1's `policies` form); its id."""
        body = {"server_group": {"name": name, "policies": [policy]}}
        resp = self.at("2.1").call("POST", "/os-server-groups", json=body)
        assert resp.status_code == 200, resp.text
        return resp.json()["server_group"]["id"]

    def show(self, server_id: str) -> dict[str, Any]:
        resp = self.call("GET", f"/servers/{server_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()["server"]

    def action(self, server_id: str, body: dict[str, Any], **kwargs: Any) -> requests.Response:
        return self.call("POST", f"/servers/{server_id}/action", json=body, **kwargs)

    def wait(self, server_id: str, status: str, timeout: float = 30.0) -> dict[str, Any]:
        """The server once it has `status` and no task in flight."""
        deadline = time.monotonic() + timeout
        server: dict[str, Any] = {}
        while time.monotonic() < deadline:
            server = self.at("2.1").show(server_id)
            if server["status"] == status and server["OS-EXT-STS:task_state"] is None:
                return server
            if server["status"] == "ERROR" and status != "ERROR":
                raise AssertionError(f"server went to ERROR: {server.get('fault')}")
            time.sleep(0.1)
        raise AssertionError(f"server {server_id} is not {status} after {timeout}s: {server}")

    def wait_gone(self, server_id: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.call("GET", f"/servers/{server_id}").status_code == 404:
                return
            time.sleep(0.1)
        raise AssertionError(f"server {server_id} still exists after {timeout}s")


def upload_image(cloud: Cloud, token: str, **fields: Any) -> dict[str, Any]:
    """An active image with a few bytes of data, through the image API."""
    body = {"name": f"img-{uuid.uuid4().hex[:6]}", "disk_format": "raw", "container_format": "bare"}
    body.update(fields)
    resp = cloud.request("POST", "/image/v2/images", token, json=body)
    assert resp.status_code == 201, resp.text
    image = resp.json()
    resp = cloud.request(
        "PUT",
        f"/image/v2/images/{image['id']}/file",
        token,
        data=b"\0" * 1024,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert resp.status_code == 204, resp.text
    return image


@dataclasses.dataclass
class World:
    """A cloud with compute nodes, its administrator, a public image, and fresh projects."""

    cloud: Cloud
    nodes: ComputeNodes
    admin: ComputeClient
    image: dict[str, Any]

    def member(self, version: str = "2.1", role: str = "member") -> ComputeClient:
        """A client for a new user with `role` on a new project of its own."""
        member = new_member(self.cloud, self.admin.token, role=role)
        return ComputeClient(self.cloud, member.token(self.cloud), version, member.project_id)

    def boot(self, client: ComputeClient, **server: Any) -> str:
        """An ACTIVE server of `client`'s (the public image and m1.nano unless told)."""
        server.setdefault("imageRef", self.image["id"])
        server.setdefault("flavorRef", TINY)
        if Version.parse(client.version).matches("2.37") and "networks" not in server:
            server["networks"] = "auto"
        server_id = client.create(**server)["server"]["id"]
        client.wait(server_id, "ACTIVE")
        return server_id


@contextlib.contextmanager
def compute_world(cloud: Cloud, home: Path, launchers: int = 2, **settings: str) -> Iterator[World]:
    with compute_nodes(cloud, home, launchers, **settings) as nodes:
        token = cloud.token()
        image = upload_image(cloud, token, visibility="public")
        yield World(cloud, nodes, ComputeClient(cloud, token), image)
