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
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ciaostack.core.scheduler.placement import NodeTable
from ciaostack.core.ssntp import payloads as P


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


def _connected_nodes(db) -> int:  # noqa: ANN001
    from sqlalchemy import func, select

    from ciaostack.core.db.models import ComputeNode

    with db.session(readonly=True) as s:
        return s.scalar(
            select(func.count()).select_from(ComputeNode).where(ComputeNode.connected.is_(True))
        )


class Cloud:
    """Scheduler, controller and one launcher process simulating `nodes` nodes."""

    def __init__(self, home: Path, nodes: int, with_controller: bool = True) -> None:
        from ciaostack.core.db import migrate
        from ciaostack.core.db.session import Database

        self.home = home
        port = 20000 + os.getpid() % 20000
        url = f"sqlite:///{home}/db.sqlite"
        self.env = _env(home, port, url)
        self.env.update(
            CIAOSTACK_LAUNCHER__STATE_FSYNC="false",
            CIAOSTACK_LAUNCHER__STATS_INTERVAL="60",
            CIAOSTACK_LAUNCHER__FAKE_BOOT_DELAY="0.01",
        )
        migrate.upgrade(url)
        exe = str(Path(sys.executable).with_name("ciaostack"))
        subprocess.run(
            [exe, "certs", "init", "--local"], env=self.env, check=True, capture_output=True
        )
        self.db = Database(url)
        self.procs = [_start(["scheduler"], self.env, home / "scheduler.log")]
        if with_controller:
            self.procs.append(_start(["controller"], self.env, home / "controller.log"))
        time.sleep(1.0)
        self.scheduler_rss_before = _rss_kb(self.procs[0].pid)
        self.procs.append(
            _start(
                [
                    "launcher",
                    "--simulate",
                    str(nodes),
                    "--state-dir",
                    str(home / "nodes"),
                    "--hostname",
                    "sim",
                ],
                self.env,
                home / "launcher.log",
            )
        )

    def wait_nodes(self, nodes: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _connected_nodes(self.db) >= nodes:
                break
            time.sleep(1)
        return _connected_nodes(self.db)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                print(f"  {proc.args[1]} did not stop in 60 s: killed", flush=True)
                proc.kill()
                proc.wait()
        self.db.dispose()


def bench_starts(nodes: int, instances: int) -> dict[str, float]:
    from sqlalchemy import func, select

    from ciaostack.core.controller import operations
    from ciaostack.core.db.models import Instance

    with tempfile.TemporaryDirectory() as tmp:
        cloud = Cloud(Path(tmp), nodes)
        try:
            t0 = time.monotonic()
            connected = cloud.wait_nodes(nodes, 300)
            print(f"  {connected} nodes connected in {time.monotonic() - t0:.0f} s", flush=True)
            spec = operations.InstanceSpec(
                project_id="bench", user_id="u", name="vm", image_id="img", mem_mb=64, vcpus=1
            )
            t0 = time.monotonic()
            with cloud.db.session() as s:
                operations.create_instances(s, spec, count=instances)
            started = time.monotonic()
            print(
                f"  {instances} instances written (rows, quota, outbox) in {started - t0:.1f} s",
                flush=True,
            )
            done = 0
            while time.monotonic() - started < 600:
                with cloud.db.session(readonly=True) as s:
                    done = s.scalar(
                        select(func.count())
                        .select_from(Instance)
                        .where(Instance.vm_state.in_(("active", "error")))
                    )
                if done >= instances:
                    break
                time.sleep(0.2)
            elapsed = time.monotonic() - started
            with cloud.db.session(readonly=True) as s:
                active = s.scalar(
                    select(func.count()).select_from(Instance).where(Instance.vm_state == "active")
                )
        finally:
            cloud.close()
    return {
        "nodes": connected,
        "instances": instances,
        "active": active,
        "seconds": elapsed,
        "per_s": active / elapsed,
    }


def bench_memory(launchers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cloud = Cloud(Path(tmp), launchers)
        try:
            held = cloud.wait_nodes(launchers, 900)
            time.sleep(2)
            after = _rss_kb(cloud.procs[0].pid)
            before = cloud.scheduler_rss_before
        finally:
            cloud.close()
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
    parser.add_argument("--only", default="a,b,c")
    parser.add_argument("--launchers", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=3000)
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
    if "b" in parts:
        print(
            f"(b) instances to ACTIVE end to end: controller + scheduler + "
            f"{args.launchers} simulated launchers over TLS, {args.instances} instances"
        )
        r = bench_starts(args.launchers, args.instances)
        print(
            f"  {r['nodes']} nodes; {r['active']}/{r['instances']} ACTIVE in "
            f"{r['seconds']:.1f} s = {r['per_s']:.0f} starts/s  (target >= 300; ciao claimed "
            f"~250/s; Nova 1,000 fake computes: 5.4 boot+delete/s)"
        )
    if "c" in parts:
        print(f"(c) scheduler memory with {args.memory_launchers} launchers over TLS")
        r = bench_memory(args.memory_launchers)
        print(
            f"  held {r['launchers']} launchers; scheduler RSS {r['rss_before_mb']:.1f} MB -> "
            f"{r['rss_after_mb']:.1f} MB = {r['kb_per_launcher']:.1f} KB per launcher"
        )


if __name__ == "__main__":
    main()
