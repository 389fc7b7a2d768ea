"""The two servers under test: ciaostack's API and a PyPI Keystone, both under gunicorn.

Both sides get the same gunicorn settings (worker class, workers, threads,
keep-alive, timeout), taken from what `ciaostack api` itself runs with, the
same bcrypt cost, SQLite, Fernet tokens, and the same catalog (the services of
ciaostack's catalog are copied into Keystone's).
"""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from ciaostack.api.server import APIServer
from ciaostack.core import config

HERE = Path(__file__).resolve().parent
CIAOSTACK = str(Path(sys.executable).with_name("ciaostack"))
START_TIMEOUT = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class Gunicorn:
    """The gunicorn settings both servers share."""

    workers: int
    threads: int
    worker_class: str
    keepalive: int
    timeout: int
    reuse_port: bool

    @classmethod
    def like_ciaostack(cls, workers: int, threads: int) -> Gunicorn:
        """ciaostack's own fixed options, so the peer follows if `ciaostack api` changes."""
        options = APIServer(config.load(Path(os.devnull)), {}).options
        return cls(
            workers=workers,
            threads=threads,
            worker_class=options["worker_class"],
            keepalive=options["keepalive"],
            timeout=options["timeout"],
            reuse_port=options["reuse_port"],
        )

    def cli_flags(self) -> list[str]:
        return [
            f"--workers={self.workers}",
            f"--threads={self.threads}",
            f"--worker-class={self.worker_class}",
            f"--keep-alive={self.keepalive}",
            f"--timeout={self.timeout}",
            "--no-control-socket",
            *(["--reuse-port"] if self.reuse_port else []),
        ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Server:
    """One gunicorn process tree and the URLs and tokens the benchmark needs from it."""

    name: str
    home: Path
    port: int
    identity_path: str  # /identity/v3 or /v3
    password: str
    ready_path: str  # answers < 400 once the server is up
    argv: list[str] = dataclasses.field(default_factory=list)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tokens_url(self) -> str:
        return f"{self.base}{self.identity_path}/auth/tokens"

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def tracebacks_since(self, offset: int) -> int:
        """Tracebacks the server logged after `offset`: errors the status codes may hide."""
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return log.read().count(b"Traceback")

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            try:
                if requests.get(self.base + self.ready_path, timeout=2).status_code < 400:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """CPU time used so far by the gunicorn master and its workers (from /proc)."""
        if self.process is None:
            return 0.0
        master = self.process.pid
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:  # the process ended meanwhile
                continue
            fields = text[text.rindex(")") + 2 :].split()
            pid, ppid = int(stat.parent.name), int(fields[1])
            if pid == master or ppid == master:
                total += int(fields[11]) + int(fields[12])  # utime + stime, in ticks
        return total / CLOCK_TICKS

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    # -- the bodies and tokens of the three measurements -----------------------------

    def password_body(self, scope: Any) -> dict[str, Any]:
        user = {"name": "admin", "domain": {"id": "default"}, "password": self.password}
        return {
            "auth": {
                "identity": {"methods": ["password"], "password": {"user": user}},
                "scope": scope,
            }
        }

    def issue(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        resp = requests.post(self.tokens_url, json=body, timeout=60)
        if resp.status_code != 201:
            raise RuntimeError(f"{self.name}: token issue gave {resp.status_code}: {resp.text}")
        return resp.headers["X-Subject-Token"], resp.json()["token"]

    def project_scope(self) -> dict[str, Any]:
        return {"project": {"name": "admin", "domain": {"id": "default"}}}


def _run(argv: list[str], env: dict[str, str], log: Path) -> None:
    with open(log, "ab") as out:
        done = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(argv[:3])} failed ({done.returncode}):\n{tail}")


def start_ciaostack(workdir: Path, gunicorn: Gunicorn, rounds: int, password: str) -> Server:
    """`ciaostack db upgrade`, `token-keys setup`, `bootstrap`, then `ciaostack api`."""
    home = workdir / "ciaostack"
    home.mkdir(parents=True)
    server = Server("ciaostack", home, free_port(), "/identity/v3", password, "/identity")
    # ciaostack api fixes the worker class, keep-alive and timeout; the rest goes by env.
    server.env = {
        **os.environ,
        "CIAOSTACK_HOME": str(home),
        "CIAOSTACK_CONFIG": str(home / "ciaostack.conf"),  # absent: defaults + env
        "CIAOSTACK_DATABASE__URL": f"sqlite:///{home / 'ciaostack.db'}",
        "CIAOSTACK_API__HOST": "127.0.0.1",
        "CIAOSTACK_API__PORT": str(server.port),
        "CIAOSTACK_API__WORKERS": str(gunicorn.workers),
        "CIAOSTACK_API__THREADS": str(gunicorn.threads),
        "CIAOSTACK_IDENTITY__PASSWORD_HASH_ROUNDS": str(rounds),
    }
    for args in (
        ["db", "upgrade"],
        ["token-keys", "setup"],
        ["bootstrap", f"--admin-password={password}"],
    ):
        _run([CIAOSTACK, *args], server.env, server.log_path)
    server.argv = [CIAOSTACK, "api"]
    server.start()
    return server


KEYSTONE_CONF = """\
[DEFAULT]
debug = false

[database]
connection = sqlite:///{home}/keystone.db

[token]
provider = fernet

[fernet_tokens]
key_repository = {home}/fernet-keys

[fernet_receipts]
key_repository = {home}/fernet-receipts

[credential]
key_repository = {home}/credential-keys

[identity]
password_hash_algorithm = bcrypt
password_hash_rounds = {rounds}
# bcrypt reads 72 bytes; at the default (4096) Keystone logs a warning on every check.
max_password_length = 72

[cache]
enabled = true
backend = dogpile.cache.memory
"""


def ensure_keystone_venv(venv: Path) -> str:
    """Create the peer's virtualenv once (pip install keystone gunicorn); its version."""
    python = venv / "bin" / "python"
    if not (venv / "bin" / "keystone-manage").exists() or not (venv / "bin" / "gunicorn").exists():
        from importlib.metadata import version

        print(f"installing Keystone into {venv} (once; about 30 s)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        # The same gunicorn release as ciaostack's, so the server loop is not a variable.
        pins = ["keystone", f"gunicorn=={version('gunicorn')}"]
        subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True)
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('keystone'))"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def start_keystone(
    workdir: Path, venv: Path, gunicorn: Gunicorn, rounds: int, password: str
) -> Server:
    """keystone-manage db_sync, fernet_setup, credential_setup, bootstrap; then gunicorn."""
    home = workdir / "keystone"
    home.mkdir(parents=True)
    server = Server("keystone", home, free_port(), "/v3", password, "/v3")
    conf = home / "keystone.conf"
    conf.write_text(KEYSTONE_CONF.format(home=home, rounds=rounds))
    shutil.copy(HERE / "keystone_app.py", home / "keystone_app.py")
    # The peer runs in its own venv: nothing of the caller's Python path leaks in.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["OS_KEYSTONE_CONFIG_FILES"] = str(conf)
    server.env = env
    manage = [str(venv / "bin" / "keystone-manage"), f"--config-file={conf}"]
    # The key repositories belong to whoever runs the benchmark.
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    owner = ["--keystone-user", user, "--keystone-group", group]
    url = f"{server.base}/v3/"
    steps = (
        ["db_sync"],
        ["fernet_setup", *owner],
        ["credential_setup", *owner],
        [
            "bootstrap",
            f"--bootstrap-password={password}",
            f"--bootstrap-admin-url={url}",
            f"--bootstrap-internal-url={url}",
            f"--bootstrap-public-url={url}",
            "--bootstrap-region-id=RegionOne",
        ],
    )
    for step in steps:
        _run([*manage, *step], env, server.log_path)
    server.argv = [
        str(venv / "bin" / "gunicorn"),
        *gunicorn.cli_flags(),
        f"--bind=127.0.0.1:{server.port}",
        f"--pythonpath={home}",
        "--log-level=info",
        "keystone_app:application",
    ]
    server.start()
    return server


