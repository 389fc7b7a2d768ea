"""A real ciaostack API (gunicorn subprocess) for functional and end-to-end tests."""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

CIAOSTACK = str(Path(sys.executable).with_name("ciaostack"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Cloud:
    """One running API server and what a test needs to talk to it."""

    home: Path
    port: int
    env: dict[str, str]
    admin_password: str
    process: subprocess.Popen | None = None
    # What answers once the server is up: /identity serves nothing in external mode.
    ready_path: str = "/identity"
    ready_status: int = 300

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def identity_url(self) -> str:
        return f"{self.url}/identity/v3"

    @property
    def log_path(self) -> Path:
        return self.home / "api.log"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [CIAOSTACK, *args], env=self.env, check=check, capture_output=True, text=True
        )

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(
            [CIAOSTACK, "api"], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"api exited: {self.log_path.read_text()[-3000:]}")
            try:
                resp = requests.get(f"{self.url}{self.ready_path}", timeout=1)
                if resp.status_code == self.ready_status:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or no worker has taken the connection yet
            time.sleep(0.1)
        self.stop()  # a server that never became ready must not outlive the test run
        raise RuntimeError(f"api did not start: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    # -- HTTP helpers -------------------------------------------------------------

    def auth(
        self,
        user: str = "admin",
        password: str | None = None,
        project: str | None = "admin",
        domain: str = "default",
    ) -> requests.Response:
        identity = {
            "methods": ["password"],
            "password": {
                "user": {
                    "name": user,
                    "domain": {"id": domain},
                    "password": self.admin_password if password is None else password,
                }
            },
        }
        body: dict[str, Any] = {"auth": {"identity": identity}}
        if project is not None:
            body["auth"]["scope"] = {"project": {"name": project, "domain": {"id": domain}}}
        return requests.post(f"{self.identity_url}/auth/tokens", json=body, timeout=30)

    def token(self, *args: Any, **kwargs: Any) -> str:
        resp = self.auth(*args, **kwargs)
        assert resp.status_code == 201, resp.text
        return resp.headers["X-Subject-Token"]

    def request(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        """`path` is relative to the server root, e.g. /identity/v3/users."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is not None:
            headers["X-Auth-Token"] = token
        kwargs.setdefault("timeout", 30)
        return requests.request(method, f"{self.url}{path}", headers=headers, **kwargs)


def make_cloud(home: Path, database_url: str, extra_env: dict[str, str] | None = None) -> Cloud:
    """Upgrade the schema, create keys, bootstrap, start the API."""
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    port = free_port()
    password = secrets.token_urlsafe(12)
    env = {
        **os.environ,
        "CIAOSTACK_HOME": str(home),
        "CIAOSTACK_CONFIG": str(home / "ciaostack.conf"),
        "CIAOSTACK_DATABASE__URL": database_url,
        "CIAOSTACK_API__PORT": str(port),
        "CIAOSTACK_API__WORKERS": "2",
        # Fast hashing keeps the suite quick; bench/ measures the real cost.
        "CIAOSTACK_IDENTITY__PASSWORD_HASH_ROUNDS": "4",
        "CIAOSTACK_LOG__LEVEL": "INFO",
        **(extra_env or {}),
    }
    cloud = Cloud(home=home, port=port, env=env, admin_password=password)
    cloud.run("db", "upgrade")
    cloud.run("token-keys", "setup")
    cloud.run("bootstrap", f"--admin-password={password}")
    cloud.start()
    return cloud


def make_bare_cloud(home: Path, database_url: str, extra_env: dict[str, str]) -> Cloud:
    """Schema only, no keys and no bootstrap, then start the API: a cloud whose
    identity lives elsewhere (external Keystone mode). It answers on /compute."""
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    port = free_port()
    env = {
        **os.environ,
        "CIAOSTACK_HOME": str(home),
        "CIAOSTACK_CONFIG": str(home / "ciaostack.conf"),
        "CIAOSTACK_DATABASE__URL": database_url,
        "CIAOSTACK_API__PORT": str(port),
        "CIAOSTACK_API__WORKERS": "2",
        "CIAOSTACK_LOG__LEVEL": "INFO",
        **extra_env,
    }
    cloud = Cloud(
        home=home, port=port, env=env, admin_password="", ready_path="/compute", ready_status=200
    )
    cloud.run("db", "upgrade")
    cloud.start()
    return cloud
