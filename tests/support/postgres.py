"""A throwaway PostgreSQL server for the `--db postgresql` test runs.

The server runs from Debian's `postgresql` package binaries in a private data
directory, listens only on 127.0.0.1 with a free port, trusts every local
connection and skips fsync: it lives for one test session and is deleted
afterwards. initdb and pg_ctl refuse to run as root, so under root the server
runs as the unprivileged `postgres` user while the tests (root) connect over TCP.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

SERVER_USER = "postgres"
MISSING = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found: install Debian's "
    "'postgresql' package (tools/install-system-deps installs every system dependency "
    "of the tests)"
)


class PostgresUnavailable(RuntimeError):
    """The machine lacks what a PostgreSQL test run needs."""


def find_bindir() -> Path:
    """The directory holding initdb and pg_ctl: pg_config's, else Debian's newest."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_major, reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise PostgresUnavailable(MISSING)


def _major(bindir: Path) -> int:
    """Debian keeps each major version in /usr/lib/postgresql/<major>/bin."""
    name = bindir.parent.name
    return int(name) if name.isdigit() else -1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """`with PostgresServer(tmpdir) as pg: url = pg.create_database("name")`."""

    def __init__(self, tmpdir: Path | str) -> None:
        self.bindir = find_bindir()
        self.port = 0
        self._as_other_user = os.geteuid() == 0
        self._tmpdir = Path(tmpdir)
        self._base: Path | None = None
        self._owned_base = False

    # -- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def data_dir(self) -> Path:
        assert self._base is not None, "server not started"
        return self._base / "data"

    @property
    def log_path(self) -> Path:
        assert self._base is not None, "server not started"
        return self._base / "postgres.log"

    def start(self) -> None:
        self._base = self._make_base()
        self._run(
            "initdb",
            *("-D", str(self.data_dir), "--auth=trust", f"--username={SERVER_USER}"),
            *("--encoding=UTF8", "--locale=C", "--no-sync"),
        )
        self.port = _free_port()
        options = (
            f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            "pg_ctl",
            *("-D", str(self.data_dir), "-l", str(self.log_path), "-o", options),
            *("-w", "-t", "30", "start"),
        )

    def stop(self) -> None:
        """Stop the server (immediately: its data is thrown away) and delete everything."""
        if self._base is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            self._run(
                "pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", check=False
            )
        target = self._base if self._owned_base else self.data_dir
        shutil.rmtree(target, ignore_errors=True)
        self._base = None

    # -- databases ------------------------------------------------------------------

    @property
    def admin_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={SERVER_USER} dbname=postgres"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy (psycopg 3) URL."""
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/{name}"

    # -- helpers --------------------------------------------------------------------

    def _make_base(self) -> Path:
        """A directory the server's user can own and reach.

        pytest's base temp dir is private to root (0700), so under root the
        server gets a dedicated directory below the system temp dir instead.
        """
        if not self._as_other_user:
            self._tmpdir.mkdir(parents=True, exist_ok=True)
            return self._tmpdir
        try:
            user = pwd.getpwnam(SERVER_USER)
        except KeyError as exc:
            raise PostgresUnavailable(
                f"running as root needs the '{SERVER_USER}' system user to run the server; "
                + MISSING
            ) from exc
        base = Path(tempfile.mkdtemp(prefix="ciaostack-pg-", dir="/tmp"))
        self._owned_base = True
        os.chown(base, user.pw_uid, user.pw_gid)
        return base

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self._as_other_user:
            cmd = ["runuser", "-u", SERVER_USER, "--", *cmd]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        # The server's user cannot enter root's home, so never inherit the cwd.
        out = subprocess.run(
            cmd, cwd=self._base, env=env, capture_output=True, text=True, check=False
        )
        if check and out.returncode != 0:
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError(
                f"{tool} failed ({out.returncode}): {out.stdout}{out.stderr}\n{log[-3000:]}"
            )