def copy_catalog(server: Server, catalog: list[dict[str, Any]]) -> None:
    """Add to the peer the services of `catalog` it lacks, then restart it.

    Both sides' tokens then carry catalogs of the same shape and size. The
    restart matters: Keystone's in-memory cache is per worker, and a worker that
    did not handle the writes would keep serving the catalog it cached before.
    """
    token, body = server.issue(server.password_body(server.project_scope()))
    have = {entry["type"] for entry in body.get("catalog", [])}
    api = f"{server.base}{server.identity_path}"
    headers = {"X-Auth-Token": token}
    added = False
    for entry in catalog:
        if entry["type"] in have:
            continue
        service = {"type": entry["type"], "name": entry["name"], "enabled": True}
        resp = requests.post(
            f"{api}/services", json={"service": service}, headers=headers, timeout=60
        )
        resp.raise_for_status()
        service_id = resp.json()["service"]["id"]
        for ep in entry["endpoints"]:
            endpoint = {
                "service_id": service_id,
                "interface": ep["interface"],
                "url": ep["url"],
                "region_id": ep["region_id"],
            }
            resp = requests.post(
                f"{api}/endpoints", json={"endpoint": endpoint}, headers=headers, timeout=60
            )
            resp.raise_for_status()
        added = True
    if added:
        server.stop()
        server.start()
