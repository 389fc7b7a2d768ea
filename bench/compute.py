"""bench/compute: servers through the compute API at scale.

(a) create: servers taken to ACTIVE per second through `POST /servers` (one server
    per request) with 32 concurrent clients and 1,000 simulated nodes, and the
    create request's latency;
(b) list: the cloud filled to 10,000 servers (through the API, `max_count` batches),
    then `GET /servers/detail?limit=1000` latency and the time to page through every
    server by following `servers_links`.

Everything is real and on this machine: `ciaostack db upgrade`, `token-keys setup`,
`bootstrap`, `certs init --local`, then the scheduler, a controller, one `ciaostack
launcher --simulate N` process (N fake nodes, each its own TLS session, their state
files on a tmpfs where the machine has one: see SHM) and `ciaostack api` (gunicorn,
its default 2 workers x 4 threads), on SQLite or a throwaway PostgreSQL
(`--db postgresql`).

Targets (this 2-core machine): at least 250 servers/s to ACTIVE, p50 create under
20 ms, a 1,000-server page under 200 ms. Nova's 1,000-fake-compute Rally run: 5.4
boot+delete cycles/s, ~14 s to list ~10,000 servers.

Run: python -m bench.compute [--only a,b] [--launchers 1000] [--servers 3000] [--fill 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CIAOSTACK = str(Path(sys.executable).with_name("ciaostack"))
COMPUTE = "/compute/v2.1"
# Seconds between two counts of the instances by state while waiting for them to be
# ACTIVE. Each count reads the whole instances table (no index on the state: the
# product does not need one) on the machine's two cores: at 0.1 s it took a tenth of
# a core during (a). The end of (a) comes from the instances' launched_at instead.
WATCH_INTERVAL = 0.5
FLAVOR = "42"  # m1.nano (128 MB, 1 vCPU, 1 GB), seeded by bootstrap
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TARGETS = {"per_s": 250.0, "create_p50_ms": 20.0, "page_ms": 200.0}
NOVA = "Nova, 1,000 fake computes (Rally): 5.4 boot+delete/s, boot median 6.2 s"
NOVA_LIST = "Nova: ~14.4 s to list ~10,000 servers"
# Where the simulated nodes keep their state files: in memory where the machine has a
# tmpfs. 1,000 real nodes each write theirs to their own disk; here, creating and
# renaming them on the one ext4 disk cost the simulation about 1.8 ms of CPU per
# server (three files per start), on the cores the cloud's own processes need.
SHM = Path("/dev/shm")
# What the nodes' files take at 10,000 servers is about 40 MB; a container's default
# /dev/shm (64 MB) is too small to be sure of, and then the disk is used.
SHM_ROOM = 512 * 2**20


# -- numbers -------------------------------------------------------------------------------


def pct(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; NaN for no samples."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _proc_cpu() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, user+system seconds) for every process."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        fields = text[text.rindex(")") + 2 :].split()
        table[int(stat.parent.name)] = (
            int(fields[1]),
            (int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
        )
    return table


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- the cloud -------------------------------------------------------------------------------


@dataclasses.dataclass
class Stack:
    """A fresh ciaostack home and its processes: scheduler, controller, launchers, API."""

    home: Path
    env: dict[str, str]
    port: int
    admin_password: str
    procs: dict[str, subprocess.Popen] = dataclasses.field(default_factory=dict)
    # Processes the stack did not start but whose CPU counts (PostgreSQL's postmaster).
    watched: dict[str, int] = dataclasses.field(default_factory=dict)
    db: Any = None  # ciaostack.core.db.session.Database, for counting states

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def run(self, *args: str) -> None:
        with open(self.home / "setup.log", "ab") as log:
            done = subprocess.run(
                [CIAOSTACK, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, check=False
            )
        if done.returncode:
            tail = (self.home / "setup.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"ciaostack {' '.join(args[:2])} failed:\n{tail}")

    def start(self, name: str, args: list[str], **env: str) -> None:
        with open(self.home / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                [CIAOSTACK, *args],
                env={**self.env, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}):\n{self.log(name)[-3000:]}")

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each process and its children (gunicorn's workers)."""
        table = _proc_cpu()
        roots = {name: proc.pid for name, proc in self.procs.items()} | self.watched
        return {
            name: sum(cpu for pid, (ppid, cpu) in table.items() if root in (pid, ppid))
            for name, root in roots.items()
        }

    def tracebacks(self) -> dict[str, int]:
        return {name: self.log(name).count("Traceback") for name in self.procs}

    def connected_nodes(self) -> int:
        from sqlalchemy import func, select

        from ciaostack.core.db.models import ComputeNode

        with self.db.session(readonly=True) as s:
            return s.scalar(
                select(func.count()).select_from(ComputeNode).where(ComputeNode.connected.is_(True))
            )

    def states(self) -> dict[str, int]:
        """Live instances by vm_state."""
        from sqlalchemy import func, select

        from ciaostack.core.db.models import Instance

        with self.db.session(readonly=True) as s:
            rows = s.execute(
                select(Instance.vm_state, func.count())
                .where(Instance.deleted.is_(False))
                .group_by(Instance.vm_state)
            )
            return {state: count for state, count in rows}

    def last_launched(self, prefix: str) -> float | None:
        """When the last of the instances named `prefix`... turned ACTIVE (epoch seconds)."""
        from sqlalchemy import func, select

        from ciaostack.core.db.models import Instance

        with self.db.session(readonly=True) as s:
            last = s.scalar(
                select(func.max(Instance.launched_at)).where(Instance.name.startswith(prefix))
            )
        return None if last is None else last.replace(tzinfo=dt.UTC).timestamp()

    def boot_seconds(self, prefix: str) -> list[float]:
        """launched_at - created_at of the instances named `prefix`...: how long each
        took from its create request's commit to ACTIVE."""
        from sqlalchemy import select

        from ciaostack.core.db.models import Instance

        with self.db.session(readonly=True) as s:
            rows = s.execute(
                select(Instance.created_at, Instance.launched_at).where(
                    Instance.launched_at.is_not(None), Instance.name.startswith(prefix)
                )
            )
            return [(launched - created).total_seconds() for created, launched in rows]

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.terminate()
        for name, proc in self.procs.items():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                print(f"  {name} did not stop in 60 s: killed", flush=True)
                proc.kill()
                proc.wait()
        if self.db is not None:
            self.db.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_stack(home: Path, database_url: str, args: argparse.Namespace) -> Stack:
    """Set up a new home and start every process; returns once the API answers and the
    nodes have reported."""
    from ciaostack.core.db.session import Database

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIAOSTACK_")}
    env.update(
        CIAOSTACK_HOME=str(home),
        CIAOSTACK_CONFIG=str(home / "ciaostack.conf"),  # absent: defaults + these
        CIAOSTACK_DATABASE__URL=database_url,
        CIAOSTACK_API__HOST="127.0.0.1",
        CIAOSTACK_API__PORT=str(port),
        CIAOSTACK_API__WORKERS=str(args.workers),
        CIAOSTACK_API__THREADS=str(args.threads),
        CIAOSTACK_SSNTP__PORT=str(_free_port()),
        # 1,000 nodes' heartbeats and STATS are not what is measured here.
        CIAOSTACK_SSNTP__HEARTBEAT="30",
        CIAOSTACK_LAUNCHER__STATS_INTERVAL="60",
        CIAOSTACK_LAUNCHER__STATE_FSYNC="false",
        CIAOSTACK_LAUNCHER__FAKE_BOOT_DELAY=str(args.boot_delay),
        # Room for 64 m1.nano per node, so capacity is never what stops a start.
        CIAOSTACK_LAUNCHER__FAKE_VCPUS="64",
        CIAOSTACK_LAUNCHER__FAKE_MEM_MB="65536",
        CIAOSTACK_LOG__LEVEL="WARNING",
    )
    stack = Stack(home, env, port, secrets.token_urlsafe(12))
    stack.run("db", "upgrade")
    stack.run("token-keys", "setup")
    stack.run("bootstrap", f"--admin-password={stack.admin_password}")
    stack.run("certs", "init", "--local")
    stack.db = Database(database_url)
    try:
        stack.start("scheduler", ["scheduler"])
        stack.start("controller", ["controller"])
        time.sleep(1.0)
        stack.start(
            "launcher",
            [
                "launcher",
                "--simulate",
                str(args.launchers),
                "--state-dir",
                str(args.nodes_dir),
                "--hostname",
                "sim",
            ],
        )
        # The API logs one line per request at INFO, as it does when deployed.
        stack.start("api", ["api"], CIAOSTACK_LOG__LEVEL=args.api_log_level)
        _wait(stack, lambda: _answers(stack, "/identity"), 60, "the API to answer")
        t0 = time.monotonic()
        _wait(
            stack,
            lambda: stack.connected_nodes() >= args.launchers,
            max(120, args.launchers * 0.5),
            f"{args.launchers} nodes to connect",
        )
        print(f"  {args.launchers} nodes connected in {time.monotonic() - t0:.0f} s", flush=True)
    except BaseException:
        stack.stop()
        raise
    return stack


