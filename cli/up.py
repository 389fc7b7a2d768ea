"""`ciaostack up`: the whole cloud on one machine, with one command and no configuration.

Every step is idempotent, so running `up` again reuses the same state:

1. the home directory ($CIAOSTACK_HOME, default ~/.ciaostack, mode 0700);
2. the datastore schema (SQLite in the home unless [database] url says otherwise);
3. the Fernet key repository;
4. the SSNTP cluster CA and the scheduler, controller and agent certificates;
5. identity: the bootstrap (admin in project admin, roles, catalog pointing at
   this run's port) and a `demo` user with the member role in project `demo`;
   their generated passwords live in <home>/passwords.yaml (0600);
6. the processes, under a small supervisor: the API for now; the scheduler,
   controller and launcher join the list when they exist;
7. once the API answers: <home>/clouds.yaml (0600) and the line to use it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType
from typing import IO, Any

import yaml
from sqlalchemy import select

from ciaostack.cli.services import ensure_local_certs
from ciaostack.core import config
from ciaostack.core.compute import BOOTSTRAP_SEEDS
from ciaostack.core.db import migrate
from ciaostack.core.db.models import Project, Role, User
from ciaostack.core.db.session import Database
from ciaostack.core.identity import passwords
from ciaostack.core.identity.bootstrap import DEFAULT_DOMAIN_ID, bootstrap, ensure_user
from ciaostack.core.identity.keys import KeyRepository

HOST = "127.0.0.1"
ADMIN = "admin"  # user and project, as bootstrap names them
DEMO = "demo"  # user and project
CLOUDS = {f"ciaostack-{ADMIN}": ADMIN, f"ciaostack-{DEMO}": DEMO}
READY_TIMEOUT = 60.0
POLL = 0.2


class UpError(Exception):
    """A reason `up` cannot run, worded for the operator."""


# -- files ---------------------------------------------------------------------------


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, replacing any older copy atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def prepare_home(home: Path) -> IO[str]:
    """Create the home (0700) and lock it: two `up`s on one home would fight over it."""
    if not home.exists():
        home.mkdir(parents=True, mode=0o700)
        home.chmod(0o700)  # mkdir's mode is filtered by the umask
    lock = open(home / "up.lock", "w")  # noqa: SIM115 - held for the life of `up`
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise UpError(f"another `ciaostack up` is running with home {home}") from None
    return lock


def load_passwords(path: Path) -> dict[str, str]:
    """The generated passwords, created on the first run and reused afterwards."""
    stored: dict[str, Any] = {}
    if path.exists():
        stored = yaml.safe_load(path.read_text()) or {}
        if not isinstance(stored, dict):
            raise UpError(f"{path} is not a mapping of user name to password")
    result = {user: str(stored.get(user) or secrets.token_urlsafe(18)) for user in (ADMIN, DEMO)}
    if result != stored:
        write_private(path, yaml.safe_dump(result, default_flow_style=False))
    return result


def clouds_yaml(auth_url: str, region: str, pw: dict[str, str]) -> str:
    clouds = {
        name: {
            "auth": {
                "auth_url": auth_url,
                "username": user,
                "password": pw[user],
                "project_name": user,
                "user_domain_id": DEFAULT_DOMAIN_ID,
                "project_domain_id": DEFAULT_DOMAIN_ID,
            },
            "region_name": region,
            "identity_api_version": 3,
            "interface": "public",
        }
        for name, user in CLOUDS.items()
    }
    return yaml.safe_dump({"clouds": clouds}, default_flow_style=False, sort_keys=False)


# -- datastore and identity ----------------------------------------------------------


def port_free(host: str, port: int) -> bool:
    """Bind as gunicorn will (SO_REUSEADDR): only a listening socket makes this fail."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _password_to_set(db: Database, name: str, password: str) -> str | None:
    """The password to (re)write for a user, or None when the stored one already matches:
    a second run must not rewrite anything."""
    with db.session(readonly=True) as session:
        user = session.scalar(
            select(User).where(User.domain_id == DEFAULT_DOMAIN_ID, User.name == name)
        )
        if user is not None and passwords.check_secret(password, user.password_hash):
            return None
    return password


def setup_identity(conf: config.Config, public_url: str, pw: dict[str, str]) -> None:
    db = Database(conf.database_url)
    rounds = conf.get("identity", "password_hash_rounds")
    try:
        bootstrap(
            db,
            _password_to_set(db, ADMIN, pw[ADMIN]),
            public_url=public_url,
            region=conf.get("identity", "region"),
            rounds=rounds,
            seeds=BOOTSTRAP_SEEDS,
        )
        demo_password = _password_to_set(db, DEMO, pw[DEMO])
        with db.session() as session:
            project = session.scalar(
                select(Project).where(Project.domain_id == DEFAULT_DOMAIN_ID, Project.name == DEMO)
            )
            if project is None:
                project = Project(
                    name=DEMO, domain_id=DEFAULT_DOMAIN_ID, description="Demo project of `up`."
                )
                session.add(project)
                session.flush()
            member = session.scalars(
                select(Role).where(Role.name == "member", Role.domain_id == "")
            ).one()
            ensure_user(session, DEMO, demo_password, rounds, project, member)
    finally:
        db.dispose()


# -- processes -------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Runs in the child before exec: if `up` is killed outright, its children get
    SIGTERM from the kernel instead of living on unsupervised (Linux only)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclasses.dataclass
class Child:
    name: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


