"""`ciaostack up`: one command, no configuration, a cloud the printed credentials work on.

Runs the real command as a subprocess with its own home and port, as a user
would, then stops it the way a user does (Ctrl-C) and starts it again.
"""

from __future__ import annotations

import os
import queue
import shlex
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.support.cloud import CIAOSTACK, Cloud, free_port

TABLES = ("users", "projects", "roles", "role_assignments", "services", "endpoints", "regions")


def up_env(home: Path, port: int) -> dict[str, str]:
    """No CIAOSTACK_* setting of the caller leaks in: `up` must need none."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIAOSTACK_")}
    env.update(
        CIAOSTACK_HOME=str(home),
        CIAOSTACK_API__PORT=str(port),
        CIAOSTACK_SSNTP__PORT=str(free_port()),
        # Fast hashing keeps the test quick; bench/ measures the real cost.
        CIAOSTACK_IDENTITY__PASSWORD_HASH_ROUNDS="4",
    )
    return env


class Up:
    """A running `ciaostack up` and the lines it printed."""

    def __init__(self, home: Path, port: int) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [CIAOSTACK, "up"],
            env=up_env(home, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for_export(self, timeout: float = 90) -> dict[str, str]:
        """The variables of the printed `export` line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.process.poll() is None, "".join(self.output)
                continue
            self.output.append(line)
            if line.startswith("export "):
                return dict(word.split("=", 1) for word in shlex.split(line)[1:])
        raise AssertionError(f"no export line in time: {''.join(self.output)}")

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        return self.process.wait(60)


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def issue_token(cloud: dict[str, Any]) -> requests.Response:
    auth = cloud["auth"]
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": auth["username"],
                        "domain": {"id": auth["user_domain_id"]},
                        "password": auth["password"],
                    }
                },
            },
            "scope": {
                "project": {
                    "name": auth["project_name"],
                    "domain": {"id": auth["project_domain_id"]},
                }
            },
        }
    }
    return requests.post(f"{auth['auth_url']}/auth/tokens", json=body, timeout=30)


def check_clouds(path: Path, port: int) -> dict[str, Any]:
    """Both clouds of clouds.yaml get a token, with the right roles and catalog."""
    assert path.stat().st_mode & 0o777 == 0o600
    clouds = yaml.safe_load(path.read_text())["clouds"]
    assert set(clouds) == {"ciaostack-admin", "ciaostack-demo"}
    for name, cloud in clouds.items():
        assert cloud["auth"]["auth_url"] == f"http://127.0.0.1:{port}/identity/v3"
        assert cloud["region_name"] == "RegionOne" and cloud["identity_api_version"] == 3
        resp = issue_token(cloud)
        assert resp.status_code == 201, (name, resp.text)
        token = resp.json()["token"]
        roles = {r["name"] for r in token["roles"]}
        assert ("admin" in roles) == (name == "ciaostack-admin"), roles
        assert "member" in roles
        [identity] = [s for s in token["catalog"] if s["type"] == "identity"]
        assert {e["url"] for e in identity["endpoints"]} == {f"http://127.0.0.1:{port}/identity"}
    return clouds


def snapshot(home: Path) -> dict[str, Any]:
    """What a second run must leave as it was."""
    with sqlite3.connect(home / "ciaostack.db") as db:
        counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # noqa: S608
        hashes = sorted(db.execute("SELECT name, password_hash FROM users").fetchall())
    files = {
        str(p.relative_to(home)): p.read_bytes()
        for sub in ("keys", "pki")
        for p in sorted((home / sub).iterdir())
    }
    return {
        "counts": counts,
        "hashes": hashes,
        "files": files,
        "passwords": (home / "passwords.yaml").read_text(),
    }


def connected_nodes(home: Path) -> int:
    with sqlite3.connect(home / "ciaostack.db") as db:
        return db.execute("SELECT count(*) FROM compute_nodes WHERE connected").fetchone()[0]


def test_up_runs_stops_and_comes_back_with_the_same_state(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = Up(home, free_port())
    try:
        exported = first.wait_for_export()
        assert exported["OS_CLOUD"] == "ciaostack-admin"
        clouds_path = Path(exported["OS_CLIENT_CONFIG_FILE"])
        assert clouds_path == home / "clouds.yaml"
        assert home.stat().st_mode & 0o777 == 0o700
        assert (home / "passwords.yaml").stat().st_mode & 0o777 == 0o600
        clouds = check_clouds(clouds_path, first.port)

        # A second `up` on the same home is refused at once.
        rival = subprocess.run(
            [CIAOSTACK, "up"], env=up_env(home, free_port()), capture_output=True, text=True
        )
        assert rival.returncode == 1 and "another `ciaostack up`" in rival.stderr

        # The scheduler, controller and launcher talk over TLS: the controller records
        # the launcher's node once the scheduler announces it.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not connected_nodes(home):
            time.sleep(0.2)
        assert connected_nodes(home) == 1, "".join(first.output)

        children = descendants(first.process.pid)
        # scheduler, controller, launcher, gunicorn's master and its two workers
        assert len(children) >= 6
    finally:
        code = first.stop(signal.SIGINT)
    assert code == 0, "".join(first.output)
    assert not [pid for pid in children if alive(pid)]
    before = snapshot(home)

    # Again, on another port: same state and passwords, the catalog follows the port.
    second = Up(home, free_port())
    try:
        exported = second.wait_for_export()
        assert any("existing cloud" in line for line in second.output)
        again = check_clouds(Path(exported["OS_CLIENT_CONFIG_FILE"]), second.port)
        for name, cloud in clouds.items():
            assert again[name]["auth"]["password"] == cloud["auth"]["password"]
        assert snapshot(home) == before
        children = descendants(second.process.pid)
    finally:
        code = second.stop(signal.SIGTERM)
    assert code == 0, "".join(second.output)
    assert not [pid for pid in children if alive(pid)]
    logs = sorted(p.name for p in (home / "log").glob("*.log"))
    assert logs == ["api.log", "controller.log", "launcher.log", "scheduler.log"]
    for log in (home / "log").glob("*.log"):
        assert "Traceback" not in log.read_text(), log.name


def test_up_refuses_a_port_in_use(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [CIAOSTACK, "up"], env=up_env(home, port), capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "in use" in result.stderr
    assert not home.exists()


def test_a_second_api_on_a_served_port_refuses_to_start(cloud: Cloud) -> None:
    """The API's workers listen with SO_REUSEPORT (the kernel spreads connections
    among them); a second `ciaostack api` on the same port must fail, not quietly take
    a share of the first one's connections."""
    result = subprocess.run(
        [CIAOSTACK, "api", "--bind", f"127.0.0.1:{cloud.port}"],
        env=cloud.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{cloud.port}" in result.stderr
    assert requests.get(f"{cloud.url}/identity", timeout=10).status_code == 300