def _answers(stack: Stack, path: str) -> bool:
    try:
        conn = http.client.HTTPConnection(stack.host, timeout=2)
        conn.request("GET", path)
        ok = conn.getresponse().status < 400
        conn.close()
        return ok
    except OSError:
        return False


def _wait(stack: Stack, done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        stack.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


# -- HTTP --------------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection to the API over a plain socket.

    The benchmark's clients share the machine's two cores with the servers, so they
    should take as little CPU as they can: http.client parses every response's
    headers with the email package, which cost more than the rest of a create's client
    side together. The API answers with Content-Length (never chunked), which is all
    this client reads."""

    def __init__(self, host: str, token: str = "", version: str = "latest") -> None:
        name, _, port = host.rpartition(":")
        self.address = (name, int(port))
        self.fixed = f"Host: {host}\r\nOpenStack-API-Version: compute {version}\r\n"
        if token:
            self.fixed += f"X-Auth-Token: {token}\r\n"
        self.sock: socket.socket | None = None
        # Read past the last response (nothing, as requests wait); a bytearray, so that
        # a 2 MB page read in many pieces is not copied again at each one.
        self.pending = bytearray()
        self.seconds = 0.0  # the last request's latency

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
        head = f"{method} {path} HTTP/1.1\r\n{self.fixed}"
        data = b""
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            kind = "application/octet-stream" if isinstance(body, bytes) else "application/json"
            head += f"Content-Type: {kind}\r\n"
        request = f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data
        for attempt in (1, 2):
            try:
                if self.sock is None:
                    self.sock = socket.create_connection(self.address, timeout=300)
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                t0 = time.perf_counter()
                self.sock.sendall(request)
                status, headers, raw = self._response(method)
                # Request sent to last byte read; parsing the JSON is the client's own cost.
                self.seconds = time.perf_counter() - t0
                break
            except ConnectionError:
                # The server closed an idle keep-alive connection: once more on a new one.
                self.close()
                if attempt == 2:
                    raise
        if headers.get("connection", "").lower() == "close":
            self.close()
        parsed = json.loads(raw) if raw and "json" in headers.get("content-type", "") else raw
        return status, parsed, headers

    def _response(self, method: str) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-cased names) and body of the next response."""
        end = self.pending.find(b"\r\n\r\n")
        while end < 0:
            self._receive()
            end = self.pending.find(b"\r\n\r\n")
        lines = self.pending[:end].decode("latin-1").split("\r\n")
        del self.pending[: end + 4]
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", ""):
            raise RuntimeError(f"{method}: a chunked response, which this client does not read")
        length = 0 if method == "HEAD" else int(headers.get("content-length", "0"))
        while len(self.pending) < length:
            self._receive()
        raw = bytes(self.pending[:length])
        del self.pending[:length]
        return status, headers, raw

    def _receive(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        self.pending += chunk

    def ok(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        status, parsed, headers = self.call(method, path, body)
        if status != expect:
            raise RuntimeError(f"{method} {path}: {status} (expected {expect}): {parsed!r:.500}")
        return parsed, headers

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.pending.clear()


def admin_token(stack: Stack) -> tuple[str, str]:
    """A project-scoped token for admin, and the admin project's id."""
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": "admin",
                        "domain": {"id": "default"},
                        "password": stack.admin_password,
                    }
                },
            },
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }
    }
    client = Client(stack.host)
    parsed, headers = client.ok("POST", "/identity/v3/auth/tokens", body, expect=201)
    client.close()
    return headers["x-subject-token"], parsed["token"]["project"]["id"]