class Supervisor:
    """Starts child processes and stops them together.

    Children run in sessions of their own, so Ctrl-C at the terminal reaches only
    this process; on SIGINT or SIGTERM it stops every child with SIGTERM (their
    clean shutdown), newest first, and kills any that outlive the grace period (a
    second Ctrl-C kills at once). If a child exits by itself the others are
    stopped too: a cloud missing a part is not left half running.
    """

    def __init__(self, log_dir: Path, grace: float = 30.0) -> None:
        self.log_dir = log_dir
        self.grace = grace
        self.children: list[Child] = []
        self.stop_signal: int | None = None
        self._hurry = False
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> Supervisor:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._saved[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stop_signal is not None:
            self._hurry = True
        self.stop_signal = signum

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        self.log_dir.mkdir(mode=0o700, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    def exited(self) -> Child | None:
        """The first child that is no longer running, if any."""
        return next((c for c in self.children if c.process.poll() is not None), None)

    def wait(self) -> int:
        """Until a signal (exit 0) or the death of a child (exit 1)."""
        while self.stop_signal is None:
            child = self.exited()
            if child is not None:
                report_exit(child)
                return 1
            time.sleep(POLL)
        return 0

    def stop_all(self) -> None:
        """SIGTERM to each child's process group (the child and whatever it started,
        which outlives it if the child itself crashed), a grace period for the running
        ones, then SIGKILL to whatever is left in those groups."""
        for child in reversed(self.children):
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while any(c.process.poll() is None for c in self.children):
            if self._hurry or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for child in self.children:
            _signal_group(child, signal.SIGKILL)
            child.process.wait()


def _signal_group(child: Child, signum: int) -> None:
    """Each child leads a session and process group of its own (start_new_session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.process.pid, signum)


def report_exit(child: Child) -> None:
    print(
        f"ciaostack up: {child.name} exited with status {child.process.returncode}; "
        f"the end of {child.log_path}:\n{child.log_tail()}",
        file=sys.stderr,
        flush=True,
    )


def processes(config_args: list[str]) -> list[tuple[str, list[str]]]:
    """(name, argv) of every process the cloud runs, in start order."""
    ciaostack = [sys.executable, "-m", "ciaostack.cli.main", *config_args]
    return [
        ("scheduler", [*ciaostack, "scheduler"]),
        ("controller", [*ciaostack, "controller"]),
        ("launcher", [*ciaostack, "launcher"]),
        ("api", [*ciaostack, "api"]),
    ]


def wait_until_ready(sup: Supervisor, url: str) -> bool:
    """True once `url` answers 200; False if a signal asked us to stop first."""
    deadline = time.monotonic() + READY_TIMEOUT
    while sup.stop_signal is None:
        child = sup.exited()
        if child is not None:
            report_exit(child)
            raise UpError(f"{child.name} did not start")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our own URL
                if resp.status == 200:
                    return True
        except OSError:
            pass  # not listening yet (URLError, refused, timeout)
        if time.monotonic() > deadline:
            raise UpError(f"the API did not answer at {url} within {READY_TIMEOUT:.0f}s")
        time.sleep(POLL)
    return False


# -- the command -----------------------------------------------------------------------


def run(config_path: str | None) -> int:
    conf = config.load(Path(config_path) if config_path else None)
    if conf.get("identity", "mode") != "builtin":
        raise UpError("`up` runs the built-in identity service; unset [identity] mode")
    home = conf.home.resolve()
    port = conf.get("api", "port")
    if not port_free(HOST, port):
        raise UpError(
            f"port {port} on {HOST} is in use; free it or choose another with "
            f"CIAOSTACK_API__PORT or [api] port"
        )
    ssntp = (conf.get("ssntp", "host"), conf.get("ssntp", "port"))
    if not port_free(*ssntp):
        raise UpError(
            f"SSNTP port {ssntp[1]} on {ssntp[0]} is in use; free it or choose another with "
            f"CIAOSTACK_SSNTP__PORT or [ssntp] port"
        )
    lock = prepare_home(home)
    try:
        new = not (home / "passwords.yaml").exists()
        migrate.upgrade(conf.database_url)
        KeyRepository(conf.key_repository, conf.get("identity", "max_active_keys")).setup()
        ensure_local_certs(conf)
        pw = load_passwords(home / "passwords.yaml")
        url = f"http://{HOST}:{port}"
        setup_identity(conf, conf.get("api", "public_url") or url, pw)

        config_args = ["--config", config_path] if config_path else []
        env = {
            **os.environ,
            "CIAOSTACK_HOME": str(home),
            "CIAOSTACK_API__HOST": HOST,
            "CIAOSTACK_API__PORT": str(port),
        }
        with Supervisor(home / "log") as sup:
            for name, argv in processes(config_args):
                sup.start(name, argv, env)
            if not wait_until_ready(sup, f"{url}/identity/v3"):
                return 0
            clouds_path = home / "clouds.yaml"
            region = conf.get("identity", "region")
            write_private(clouds_path, clouds_yaml(f"{url}/identity/v3", region, pw))
            print_summary(url, home, new, clouds_path)
            return sup.wait()
    finally:
        lock.close()


def print_summary(url: str, home: Path, new: bool, clouds_path: Path) -> None:
    state = "new cloud" if new else "existing cloud"
    print(
        f"ciaostack is up at {url} ({state} in {home}; Ctrl-C stops it)\n"
        f"  cloud ciaostack-admin: user admin, project admin (role admin)\n"
        f"  cloud ciaostack-demo:  user demo, project demo (role member)\n"
        f"  passwords: {home / 'passwords.yaml'}  logs: {home / 'log'}\n"
        f"export OS_CLIENT_CONFIG_FILE={shlex.quote(str(clouds_path))} OS_CLOUD=ciaostack-admin",
        flush=True,
    )


def cmd_up(args: argparse.Namespace) -> int:
    try:
        return run(args.config)
    except UpError as exc:
        print(f"ciaostack up: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ciaostack up: interrupted", file=sys.stderr)
        return 130
