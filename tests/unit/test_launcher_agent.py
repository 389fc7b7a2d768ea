"""The launcher's decisions in-process (no TLS): ordering, capacity, idempotency, recovery.

A stub client records what the launcher sends; frames are handed to
`Launcher.handle` exactly as the transport would.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from ciaostack.agents.backends import NodeResources
from ciaostack.agents.backends.fake import FakeBackend
from ciaostack.agents.launcher import Launcher, LauncherOptions, Serializer
from ciaostack.agents.state import StateStore, Task
from ciaostack.core.ssntp import payloads as P
from ciaostack.core.ssntp.frames import Command, Error, Event, Frame, Status, Type


class StubClient:
    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.connected = asyncio.Event()
        self.connected.set()

    async def send(self, frame: Frame) -> None:
        if not self.connected.is_set():
            raise ConnectionError("down")
        self.frames.append(frame)

    def names(self) -> list[str]:
        return [f.name for f in self.frames]

    def of(self, type_: Type, operand: Any) -> list[Any]:
        return [P.parse(f) for f in self.frames if (f.type, f.operand) == (type_, operand)]


def _launcher(tmp_path: Path, boot_delay: float = 0.0, mem_mb: int = 4096) -> Launcher:
    backend = FakeBackend(
        tmp_path / "fake", NodeResources(mem_mb, 50_000, 4), boot_delay=boot_delay
    )
    options = LauncherOptions(hostname="node-1", reserve_mem_mb=1024, reserve_disk_mb=1000)
    return Launcher(backend, StateStore(tmp_path, fsync=False), options)


def _start(instance: str, mem_mb: int = 1024, **metadata: str) -> P.Start:
    return P.Start(
        instance_uuid=instance,
        tenant_uuid="t",
        image_uuid="i",
        requirements=P.Requirements(mem_mb=mem_mb, vcpus=1, disk_mb=1000),
        metadata=dict(metadata),
    )


async def _feed(launcher: Launcher, command: Command, payload: Any) -> None:
    frame = P.frame(Type.COMMAND, command, payload)
    await launcher.handle(None, frame, P.parse(frame))  # type: ignore[arg-type]


async def _ready(
    tmp_path: Path, connected: bool = True, **kwargs: Any
) -> tuple[Launcher, StubClient]:
    launcher = _launcher(tmp_path, **kwargs)
    client = StubClient()
    if not connected:
        client.connected.clear()
    launcher.client = client  # type: ignore[assignment]
    await launcher.recover()
    return launcher, client


def test_serializer_orders_per_key_and_runs_keys_concurrently() -> None:
    async def scenario() -> None:
        jobs, log = Serializer(), []

        def job(key: str, n: int, delay: float):  # noqa: ANN202
            async def run() -> None:
                await asyncio.sleep(delay)
                log.append((key, n))

            return run

        began = time.monotonic()
        jobs.submit("slow", job("slow", 1, 0.3))
        jobs.submit("slow", job("slow", 2, 0))
        jobs.submit("fast", job("fast", 1, 0))
        jobs.submit("fast", job("fast", 2, 0))
        await jobs.idle()
        assert log == [("fast", 1), ("fast", 2), ("slow", 1), ("slow", 2)]
        assert time.monotonic() - began < 0.6

    asyncio.run(scenario())


def test_start_reports_ready_then_stats_and_a_repeat_is_not_started_twice(tmp_path: Path) -> None:
    async def scenario() -> None:
        launcher, client = await _ready(tmp_path, boot_delay=0.1)
        await _feed(launcher, Command.START, _start("a"))
        await _feed(launcher, Command.START, _start("a"))  # while the first is booting
        await launcher.jobs.idle()
        assert client.names() == ["STATUS/READY", "COMMAND/STATS"] * 2
        ready = client.of(Type.STATUS, Status.READY)[0]
        assert ready.instances == ["a"]
        assert ready.mem_available_mb == 4096 - 1024 - 1024
        stats = client.of(Type.COMMAND, Command.STATS)[-1]
        assert [(s.instance_uuid, s.state, s.power_state) for s in stats.instances] == [
            ("a", P.InstanceState.RUNNING, 1)
        ]
        assert launcher.backend._instances["a"]["boots"] == 1  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_capacity_reserve_and_full(tmp_path: Path) -> None:
    async def scenario() -> None:
        launcher, client = await _ready(tmp_path)
        await _feed(launcher, Command.START, _start("big", mem_mb=3100))
        failure = client.of(Type.ERROR, Error.START_FAILURE)[0]
        assert failure.reason == P.StartFailureReason.FULL_CN
        await _feed(launcher, Command.START, _start("a", mem_mb=2048))
        await _feed(launcher, Command.START, _start("b", mem_mb=1024))  # the rest of it
        await launcher.jobs.idle()
        assert client.names()[-3:] == ["STATUS/READY", "STATUS/FULL", "COMMAND/STATS"]
        assert client.of(Type.COMMAND, Command.STATS)[-1].status == P.NodeStatus.FULL
        client.frames.clear()
        await _feed(launcher, Command.DELETE, P.InstanceCommand(instance_uuid="b"))
        await launcher.jobs.idle()
        assert client.names() == ["EVENT/INSTANCE_DELETED", "STATUS/READY"]

    asyncio.run(scenario())


def test_a_slow_instance_does_not_hold_up_others(tmp_path: Path) -> None:
    async def scenario() -> None:
        launcher, client = await _ready(tmp_path, boot_delay=0.5)
        await _feed(launcher, Command.START, _start("slow"))
        await asyncio.sleep(0.05)  # its boot has begun
        launcher.backend.boot_delay = 0  # type: ignore[attr-defined]
        await _feed(launcher, Command.START, _start("quick"))
        await asyncio.sleep(0.2)
        running = client.of(Type.COMMAND, Command.STATS)[-1].instances
        assert {s.instance_uuid: s.state for s in running} == {
            "slow": P.InstanceState.PENDING,
            "quick": P.InstanceState.RUNNING,
        }
        await launcher.jobs.idle()

    asyncio.run(scenario())


def test_failures_unknown_instances_and_maintenance(tmp_path: Path) -> None:
    async def scenario() -> None:
        launcher, client = await _ready(tmp_path)
        node = str(launcher.uuid)
        await _feed(launcher, Command.START, _start("x", fake_fail="image"))
        await _feed(launcher, Command.START, _start("bad", mem_mb=0))
        await _feed(launcher, Command.DELETE, P.InstanceCommand(instance_uuid="ghost"))
        await _feed(launcher, Command.STOP, P.InstanceCommand(instance_uuid="ghost"))
        await _feed(
            launcher, Command.ATTACH_VOLUME, P.VolumeCommand(instance_uuid="ghost", volume_uuid="v")
        )
        await launcher.jobs.idle()
        reasons = [f.reason for f in client.of(Type.ERROR, Error.START_FAILURE)]
        assert reasons == [P.StartFailureReason.INVALID_DATA, P.StartFailureReason.IMAGE_FAILURE]
        assert "x" not in launcher.instances and not list((tmp_path / "instances").iterdir())
        assert [e.instance_uuid for e in client.of(Type.EVENT, Event.INSTANCE_DELETED)] == ["ghost"]
        assert client.of(Type.ERROR, Error.STOP_FAILURE)[0].reason == "no_instance"
        assert client.of(Type.ERROR, Error.ATTACH_VOLUME_FAILURE)[0].reason == "no_instance"

        await _feed(launcher, Command.EVACUATE, P.Evacuate(workload_agent_uuid=node))
        await _feed(launcher, Command.START, _start("m"))
        assert client.of(Type.ERROR, Error.START_FAILURE)[-1].reason == (
            P.StartFailureReason.NODE_MAINTENANCE
        )
        assert client.names()[-2] == "STATUS/MAINTENANCE"
        client.frames.clear()
        await _feed(launcher, Command.RESTORE, P.Restore(workload_agent_uuid=node))
        await _feed(launcher, Command.START, _start("m"))
        await launcher.jobs.idle()
        assert client.names() == ["STATUS/READY", "STATUS/READY", "COMMAND/STATS"]

    asyncio.run(scenario())


def test_restart_resumes_interrupted_work_and_replays_reports(tmp_path: Path) -> None:
    async def scenario() -> None:
        launcher, client = await _ready(tmp_path, boot_delay=0.05)
        await _feed(launcher, Command.START, _start("done"))
        await _feed(launcher, Command.START, _start("stopped"))
        await _feed(launcher, Command.STOP, P.InstanceCommand(instance_uuid="stopped"))
        await launcher.jobs.idle()
        launcher.backend.boot_delay = 5  # type: ignore[attr-defined]
        await _feed(launcher, Command.START, _start("booting"))
        await asyncio.sleep(0.1)
        await launcher.jobs.cancel()  # the process dies mid-boot...
        record = launcher.instances["done"]
        record.task = Task.DELETING  # ...and just after deciding to delete another
        launcher.store.save(record)

        # Reports made while disconnected are kept for the next connection.
        again, client = await _ready(tmp_path, connected=False, boot_delay=0.05)
        assert again.uuid == launcher.uuid
        await again.jobs.idle()
        assert set(again.instances) == {"stopped", "booting"}
        assert again.instances["booting"].state == P.InstanceState.RUNNING
        assert again.instances["stopped"].state == P.InstanceState.STOPPED
        client.connected.set()
        await again.on_connected(type("Conn", (), {"peer_uuid": "sched"})())  # type: ignore[arg-type]
        names = client.names()
        assert names[:2] == ["STATUS/READY", "COMMAND/STATS"]
        assert "EVENT/INSTANCE_DELETED" in names[2:]  # ...and sent after the reconnect
        assert sorted(client.of(Type.STATUS, Status.READY)[0].instances) == ["booting", "stopped"]

    asyncio.run(scenario())


def test_restart_command(tmp_path: Path) -> None:
    async def scenario() -> None:
        launcher, client = await _ready(tmp_path)
        await _feed(launcher, Command.START, _start("a"))
        await _feed(launcher, Command.STOP, P.InstanceCommand(instance_uuid="a"))
        await _feed(launcher, Command.START, _start("a"))  # repeated START of a stopped one
        await _feed(launcher, Command.RESTART, P.InstanceCommand(instance_uuid="a"))
        await _feed(launcher, Command.RESTART, P.InstanceCommand(instance_uuid="a", reboot="hard"))
        await _feed(launcher, Command.RESTART, P.InstanceCommand(instance_uuid="a", reboot="x"))
        await launcher.jobs.idle()
        assert len(client.of(Type.EVENT, Event.INSTANCE_STOPPED)) == 2
        assert launcher.instances["a"].state == P.InstanceState.RUNNING
        assert launcher.backend._instances["a"]["boots"] == 3  # type: ignore[attr-defined]
        assert client.of(Type.ERROR, Error.RESTART_FAILURE)[0].reason == "invalid_data"

    asyncio.run(scenario())


def test_commands_a_launcher_does_not_handle_get_an_error(tmp_path: Path) -> None:
    class Conn:
        errors: list[tuple[Error, Any]] = []

        async def send_error(self, error: Error, payload: Any) -> None:
            self.errors.append((error, payload))

    async def scenario() -> None:
        launcher, client = await _ready(tmp_path)
        conn = Conn()
        public_ip = P.PublicIP("c", "t", "i", "203.0.113.5", "10.0.0.5")
        frame = P.frame(Type.COMMAND, Command.ASSIGN_PUBLIC_IP, public_ip)
        await launcher.handle(conn, frame, public_ip)  # type: ignore[arg-type]
        [(error, payload)] = conn.errors
        assert error == Error.INVALID_FRAME_TYPE and "ASSIGN_PUBLIC_IP" in payload.message
        await _feed(launcher, Command.CONFIGURE, P.Configure())
        assert client.frames == []

    asyncio.run(scenario())