def prepare(stack: Stack, token: str, project_id: str) -> str:
    """No quota in the way, and an active image to boot; returns the image id."""
    client = Client(stack.host, token)
    unlimited = {"instances": -1, "cores": -1, "ram": -1}
    client.ok("PUT", f"{COMPUTE}/os-quota-sets/{project_id}", {"quota_set": unlimited})
    image, _ = client.ok(
        "POST",
        "/image/v2/images",
        {"name": "bench", "disk_format": "raw", "container_format": "bare"},
        expect=201,
    )
    client.ok("PUT", f"/image/v2/images/{image['id']}/file", b"\0" * 1024, expect=204)
    client.close()
    return image["id"]


def server_body(name: str, image_id: str, count: int = 1) -> dict[str, Any]:
    server: dict[str, Any] = {
        "name": name,
        "imageRef": image_id,
        "flavorRef": FLAVOR,
        "networks": "auto",
    }
    if count > 1:
        server.update(min_count=count, max_count=count)
    return {"server": server}


# -- (a) create ----------------------------------------------------------------------------


@dataclasses.dataclass
class Progress:
    """ACTIVE counts over time, sampled from the datastore while servers are created."""

    samples: list[tuple[float, dict[str, int]]] = dataclasses.field(default_factory=list)
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)


