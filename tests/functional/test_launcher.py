"""A real `ciaostack launcher` process against a minimal scheduler, over mutual TLS.

The scheduler here is the transport's Server running in the test's own event
loop (in a thread), with certificates made by core/ssntp/certs: it records
what the launcher sends and sends it commands, as the real scheduler would.
The tests run in order against one launcher (the last ones kill it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ciaostack.core.ssntp import certs
from ciaostack.core.ssntp import frames as F
from ciaostack.core.ssntp import payloads as P
from ciaostack.core.ssntp.transport import Server, server_context

CIAOSTACK = Path(sys.executable).with_name("ciaostack")
SECRET = "user-data-secret-7f3a"
NODE_MEM_MB = 8192


@dataclasses.dataclass
class Got:
    peer: uuid.UUID
    frame: F.Frame
    message: Any


class Scheduler:
    """An SSNTP server that records every frame and sends what a test asks."""

    def __init__(self, pki: dict[str, Path]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.got: list[Got] = []
        self.cond = threading.Condition()
        self.server = Server(
            uuid.uuid4(),
            F.Role.SCHEDULER | F.Role.SERVER,
            server_context(pki["scheduler"], pki["ca"]),
            self._handle,
            heartbeat=1.0,
        )
        self.port = self._run(self.server.start("127.0.0.1", 0))

    def _run(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _handle(self, conn: Any, frame: F.Frame, message: Any) -> None:
        with self.cond:
            self.got.append(Got(conn.peer_uuid, frame, message))
            self.cond.notify_all()

    def mark(self) -> int:
        with self.cond:
            return len(self.got)

    def wait(
        self,
        name: str,
        since: int = 0,
        where: Callable[[Any], bool] = lambda m: True,
        timeout: float = 10.0,
    ) -> Got:
        """The first frame called `name` received after `since` that satisfies `where`."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for got in self.got[since:]:
                    if got.frame.name == name and where(got.message):
                        return got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [g.frame.name for g in self.got[since:]]
                    raise AssertionError(f"no {name} within {timeout}s; got {seen}")
                self.cond.wait(remaining)

    def names(self, since: int) -> list[str]:
        with self.cond:
            return [g.frame.name for g in self.got[since:]]

    def send(self, node: uuid.UUID, frame: F.Frame) -> None:
        self._run(self.server.peers[node].send(frame))

    def command(self, node: uuid.UUID, command: F.Command, payload: Any) -> int:
        """Send a command; returns the mark to wait for its answers from."""
        since = self.mark()
        self.send(node, P.frame(F.Type.COMMAND, command, payload))
        return since

    def close(self) -> None:
        self._run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class LauncherProcess:
    def __init__(self, home: Path, pki: dict[str, Path], port: int) -> None:
        self.home = home
        self.log = home / "launcher.log"
        self.env = {
            **os.environ,
            "CIAOSTACK_HOME": str(home),
            "CIAOSTACK_CONFIG": str(home / "none.conf"),
            "CIAOSTACK_LOG__LEVEL": "DEBUG",
            "CIAOSTACK_SSNTP__HOST": "127.0.0.1",
            "CIAOSTACK_SSNTP__PORT": str(port),
            "CIAOSTACK_LAUNCHER__CERT": str(pki["agent"]),
            "CIAOSTACK_LAUNCHER__CA": str(pki["ca"]),
            "CIAOSTACK_LAUNCHER__STATE_DIR": str(home / "state"),
            "CIAOSTACK_LAUNCHER__STATS_INTERVAL": "1",
            "CIAOSTACK_LAUNCHER__FAKE_BOOT_DELAY": "0.2",
            "CIAOSTACK_LAUNCHER__FAKE_MEM_MB": str(NODE_MEM_MB),
            "CIAOSTACK_LAUNCHER__RESERVE_MEM_MB": "1024",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(CIAOSTACK), "launcher", "--hostname", "fake-node-1"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(15)

    def fake_instance(self, instance: str) -> dict[str, Any]:
        """The fake backend's own record of an instance (its 'hypervisor')."""
        return json.loads((self.home / "state" / "fake" / f"{instance}.json").read_text())


@dataclasses.dataclass
class Cluster:
    scheduler: Scheduler
    launcher: LauncherProcess
    node: uuid.UUID


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    d = tmp_path_factory.mktemp("pki")
    ca, key = certs.create_ca(d)
    pki = {
        "ca": ca,
        "scheduler": certs.issue(d, ca, key, F.Role.SCHEDULER | F.Role.SERVER, "scheduler"),
        "agent": certs.issue(d, ca, key, F.Role.AGENT, "agent"),
    }
    scheduler = Scheduler(pki)
    launcher = LauncherProcess(tmp_path_factory.mktemp("node"), pki, scheduler.port)
    launcher.start()
    try:
        ready = scheduler.wait("STATUS/READY", timeout=20)
        yield Cluster(scheduler, launcher, ready.peer)
    finally:
        launcher.stop()
        scheduler.close()


def _start(instance: str, mem_mb: int = 1024, **metadata: str) -> P.Start:
    return P.Start(
        instance_uuid=instance,
        tenant_uuid="tenant-1",
        image_uuid="image-1",
        requirements=P.Requirements(mem_mb=mem_mb, vcpus=1, disk_mb=1024),
        user_data=f"#cloud-config\npassword: {SECRET}\n",
        metadata=dict(metadata),
    )


def _state(stats: P.Stats, instance: str) -> P.InstanceState | None:
    return next((s.state for s in stats.instances if s.instance_uuid == instance), None)


def _running(instance: str) -> Callable[[P.Stats], bool]:
    return lambda stats: _state(stats, instance) == P.InstanceState.RUNNING


def test_ready_on_connect_then_periodic_stats(cluster: Cluster) -> None:
    ready = cluster.scheduler.wait("STATUS/READY")
    message: P.Ready = ready.message
    assert message.node_uuid == str(cluster.node)
    assert message.hostname == "fake-node-1"
    assert message.instances == []
    assert (message.mem_total_mb, message.mem_available_mb) == (NODE_MEM_MB, NODE_MEM_MB - 1024)
    assert message.vcpus_total == message.vcpus_available == 16
    assert message.availability_zone == "nova"
    since = cluster.scheduler.mark()
    first = cluster.scheduler.wait("COMMAND/STATS", since)
    cluster.scheduler.wait("COMMAND/STATS", since, where=lambda m: m is not first.message)
    assert first.message.status == P.NodeStatus.READY


def test_start_reports_running_and_a_repeat_is_not_started_twice(cluster: Cluster) -> None:
    s = cluster.scheduler
    since = s.command(cluster.node, F.Command.START, _start("web-1"))
    stats = s.wait("COMMAND/STATS", since, where=_running("web-1")).message
    web = next(i for i in stats.instances if i.instance_uuid == "web-1")
    assert 0 < web.memory_usage_mb < 1024 and 0 < web.cpu_usage <= 100 and web.power_state == 1
    ready = s.wait("STATUS/READY", since).message
    assert ready.instances == ["web-1"]
    assert ready.mem_available_mb == NODE_MEM_MB - 1024 - 1024

    again = s.command(cluster.node, F.Command.START, _start("web-1"))
    assert s.wait("STATUS/READY", again).message.instances == ["web-1"]
    s.wait("COMMAND/STATS", again, where=_running("web-1"))
    assert "ERROR/START_FAILURE" not in s.names(again)
    assert cluster.launcher.fake_instance("web-1")["boots"] == 1


def test_stop_restart_reboot_delete(cluster: Cluster) -> None:
    s, node = cluster.scheduler, cluster.node
    s.wait("COMMAND/STATS", s.command(node, F.Command.START, _start("db-1")), _running("db-1"))

    since = s.command(node, F.Command.STOP, P.InstanceCommand(instance_uuid="db-1"))
    assert s.wait("EVENT/INSTANCE_STOPPED", since).message.node_uuid == str(node)
    s.wait("COMMAND/STATS", since, lambda m: _state(m, "db-1") == P.InstanceState.STOPPED)

    since = s.command(node, F.Command.RESTART, P.InstanceCommand(instance_uuid="db-1"))
    s.wait("COMMAND/STATS", since, _running("db-1"))
    since = s.command(
        node, F.Command.RESTART, P.InstanceCommand(instance_uuid="db-1", reboot="hard")
    )
    s.wait("COMMAND/STATS", since, _running("db-1"))
    assert cluster.launcher.fake_instance("db-1")["boots"] == 3

    since = s.command(node, F.Command.ATTACH_VOLUME, P.VolumeCommand("db-1", "vol-1"))
    s.wait("COMMAND/STATS", since, lambda m: any(i.volumes == ["vol-1"] for i in m.instances))

    since = s.command(node, F.Command.DELETE, P.InstanceCommand(instance_uuid="db-1"))
    assert s.wait("EVENT/INSTANCE_DELETED", since).message.instance_uuid == "db-1"
    assert "db-1" not in s.wait("STATUS/READY", since).message.instances
    assert not (cluster.launcher.home / "state" / "instances" / "db-1.json").exists()

    # Deleting what the node does not have converges: it is reported deleted.
    since = s.command(node, F.Command.DELETE, P.InstanceCommand(instance_uuid="never-here"))
    s.wait("EVENT/INSTANCE_DELETED", since, lambda m: m.instance_uuid == "never-here")
    since = s.command(node, F.Command.STOP, P.InstanceCommand(instance_uuid="never-here"))
    assert s.wait("ERROR/STOP_FAILURE", since).message.reason == "no_instance"


def test_invalid_start_payloads(cluster: Cluster) -> None:
    s, node = cluster.scheduler, cluster.node
    # Well-formed but impossible: refused with a StartFailure, the session goes on.
    since = s.command(node, F.Command.START, _start("zero", mem_mb=0))
    failure = s.wait("ERROR/START_FAILURE", since).message
    assert (failure.instance_uuid, failure.reason) == ("zero", P.StartFailureReason.INVALID_DATA)

    # Not a START at all: an ERROR frame, the connection closed, and the launcher back.
    since = s.mark()
    s.send(node, F.Frame(F.Type.COMMAND, F.Command.START, {"instance_uuid": "x"}))
    error = s.wait("ERROR/INVALID_FRAME_TYPE", since).message
    assert "is required" in error.message
    ready = s.wait("STATUS/READY", since, timeout=15)
    assert ready.peer == node and "web-1" in ready.message.instances


def test_backend_failure_is_a_start_failure(cluster: Cluster) -> None:
    s = cluster.scheduler
    since = s.command(cluster.node, F.Command.START, _start("doomed", fake_fail="launch"))
    failure = s.wait("ERROR/START_FAILURE", since).message
    assert failure.reason == P.StartFailureReason.LAUNCH_FAILURE
    assert failure.node_uuid == str(cluster.node) and "fake launch failure" in failure.message
    assert "doomed" not in s.wait("STATUS/READY", since).message.instances


def test_full_node_refuses_and_reports_full(cluster: Cluster) -> None:
    s = cluster.scheduler
    since = s.command(cluster.node, F.Command.START, _start("huge", mem_mb=NODE_MEM_MB))
    assert s.wait("ERROR/START_FAILURE", since).message.reason == P.StartFailureReason.FULL_CN
    s.wait("STATUS/READY", since)
    since = s.command(cluster.node, F.Command.START, _start("filler", mem_mb=NODE_MEM_MB - 2048))
    s.wait("STATUS/FULL", since)
    s.wait("COMMAND/STATS", since, lambda m: m.status == P.NodeStatus.FULL)
    since = s.command(cluster.node, F.Command.DELETE, P.InstanceCommand(instance_uuid="filler"))
    s.wait("STATUS/READY", since, lambda m: "filler" not in m.instances)
    s.wait("COMMAND/STATS", since, lambda m: m.status == P.NodeStatus.READY)
    assert "STATUS/FULL" not in s.names(since)


def test_evacuate_means_maintenance_until_restore(cluster: Cluster) -> None:
    s, node = cluster.scheduler, cluster.node
    since = s.command(node, F.Command.EVACUATE, P.Evacuate(workload_agent_uuid=str(node)))
    s.wait("STATUS/MAINTENANCE", since)
    since = s.command(node, F.Command.START, _start("late"))
    failure = s.wait("ERROR/START_FAILURE", since).message
    assert failure.reason == P.StartFailureReason.NODE_MAINTENANCE
    s.wait("COMMAND/STATS", since, lambda m: m.status == P.NodeStatus.MAINTENANCE)

    since = s.command(node, F.Command.RESTORE, P.Restore(workload_agent_uuid=str(node)))
    s.wait("STATUS/READY", since)
    since = s.command(node, F.Command.START, _start("late"))
    s.wait("COMMAND/STATS", since, _running("late"))


def test_kill_9_and_restart_reattaches_the_same_instances(cluster: Cluster) -> None:
    s, node = cluster.scheduler, cluster.node
    since = s.command(node, F.Command.STOP, P.InstanceCommand(instance_uuid="late"))
    s.wait("EVENT/INSTANCE_STOPPED", since)

    cluster.launcher.kill9()
    since = s.mark()
    cluster.launcher.start()
    ready = s.wait("STATUS/READY", since, timeout=20)
    assert ready.peer == node
    assert sorted(ready.message.instances) == ["late", "web-1"]
    stats = s.wait("COMMAND/STATS", since).message
    assert _state(stats, "web-1") == P.InstanceState.RUNNING
    assert _state(stats, "late") == P.InstanceState.STOPPED
    assert cluster.launcher.fake_instance("web-1")["boots"] == 1  # re-attached, not rebooted

    since = s.command(node, F.Command.START, _start("after-restart"))
    s.wait("COMMAND/STATS", since, _running("after-restart"))


def test_commands_unanswered_at_a_kill_9_run_after_the_restart(cluster: Cluster) -> None:
    s, node, launcher = cluster.scheduler, cluster.node, cluster.launcher
    # Slow boots, so that the launcher can be killed in the middle of a rebuild.
    launcher.kill9()
    launcher.env["CIAOSTACK_LAUNCHER__FAKE_BOOT_DELAY"] = "2"
    since = s.mark()
    launcher.start()
    s.wait("STATUS/READY", since, timeout=20)
    since = s.command(node, F.Command.START, _start("slow-1"))
    s.wait("COMMAND/STATS", since, _running("slow-1"), timeout=20)

    s.command(node, F.Command.REBUILD, P.Rebuild(instance_uuid="slow-1", image_uuid="image-2"))
    s.command(node, F.Command.STOP, P.InstanceCommand(instance_uuid="slow-1"))
    state_file = launcher.home / "state" / "instances" / "slow-1.json"

    def pending() -> list[str]:
        return [p["command"] for p in json.loads(state_file.read_text())["pending"]]

    deadline = time.monotonic() + 10
    while pending() != ["REBUILD", "STOP"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pending() == ["REBUILD", "STOP"]
    launcher.kill9()
    assert launcher.fake_instance("slow-1")["image"] == "image-1"  # killed mid-rebuild

    launcher.env["CIAOSTACK_LAUNCHER__FAKE_BOOT_DELAY"] = "0.2"
    since = s.mark()
    launcher.start()
    rebuilt = s.wait("EVENT/INSTANCE_REBUILT", since, timeout=20)
    assert rebuilt.message.instance_uuid == "slow-1"
    s.wait("EVENT/INSTANCE_STOPPED", since, lambda m: m.instance_uuid == "slow-1")
    world = launcher.fake_instance("slow-1")
    assert (world["image"], world["state"]) == ("image-2", "stopped")
    wait_for = time.monotonic() + 5
    while pending() and time.monotonic() < wait_for:
        time.sleep(0.05)
    assert pending() == []
    assert "instance=slow-1 resuming REBUILD" in launcher.log.read_text()


def test_log_has_lifecycle_lines_and_no_secrets(cluster: Cluster) -> None:
    assert cluster.launcher.stop() == 0
    log = cluster.launcher.log.read_text()
    assert SECRET not in log
    assert "Traceback" not in log
    assert "instance=web-1 running" in log
    assert log.count("instance=web-1 creating") == 1
    assert "instance=db-1 deleted" in log
