"""bench/core: the ciao core's speed.

(a) placement: decision latency (p50, p99) and decisions per second of the
    scheduler's node table at 100 ... 100,000 nodes, in process;
(b) end to end: instances taken from the outbox to running per second through a
    real controller and scheduler and 1,000 simulated launchers over TLS;
(c) the scheduler's memory per connected launcher with 5,000 launchers.

Targets (issue 3, this 2-core machine): p50 decision under 50 us at 10,000
nodes; at least 300 starts/s end to end; 5,000 launchers held. For reference:
ciao's keynote claimed about 250 starts/s; Nova's 1,000-fake-compute Rally run
did 5.4 boot+delete cycles/s.

Run: python -m bench.core [--only a,b,c] [--launchers 1000] [--instances 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from ciaostack.core.scheduler.placement import NodeTable
from ciaostack.core.ssntp import frames as F
from ciaostack.core.ssntp import payloads as P
from ciaostack.core.ssntp.transport import Client, client_context


def _ready(uuid_: str) -> P.Ready:
    big = 1 << 40
    return P.Ready(
        node_uuid=uuid_,
        mem_total_mb=big,
        mem_available_mb=big,
        disk_total_mb=big,
        disk_available_mb=big,
        vcpus_total=big,
        vcpus_available=big,
    )


def bench_placement(sizes: list[int], decisions: int) -> list[dict[str, float]]:
    results = []
    req = P.Requirements(mem_mb=2048, vcpus=2, disk_mb=20480)
    for size in sizes:
        table = NodeTable()
        for n in range(size):
            table.ready(_ready(f"node-{n}"))
        # A quarter of the cloud is full, spread evenly: the search has to skip nodes.
        for n in range(0, size, 4):
            table.nodes[f"node-{n}"].mem_free_mb = 0
        samples = []
        clock = time.perf_counter_ns
        started = clock()
        for i in range(decisions):
            t0 = clock()
            table.place(f"i{i}", req)
            samples.append(clock() - t0)
        elapsed = (clock() - started) / 1e9
        samples.sort()
        results.append(
            {
                "nodes": size,
                "p50_us": samples[len(samples) // 2] / 1000,
                "p99_us": samples[int(len(samples) * 0.99)] / 1000,
                "per_s": decisions / elapsed,
            }
        )
    return results


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    exe = str(Path(sys.executable).with_name("ciaostack"))
    return subprocess.Popen(
        [exe, *args],
        env=env,
        stdout=open(log, "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )


def _env(home: Path, port: int, db: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIAOSTACK_")}
    env.update(
        CIAOSTACK_HOME=str(home),
        CIAOSTACK_SSNTP__PORT=str(port),
        CIAOSTACK_DATABASE__URL=db,
        CIAOSTACK_LOG__LEVEL="WARNING",
        CIAOSTACK_SSNTP__HEARTBEAT="30",
    )
    return env


async def _hold_agents(pki: Path, port: int, count: int) -> tuple[list[Client], list[asyncio.Task]]:
    async def ignore(conn, frame, message) -> None:  # noqa: ANN001
        return None

    ctx = client_context(pki / "agent.pem", pki / "ca.pem")
    clients = []
    for _ in range(count):
        node = uuid.uuid4()

        async def hello(conn, node=node) -> None:  # noqa: ANN001
            await conn.send(P.frame(F.Type.STATUS, F.Status.READY, _ready(str(node))))

        client = Client(node, F.Role.AGENT, ctx, "127.0.0.1", port, ignore, on_connected=hello)
        client.max_backoff = 30
        clients.append(client)
    tasks = [asyncio.create_task(c.run()) for c in clients]
    deadline = time.monotonic() + 300
    while sum(c.connected.is_set() for c in clients) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    connected = sum(c.connected.is_set() for c in clients)
    print(f"  {connected}/{count} launchers connected", flush=True)
    return clients, tasks


def bench_memory(launchers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        port = 20000 + os.getpid() % 20000
        env = _env(home, port, f"sqlite:///{home}/db.sqlite")
        exe = str(Path(sys.executable).with_name("ciaostack"))
        subprocess.run([exe, "certs", "init", "--local"], env=env, check=True, capture_output=True)
        sched = _start(["scheduler"], env, home / "scheduler.log")
        time.sleep(1.5)
        before = _rss_kb(sched.pid)

        async def run() -> tuple[int, int]:
            clients, tasks = await _hold_agents(home / "pki", port, launchers)
            await asyncio.sleep(2)
            held = sum(c.connected.is_set() for c in clients)
            rss = _rss_kb(sched.pid)
            for c in clients:
                await c.stop()
            for t in tasks:
                t.cancel()
            return held, rss

        held, after = asyncio.run(run())
        sched.terminate()
        sched.wait(10)
    return {
        "launchers": held,
        "rss_before_mb": before / 1024,
        "rss_after_mb": after / 1024,
        "kb_per_launcher": (after - before) / max(held, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="a,c")
    parser.add_argument("--decisions", type=int, default=20000)
    parser.add_argument("--memory-launchers", type=int, default=5000)
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if "a" in parts:
        print("(a) placement decisions, in process (a quarter of the nodes full)")
        print(f"{'nodes':>8} {'p50 us':>8} {'p99 us':>8} {'decisions/s':>12}")
        for r in bench_placement([100, 1000, 10000, 100000], args.decisions):
            print(f"{r['nodes']:>8} {r['p50_us']:>8.1f} {r['p99_us']:>8.1f} {r['per_s']:>12.0f}")
        print("  target: p50 < 50 us at 10,000 nodes")
    if "c" in parts:
        print(f"(c) scheduler memory with {args.memory_launchers} launchers over TLS")
        r = bench_memory(args.memory_launchers)
        print(
            f"  held {r['launchers']} launchers; scheduler RSS {r['rss_before_mb']:.1f} MB -> "
            f"{r['rss_after_mb']:.1f} MB = {r['kb_per_launcher']:.1f} KB per launcher"
        )


if __name__ == "__main__":
    main()