def watch(stack: Stack, progress: Progress, settled: Callable[[dict[str, int]], bool]) -> None:
    while not progress.stop.is_set():
        states = stack.states()
        progress.samples.append((time.monotonic(), states))
        if settled(states):
            return
        time.sleep(WATCH_INTERVAL)


@contextlib.contextmanager
def watching(stack: Stack, settled: Callable[[dict[str, int]], bool]) -> Iterator[Progress]:
    progress = Progress()
    thread = threading.Thread(target=watch, args=(stack, progress, settled), daemon=True)
    thread.start()
    try:
        yield progress
    finally:
        thread.join()


def bench_create(
    stack: Stack,
    token: str,
    image_id: str,
    servers: int,
    clients: int,
    timeout: float,
    prefix: str = "a",
) -> dict[str, Any]:
    before = stack.states()
    base = sum(before.values())
    next_index = iter(range(servers))
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[str] = []
    done_at: list[float] = []

    def client_loop() -> None:
        client = Client(stack.host, token)
        mine = []
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                break
            try:
                status, parsed, _ = client.call(
                    "POST", f"{COMPUTE}/servers", server_body(f"{prefix}-{index}", image_id)
                )
                mine.append(client.seconds)
            except OSError as exc:
                status, parsed = 0, repr(exc)
            if status != 202:
                with lock:
                    failures.append(f"{status}: {parsed!r:.300}")
        client.close()
        with lock:
            latencies.extend(mine)
            done_at.append(time.monotonic())

    def settled(states: dict[str, int]) -> bool:
        finished = sum(states.get(k, 0) - before.get(k, 0) for k in ("active", "error"))
        return finished >= servers - len(failures) and len(done_at) == clients

    cpu0 = stack.cpu()
    own0 = time.process_time()
    started, wall_started = time.monotonic(), time.time()
    with watching(stack, settled) as progress:
        threads = [threading.Thread(target=client_loop) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        created_at = max(done_at)
        deadline = created_at + timeout
        while not progress.stop.is_set() and time.monotonic() < deadline:
            if progress.samples and settled(progress.samples[-1][1]):
                break
            stack.check_alive()
            time.sleep(0.2)
        progress.stop.set()
    cpu1 = stack.cpu()
    own = time.process_time() - own0
    final = progress.samples[-1][1] if progress.samples else {}
    active = final.get("active", 0) - before.get("active", 0)
    # The moment the last server turned ACTIVE, from its own launched_at: exact, where the
    # watcher's samples are WATCH_INTERVAL apart.
    last = stack.last_launched(f"{prefix}-")
    elapsed = (last - wall_started) if last is not None else time.monotonic() - started
    boots = stack.boot_seconds(f"{prefix}-")
    return {
        "servers": servers,
        "clients": clients,
        "requests_ok": servers - len(failures),
        "failures": failures[:5],
        "failed": len(failures),
        "create_seconds": created_at - started,
        "create_per_s": servers / (created_at - started),
        "active": active,
        "error": final.get("error", 0) - before.get("error", 0),
        "rows": sum(final.values()) - base,
        "active_seconds": elapsed,
        "per_s": active / elapsed if elapsed > 0 else 0.0,
        "p50_ms": pct(latencies, 0.5) * 1000,
        "p90_ms": pct(latencies, 0.9) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
        "boot_p50_s": pct(boots, 0.5),
        "boot_p99_s": pct(boots, 0.99),
        "cpu_s": {name: cpu1[name] - cpu0.get(name, 0.0) for name in cpu1} | {"bench": own},
    }


# -- (b) fill and list ---------------------------------------------------------------------------


def fill(
    stack: Stack, token: str, image_id: str, total: int, batch: int, clients: int, timeout: float
) -> dict[str, Any]:
    """Servers through the API, `batch` per request (min_count = max_count), until the
    cloud holds `total`; then wait for them to be ACTIVE."""
    have = sum(stack.states().values())
    missing = max(0, total - have)
    batches = [batch] * (missing // batch) + ([missing % batch] if missing % batch else [])
    jobs = iter(enumerate(batches))
    lock = threading.Lock()
    errors: list[str] = []

    def loop() -> None:
        client = Client(stack.host, token)
        while True:
            with lock:
                job = next(jobs, None)
            if job is None or errors:
                break
            index, count = job
            status, parsed, _ = client.call(
                "POST", f"{COMPUTE}/servers", server_body(f"b-{index}", image_id, count)
            )
            if status != 202:
                with lock:
                    errors.append(f"{status}: {parsed!r:.300}")
        client.close()

    started = time.monotonic()
    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"filling failed: {errors[0]}")
    written = time.monotonic() - started
    deadline = time.monotonic() + timeout
    while True:
        states = stack.states()
        if states.get("building", 0) == 0 or time.monotonic() > deadline:
            break
        stack.check_alive()
        time.sleep(0.5)
    return {
        "added": missing,
        "batch": batch,
        "write_seconds": written,
        "active_seconds": time.monotonic() - started,
        "states": states,
    }


def bench_list(stack: Stack, token: str, rounds: int, walks: int) -> dict[str, Any]:
    client = Client(stack.host, token)
    first = f"{COMPUTE}/servers/detail?limit=1000"
    pages = []
    size = 0
    for _ in range(rounds):
        status, parsed, _ = client.call("GET", first)
        pages.append(client.seconds)
        if status != 200 or len(parsed["servers"]) != min(1000, stack_total(stack)):
            raise RuntimeError(f"GET {first}: {status}, {len(parsed.get('servers', []))} servers")
        size = len(json.dumps(parsed))
    walk_times, walk_pages, seen = [], 0, 0
    for _ in range(walks):
        t0 = time.perf_counter()
        path, seen, walk_pages, ids = first, 0, 0, set()
        while path:
            parsed, _ = client.ok("GET", path)
            walk_pages += 1
            ids.update(s["id"] for s in parsed["servers"])
            seen += len(parsed["servers"])
            links = [ln for ln in parsed.get("servers_links", []) if ln["rel"] == "next"]
            path = (
                urlsplit(links[0]["href"])._replace(scheme="", netloc="").geturl() if links else ""
            )
        walk_times.append(time.perf_counter() - t0)
        if len(ids) != seen:
            raise RuntimeError(f"paging returned {seen} servers but {len(ids)} distinct ids")
    client.close()
    return {
        "page_p50_ms": pct(pages, 0.5) * 1000,
        "page_max_ms": max(pages) * 1000,
        "page_bytes": size,
        "rounds": rounds,
        "walk_s": pct(walk_times, 0.5),
        "walk_max_s": max(walk_times),
        "walk_pages": walk_pages,
        "walk_servers": seen,
        "walks": walks,
    }


def stack_total(stack: Stack) -> int:
    return sum(stack.states().values())


# -- the command -----------------------------------------------------------------------------------


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[tuple[str, dict[str, int]]]:
    """The datastore's URL, and the pid of its server process, if it has one."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'ciaostack.db'}", {}
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support.postgres import PostgresServer

    with PostgresServer(workdir / "pg") as pg:
        url = pg.create_database("ciaostack")
        postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
        yield url, {"postgresql": postmaster}


def report_create(r: dict[str, Any]) -> None:
    ok = "ok" if r["per_s"] >= TARGETS["per_s"] else "MISSED"
    ok_p50 = "ok" if r["p50_ms"] < TARGETS["create_p50_ms"] else "MISSED"
    print(
        f"  {r['servers']} POST /servers by {r['clients']} clients in {r['create_seconds']:.1f} s "
        f"= {r['create_per_s']:.0f} requests/s; {r['failed']} failed"
    )
    for failure in r["failures"]:
        print(f"    failure: {failure}")
    print(
        f"  create latency: p50 {r['p50_ms']:.1f} ms, p90 {r['p90_ms']:.1f} ms, "
        f"p99 {r['p99_ms']:.1f} ms   (target p50 < {TARGETS['create_p50_ms']:.0f} ms: {ok_p50})"
    )
    print(
        f"  (closed loop: {r['clients']} clients at {r['create_per_s']:.0f} requests/s wait "
        f"{r['clients'] * 1000 / max(r['create_per_s'], 1e-9):.0f} ms per request on average, "
        f"by Little's law; the unloaded latency is the 1-client figure)"
    )
    print(
        f"  {r['active']} ACTIVE ({r['error']} ERROR) {r['active_seconds']:.1f} s after the first "
        f"request = {r['per_s']:.0f} servers/s to ACTIVE   (target >= {TARGETS['per_s']:.0f}: {ok})"
    )
    print(f"  time from create to ACTIVE: p50 {r['boot_p50_s']:.2f} s, p99 {r['boot_p99_s']:.2f} s")
    print(f"  for reference: {NOVA}")
    cpu = r["cpu_s"]
    total = sum(cpu.values())
    spread = ", ".join(f"{name} {sec:.1f}" for name, sec in cpu.items())
    print(
        f"  CPU seconds during (a): {spread}; total {total:.1f} "
        f"= {total * 1000 / max(r['servers'], 1):.1f} ms per server "
        f"(API {cpu.get('api', 0) * 1000 / max(r['servers'], 1):.1f} ms)"
    )


def report_probe(r: dict[str, Any]) -> None:
    ok_p50 = "ok" if r["p50_ms"] < TARGETS["create_p50_ms"] else "MISSED"
    print(
        f"  create latency: p50 {r['p50_ms']:.1f} ms, p90 {r['p90_ms']:.1f} ms, "
        f"p99 {r['p99_ms']:.1f} ms ({r['create_per_s']:.0f} requests/s, {r['failed']} failed)"
        f"   (target p50 < {TARGETS['create_p50_ms']:.0f} ms: {ok_p50})"
    )
    cpu = r["cpu_s"]
    print(
        f"  API CPU {cpu.get('api', 0) * 1000 / max(r['servers'], 1):.1f} ms per create; "
        f"all processes {sum(cpu.values()) * 1000 / max(r['servers'], 1):.1f} ms per server"
    )


def report_list(f: dict[str, Any], r: dict[str, Any]) -> None:
    print(
        f"  filled: {f['added']} servers added in batches of {f['batch']} "
        f"(POST /servers with min_count = max_count) in {f['write_seconds']:.1f} s, "
        f"settled after {f['active_seconds']:.1f} s; states {f['states']}"
    )
    ok = "ok" if r["page_p50_ms"] < TARGETS["page_ms"] else "MISSED"
    print(
        f"  GET /servers/detail?limit=1000: p50 {r['page_p50_ms']:.0f} ms, max "
        f"{r['page_max_ms']:.0f} ms over {r['rounds']} requests, {r['page_bytes'] / 1e6:.2f} MB "
        f"  (target < {TARGETS['page_ms']:.0f} ms: {ok})"
    )
    print(
        f"  paging through all {r['walk_servers']} servers ({r['walk_pages']} requests via "
        f"servers_links): median {r['walk_s']:.2f} s, max {r['walk_max_s']:.2f} s over "
        f"{r['walks']} walks   ({NOVA_LIST})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="a,b", help="which measurements (a, b)")
    parser.add_argument("--launchers", type=int, default=1000, help="simulated nodes")
    parser.add_argument("--servers", type=int, default=3000, help="(a) servers created")
    parser.add_argument("--clients", type=int, default=32, help="(a) concurrent clients")
    parser.add_argument(
        "--probe", type=int, default=200, help="(a) servers created first by one client"
    )
    parser.add_argument("--fill", type=int, default=10000, help="(b) servers in the cloud")
    parser.add_argument("--batch", type=int, default=100, help="(b) servers per fill request")
    parser.add_argument("--fill-clients", type=int, default=1, help="(b) concurrent fillers")
    parser.add_argument("--rounds", type=int, default=10, help="(b) timed first pages")
    parser.add_argument("--walks", type=int, default=3, help="(b) timed walks through all")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--workers", type=int, default=2, help="API gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="API threads per worker")
    parser.add_argument("--boot-delay", type=float, default=0.05, help="fake boot seconds")
    parser.add_argument("--api-log-level", default="INFO", help="the API's log level")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for ACTIVE")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    print(f"load average at start: {load_average()} on {os.cpu_count()} CPUs", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="ciaostack-bench-compute-"))
    in_memory = SHM.is_dir() and os.access(SHM, os.W_OK) and shutil.disk_usage(SHM).free >= SHM_ROOM
    args.nodes_dir = Path(
        tempfile.mkdtemp(prefix="ciaostack-bench-nodes-", dir=SHM if in_memory else workdir)
    )
    figures: dict[str, Any] = {"args": vars(args)}
    status = 0
    try:
        with database(args.db, workdir) as (url, watched):
            print(
                f"setting up: {args.db}, {args.launchers} simulated nodes (state in "
                f"{args.nodes_dir.parent}), API "
                f"{args.workers} workers x {args.threads} threads",
                flush=True,
            )
            home = workdir / "home"
            home.mkdir()
            stack = build_stack(home, url, args)
            stack.watched = watched
            try:
                token, project_id = admin_token(stack)
                image_id = prepare(stack, token, project_id)
                if "a" in parts and args.probe:
                    print(
                        f"(a) unloaded: {args.probe} servers, one per POST /servers, 1 client",
                        flush=True,
                    )
                    figures["a1"] = r = bench_create(
                        stack, token, image_id, args.probe, 1, args.timeout, prefix="a1"
                    )
                    report_probe(r)
                    status |= bool(r["failed"] or r["error"])
                if "a" in parts:
                    print(
                        f"(a) {args.servers} servers, one per POST /servers, "
                        f"{args.clients} clients",
                        flush=True,
                    )
                    figures["a"] = r = bench_create(
                        stack, token, image_id, args.servers, args.clients, args.timeout
                    )
                    report_create(r)
                    status |= bool(r["failed"] or r["error"])
                if "b" in parts:
                    print(f"(b) list at {args.fill} servers", flush=True)
                    f = fill(
                        stack,
                        token,
                        image_id,
                        args.fill,
                        args.batch,
                        args.fill_clients,
                        args.timeout,
                    )
                    r = bench_list(stack, token, args.rounds, args.walks)
                    figures["b"] = {"fill": f, "list": r}
                    report_list(f, r)
                figures["tracebacks"] = tracebacks = stack.tracebacks()
                if any(tracebacks.values()):
                    print(f"TRACEBACKS logged: {tracebacks}; logs kept in {home}")
                    args.keep, status = True, 1
            except BaseException:
                args.keep = True  # the logs explain what went wrong
                raise
            finally:
                stack.stop()
    finally:
        print(f"load average at end: {load_average()}")
        if args.keep:
            print(f"work directory kept: {workdir} (nodes: {args.nodes_dir})")
        else:
            shutil.rmtree(args.nodes_dir, ignore_errors=True)
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
    return status


if __name__ == "__main__":
    sys.exit(main())
