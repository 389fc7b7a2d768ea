"""The real `openstack` command, run the way a user runs it: a clouds.yaml of its own,
nothing from the caller's OS_* variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support.cloud import Cloud

OPENSTACK = Path(sys.executable).with_name("openstack")


class CLI:
    """Runs `openstack` with a clouds.yaml of its own and nothing from the caller's OS_*."""

    def __init__(self, home: Path, cloud: Cloud) -> None:
        assert OPENSTACK.exists(), f"no openstack executable at {OPENSTACK}"
        self.cloud = cloud
        self.clouds_yaml = home / "clouds.yaml"
        self.clouds: dict[str, dict[str, Any]] = {}
        base = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        self.env = {**base, "HOME": str(home), "OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml)}

    def add_password_cloud(self, name: str, user: str, password: str, project: str) -> None:
        self.clouds[name] = {
            "auth": {
                "auth_url": f"{self.cloud.url}/identity",
                "username": user,
                "password": password,
                "project_name": project,
                "user_domain_name": "Default",
                "project_domain_id": "default",
            },
            "identity_api_version": 3,
            "interface": "public",
        }
        self.clouds_yaml.write_text(yaml.safe_dump({"clouds": self.clouds}))

    def run(
        self, *args: str, cloud: str | None = "admin", env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        selector = ["--os-cloud", cloud] if cloud else []
        return subprocess.run(
            [str(OPENSTACK), *selector, *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
        )

    def ok(self, *args: str, **kwargs: Any) -> str:
        proc = self.run(*args, **kwargs)
        assert proc.returncode == 0, f"openstack {' '.join(args)}:\n{proc.stderr}"
        return proc.stdout

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self.ok(*args, "-f", "json", **kwargs))
