"""Controller and scheduler as real processes over TLS, driven through the datastore.

The launcher side here is a scripted agent in the test (a real SSNTP client with
an agent certificate) so each report can be controlled exactly; the real
launcher process has its own tests.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from ciaostack.core import quota
from ciaostack.core.controller import operations, states
from ciaostack.core.db.models import ComputeNode, Instance, Outbox
from ciaostack.core.db.session import Database
from ciaostack.core.ssntp import frames as F
from ciaostack.core.ssntp import payloads as P
from ciaostack.core.ssntp.transport import Client, client_context
from tests.support.core import Process, core_env, free_port, prepare, wait_until


class ScriptedAgent:
    """An SSNTP agent in a background thread that answers commands as told."""

    def __init__(
        self,
        home: Path,
        port: int,
        mem_mb: int = 8192,
        fail: set[str] | None = None,
        silent: set[str] | None = None,
    ):
        self.silent = silent or set()
        self.uuid = uuid.uuid4()
        self.port = port
        self.pki = home / "pki"
        self.mem_mb = mem_mb
        self.fail = fail or set()
        self.running: dict[str, P.Start] = {}
        self.received: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.client: Client | None = None
        self.announced = threading.Event()

    def start(self) -> ScriptedAgent:
        """Returns once the agent has sent its READY: a START created after this finds
        the node at the scheduler (not "no node" three times and ERROR)."""
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        assert self.announced.wait(10), "the agent never connected"
        return self

    async def _start(self) -> None:
        ctx = client_context(self.pki / "agent.pem", self.pki / "ca.pem")
        self.client = Client(
            self.uuid,
            F.Role.AGENT,
            ctx,
            "127.0.0.1",
            self.port,
            self.handle,
            on_connected=self.on_connected,
            hostname=f"node-{self.uuid.hex[:6]}",
        )
        self._task = asyncio.create_task(self.client.run())

    def stop(self) -> None:
        async def _stop() -> None:
            assert self.client is not None
            await self.client.stop()

        asyncio.run_coroutine_threadsafe(_stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def ready(self) -> P.Ready:
        used = sum(s.requirements.mem_mb for s in self.running.values())
        return P.Ready(
            node_uuid=str(self.uuid),
            mem_total_mb=self.mem_mb,
            mem_available_mb=self.mem_mb - used,
            disk_total_mb=100000,
            disk_available_mb=100000,
            vcpus_total=64,
            vcpus_available=64,
            hostname=f"node-{self.uuid.hex[:6]}",
            instances=list(self.running),
        )

    def stats(self, state: P.InstanceState = P.InstanceState.RUNNING) -> P.Stats:
        r = self.ready()
        return P.Stats(
            node_uuid=r.node_uuid,
            status=P.NodeStatus.READY,
            mem_total_mb=r.mem_total_mb,
            mem_available_mb=r.mem_available_mb,
            disk_total_mb=r.disk_total_mb,
            disk_available_mb=r.disk_available_mb,
            vcpus_total=64,
            vcpus_available=64,
            hostname=r.hostname,
            instances=[P.InstanceStat(instance_uuid=i, state=state) for i in self.running],
        )

    async def on_connected(self, conn: Any) -> None:
        await conn.send(P.frame(F.Type.STATUS, F.Status.READY, self.ready()))
        self.announced.set()

    async def handle(self, conn: Any, frame: F.Frame, message: Any) -> None:
        self.received.append(frame.name)
        if frame.operand == F.Command.START:
            if message.name in self.silent:
                return  # a START lost on the way: the controller must not wait forever
            if message.name in self.fail:
                await conn.send(
                    P.frame(
                        F.Type.ERROR,
                        F.Error.START_FAILURE,
                        P.StartFailure(
                            instance_uuid=message.instance_uuid,
                            reason=P.StartFailureReason.LAUNCH_FAILURE,
                            message="boom",
                            node_uuid=str(self.uuid),
                            attempt=message.attempt,
                        ),
                    )
                )
                return
            self.running[message.instance_uuid] = message
            await conn.send(P.frame(F.Type.STATUS, F.Status.READY, self.ready()))
            await conn.send(P.frame(F.Type.COMMAND, F.Command.STATS, self.stats()))
        elif frame.operand == F.Command.DELETE:
            self.running.pop(message.instance_uuid, None)
            await conn.send(
                P.frame(
                    F.Type.EVENT,
                    F.Event.INSTANCE_DELETED,
                    P.InstanceEvent(instance_uuid=message.instance_uuid),
                )
            )
            await conn.send(P.frame(F.Type.STATUS, F.Status.READY, self.ready()))
        elif frame.operand == F.Command.STOP:
            await conn.send(
                P.frame(
                    F.Type.EVENT,
                    F.Event.INSTANCE_STOPPED,
                    P.InstanceEvent(instance_uuid=message.instance_uuid),
                )
            )
        elif frame.operand == F.Command.RESTART:
            await conn.send(P.frame(F.Type.COMMAND, F.Command.STATS, self.stats()))


@pytest.fixture
def core(tmp_path: Path, database_url_factory) -> Iterator[dict[str, Any]]:  # noqa: ANN001
    port = free_port()
    url = database_url_factory()
    env = core_env(tmp_path, url, port, CIAOSTACK_CONTROLLER__RESEND_AFTER="3")
    prepare(env)
    scheduler = Process("scheduler", ["scheduler"], env, tmp_path).start()
    controller = Process("controller", ["controller"], env, tmp_path).start()
    db = Database(url)
    yield {
        "home": tmp_path,
        "port": port,
        "db": db,
        "env": env,
        "scheduler": scheduler,
        "controller": controller,
    }
    controller.stop()
    scheduler.stop()
    db.dispose()
    for proc in (scheduler, controller):
        assert "Traceback" not in proc.text(), proc.text()[-4000:]


def spec(name: str, project: str = "p1", mem_mb: int = 512) -> operations.InstanceSpec:
    return operations.InstanceSpec(
        project_id=project, user_id="u1", name=name, image_id="img", mem_mb=mem_mb, vcpus=1
    )


def create(db: Database, name: str, count: int = 1, **kw: Any) -> list[str]:
    with db.session() as s:
        return [i.id for i in operations.create_instances(s, spec(name, **kw), count=count)]


def state(db: Database, instance_id: str) -> tuple[str, str | None]:
    with db.session(readonly=True) as s:
        row = s.get(Instance, instance_id)
        return row.vm_state, row.task_state


def test_build_active_stop_start_delete(core: dict[str, Any]) -> None:
    db = core["db"]
    agent = ScriptedAgent(core["home"], core["port"]).start()
    try:
        [iid] = create(db, "vm1")
        wait_until(lambda: state(db, iid) == (states.ACTIVE, None), what="ACTIVE")
        with db.session(readonly=True) as s:
            row = s.get(Instance, iid)
            assert row.node_uuid == str(agent.uuid)
            assert row.launched_at is not None and row.host.startswith("node-")
            assert quota.usage(s, "p1") == {"instances": 1, "cores": 1, "ram": 512}
        with db.session() as s:
            operations.stop_instance(s, s.get(Instance, iid))
        wait_until(lambda: state(db, iid) == (states.STOPPED, None), what="STOPPED")
        with db.session() as s:
            operations.start_instance(s, s.get(Instance, iid))
        wait_until(lambda: state(db, iid) == (states.ACTIVE, None), what="ACTIVE again")
        with db.session() as s:
            operations.delete_instance(s, s.get(Instance, iid))
        wait_until(lambda: state(db, iid) == (states.DELETED, None), what="DELETED")
        assert iid not in agent.running
        with db.session(readonly=True) as s:
            assert quota.usage(s, "p1") == {"instances": 0, "cores": 0, "ram": 0}
            assert s.scalars(select(Outbox)).all() == []
    finally:
        agent.stop()


def test_refused_start_is_retried_elsewhere_then_errors(core: dict[str, Any]) -> None:
    db = core["db"]
    bad = ScriptedAgent(core["home"], core["port"], fail={"flaky", "doomed"}).start()
    good = ScriptedAgent(core["home"], core["port"], fail={"doomed"}).start()
    try:
        wait_until(lambda: bad.client.connected.is_set() and good.client.connected.is_set())
        ids = create(db, "flaky") + create(db, "doomed")
        wait_until(lambda: state(db, ids[0]) == (states.ACTIVE, None), what="retried ACTIVE")
        assert ids[0] in good.running
        wait_until(lambda: state(db, ids[1])[0] == states.ERROR, what="ERROR")
        with db.session(readonly=True) as s:
            doomed = s.get(Instance, ids[1])
            assert doomed.fault["message"].startswith("No valid host was found")
            # attempt 1 and 2 refused by each node; attempt 3 finds no node left to try
            assert doomed.start_attempts == 3
            # as in Nova, both hold their quota until deleted, the failed one too
            assert quota.usage(s, "p1")["instances"] == 2
    finally:
        bad.stop()
        good.stop()


def test_full_cloud_and_no_node(core: dict[str, Any]) -> None:
    db = core["db"]
    [lonely] = create(db, "lonely")
    wait_until(lambda: state(db, lonely)[0] == states.ERROR, what="no node ERROR")
    agent = ScriptedAgent(core["home"], core["port"], mem_mb=1024).start()
    try:
        wait_until(lambda: agent.client.connected.is_set())
        [big] = create(db, "big", mem_mb=4096)
        wait_until(lambda: state(db, big)[0] == states.ERROR, what="full ERROR")
        with db.session(readonly=True) as s:
            assert "No valid host" in s.get(Instance, big).fault["message"]
    finally:
        agent.stop()


def test_node_disconnect_marks_instances_and_stray_is_deleted(core: dict[str, Any]) -> None:
    db = core["db"]
    agent = ScriptedAgent(core["home"], core["port"]).start()
    [iid] = create(db, "vm")
    wait_until(lambda: state(db, iid) == (states.ACTIVE, None))
    agent.stop()

    def lost() -> bool:
        with db.session(readonly=True) as s:
            return s.get(Instance, iid).node_lost

    wait_until(lost, what="node_lost")
    # While the node is away the instance is deleted here; when the node comes back
    # still running it, the controller deletes it there.
    with db.session() as s:
        operations.delete_instance(s, s.get(Instance, iid))
    back = ScriptedAgent(core["home"], core["port"])
    back.uuid = agent.uuid
    back.running = dict(agent.running)
    back.start()
    try:
        wait_until(lambda: back.client.connected.is_set())
        asyncio.run_coroutine_threadsafe(
            back.client.send(P.frame(F.Type.COMMAND, F.Command.STATS, back.stats())), back.loop
        ).result(5)
        wait_until(lambda: iid not in back.running, what="stray deleted on the node")
        wait_until(lambda: state(db, iid)[0] == states.DELETED)
    finally:
        back.stop()


def test_build_that_never_reports_times_out(tmp_path: Path, database_url_factory) -> None:  # noqa: ANN001
    port = free_port()
    url = database_url_factory()
    env = core_env(
        tmp_path,
        url,
        port,
        CIAOSTACK_CONTROLLER__BUILD_TIMEOUT="3",
        CIAOSTACK_CONTROLLER__RESEND_AFTER="1",
    )
    prepare(env)
    procs = [
        Process("scheduler", ["scheduler"], env, tmp_path).start(),
        Process("controller", ["controller"], env, tmp_path).start(),
    ]
    db = Database(url)
    agent = ScriptedAgent(tmp_path, port, silent={"lost"}).start()
    try:
        wait_until(lambda: agent.client.connected.is_set())
        [iid] = create(db, "lost")
        wait_until(lambda: state(db, iid)[0] == states.ERROR, timeout=30, what="timeout ERROR")
        with db.session(readonly=True) as s:
            row = s.get(Instance, iid)
            assert row.fault["message"] == "Build timed out."
            assert quota.usage(s, "p1")["instances"] == 1  # until it is deleted
        # It was asked again (START is idempotent) before giving up.
        assert agent.received.count("COMMAND/START") >= 2
    finally:
        agent.stop()
        for proc in procs:
            proc.stop()
        db.dispose()


def test_a_controller_that_connects_late_learns_the_nodes(core: dict[str, Any]) -> None:
    db = core["db"]
    agents = [ScriptedAgent(core["home"], core["port"]).start() for _ in range(2)]
    try:
        wait_until(lambda: all(a.client.connected.is_set() for a in agents))

        def nodes_known() -> int:
            with db.session(readonly=True) as s:
                return len(s.scalars(select(ComputeNode).where(ComputeNode.connected)).all())

        wait_until(lambda: nodes_known() == 2, what="the first controller knows the nodes")
        # Forget them, then let a second controller connect: the scheduler tells it.
        core["controller"].stop()
        with db.session() as s:
            s.execute(update(ComputeNode).values(connected=False))
        late = Process("controller2", ["controller"], core["env"], core["home"]).start()
        try:
            wait_until(lambda: nodes_known() == 2, what="late controller learns the nodes")
        finally:
            late.stop()
        assert "Traceback" not in late.text()
    finally:
        for a in agents:
            a.stop()


def test_two_controllers_at_once_start_each_instance_once(core: dict[str, Any]) -> None:
    """Both controllers claim outbox rows and apply every report; the datastore keeps
    them from doing anything twice. A START may legitimately be resent (the resend
    delay is short here), but it reaches the node already holding the instance."""
    db = core["db"]
    agents = [ScriptedAgent(core["home"], core["port"]).start() for _ in range(2)]
    second = Process("controller2", ["controller"], core["env"], core["home"]).start()
    try:
        wait_until(lambda: all(a.client.connected.is_set() for a in agents))
        ids = create(db, "vm", count=60, mem_mb=64)

        def pending() -> list[tuple[str, str, str | None]]:
            with db.session(readonly=True) as s:
                rows = s.scalars(select(Instance).where(Instance.id.in_(ids))).all()
                return [
                    (r.id, r.vm_state, r.task_state)
                    for r in rows
                    if (r.vm_state, r.task_state) != (states.ACTIVE, None)
                ]

        try:
            wait_until(lambda: not pending(), timeout=60, what="all ACTIVE, two controllers")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}: {pending()[:5]}\n--- controller ---\n{core['controller'].text()[-3000:]}"
                f"\n--- controller2 ---\n{second.text()[-3000:]}"
            ) from None
        running = [set(a.running) for a in agents]
        assert running[0].isdisjoint(running[1])
        assert running[0] | running[1] == set(ids)
        with db.session(readonly=True) as s:
            assert quota.usage(s, "p1") == {"instances": 60, "cores": 60, "ram": 60 * 64}
            assert s.scalars(select(Outbox)).all() == []
            nodes = {r.id: r.node_uuid for r in s.scalars(select(Instance)).all()}
        for agent, mine in zip(agents, running, strict=True):
            assert {nodes[i] for i in mine} == {str(agent.uuid)}
    finally:
        second.stop()
        for a in agents:
            a.stop()
    assert "Traceback" not in second.text(), second.text()[-4000:]
