"""The launcher: the SSNTP agent on every compute node.

It connects to the scheduler as AGENT, announces the node (READY, followed
by FULL or MAINTENANCE when that applies) on every connect and after every
start or delete, reports STATS periodically and after state changes, and
turns commands into backend operations.

Ordering and concurrency: the transport hands frames over one at a time in
arrival order. The launcher decides everything that depends on the whole node
(idempotency, maintenance, capacity) right there, in frame order, then queues
the slow work on the instance's own queue: operations on one instance run one
after another in the order their frames arrived, operations on different
instances run concurrently, and nothing waits on a backend while heartbeats
are due.

Idempotency: every command may arrive twice (a controller that restarted
resends what it is unsure of). A repeated START is answered with the state of
the instance the node already has, never started again. A DELETE for an
instance the node does not have is answered InstanceDeleted: the controller
wants it gone and it is, so its cleanup converges instead of looping on
DeleteFailure.

Server actions (pause, suspend, rebuild, resize, snapshot, console output)
follow the same pattern: a power change answers with STATS in the new state,
a rebuild or resize with its event, a snapshot uploads the disk over HTTP to
the image API with the grant the command carries, a console request is
answered at once with the log's tail (it does not queue behind the instance's
other operations). A resize, like a START, is checked against the node's
free capacity in frame order.

Restarts: the state directory (agents/state.py) keeps every instance with its
START payload, the operation in progress and the commands accepted but not yet
answered. A restarted launcher reloads it, re-attaches through the backend,
resumes interrupted creates and deletes, runs the unanswered commands again
(stop, reboot, rebuild, resize, snapshot...: backend operations are idempotent),
and reports everything in its first READY and STATS. Reports that could not be
sent while disconnected (events and failures) are kept and sent after the
next connect; READY and STATS are rebuilt then anyway.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ciaostack.agents import upload
from ciaostack.agents.backends import Backend, BackendError, NodeResources
from ciaostack.agents.state import (
    InstanceRecord,
    PendingCommand,
    StateStore,
    Task,
    is_safe_id,
)
from ciaostack.core.ssntp import payloads as P
from ciaostack.core.ssntp.frames import Command, Error, Event, Frame, Role, Status, Type
from ciaostack.core.ssntp.transport import Client, Connection

LOG = logging.getLogger("ciaostack.launcher")

# Events and failures kept while disconnected; beyond this the oldest are dropped
# (the controller's reconciliation covers what is lost).
OUTBOX_LIMIT = 10_000

# Nova's power states, which the controller shows as OS-EXT-STS:power_state.
POWER_STATES = {
    P.InstanceState.PENDING: 0,
    P.InstanceState.RUNNING: 1,
    P.InstanceState.PAUSED: 3,
    P.InstanceState.STOPPED: 4,
    P.InstanceState.EXITED: 4,
    P.InstanceState.ERROR: 6,
    P.InstanceState.SUSPENDED: 7,
}

# Reasons carried by instance and volume command failures.
INVALID_DATA = "invalid_data"
INVALID_STATE = "invalid_state"
UPLOAD_FAILURE = "upload_failure"
BACKEND_FAILURE = {
    Error.STOP_FAILURE: "stop_failure",
    Error.RESTART_FAILURE: "restart_failure",
    Error.DELETE_FAILURE: "delete_failure",
    Error.ATTACH_VOLUME_FAILURE: "attach_failure",
    Error.DETACH_VOLUME_FAILURE: "detach_failure",
    Error.PAUSE_FAILURE: "pause_failure",
    Error.UNPAUSE_FAILURE: "unpause_failure",
    Error.SUSPEND_FAILURE: "suspend_failure",
    Error.RESUME_FAILURE: "resume_failure",
    Error.REBUILD_FAILURE: "rebuild_failure",
    Error.RESIZE_FAILURE: "resize_failure",
    Error.CONFIRM_RESIZE_FAILURE: "confirm_resize_failure",
    Error.REVERT_RESIZE_FAILURE: "revert_resize_failure",
    Error.SNAPSHOT_FAILURE: "snapshot_failure",
    Error.CONSOLE_OUTPUT_FAILURE: P.CONSOLE_FAILURE,
}
# Power changes: command -> (its failure, the state it starts from, the state it ends in).
POWER_CHANGES = {
    Command.PAUSE: (Error.PAUSE_FAILURE, P.InstanceState.RUNNING, P.InstanceState.PAUSED),
    Command.UNPAUSE: (Error.UNPAUSE_FAILURE, P.InstanceState.PAUSED, P.InstanceState.RUNNING),
    Command.SUSPEND: (Error.SUSPEND_FAILURE, P.InstanceState.RUNNING, P.InstanceState.SUSPENDED),
    Command.RESUME: (Error.RESUME_FAILURE, P.InstanceState.SUSPENDED, P.InstanceState.RUNNING),
}
# The most of a console log one answer carries (its tail), as Nova's libvirt driver.
MAX_CONSOLE_CHARS = 100 * 1024

Job = Callable[[], Awaitable[None]]


class Serializer:
    """Runs each key's jobs one after another in submission order; keys run concurrently."""

    def __init__(self) -> None:
        self._queues: dict[str, collections.deque[Job]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, key: str, job: Job) -> None:
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(job)
            return
        self._queues[key] = collections.deque([job])
        task = asyncio.create_task(self._drain(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                job = queue.popleft()
                try:
                    await job()
                except Exception:
                    LOG.exception("instance=%s operation failed unexpectedly", key)
        finally:
            del self._queues[key]

    async def idle(self) -> None:
        """Wait until every queued job has run (tests and orderly shutdowns)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclasses.dataclass(frozen=True)
class LauncherOptions:
    hostname: str
    availability_zone: str = "nova"
    reserve_mem_mb: int = 512
    reserve_disk_mb: int = 1024
    stats_interval: float = 10.0
    # The CA that vouches for the cloud's hosts: a snapshot upload over https checks the
    # image API's certificate against it.
    ca_file: Path | None = None


@dataclasses.dataclass(frozen=True)
class Free:
    """What the node can still give to instances, its reserve already set aside."""

    mem_mb: int
    disk_mb: int
    vcpus: int

    @property
    def full(self) -> bool:
        return self.mem_mb <= 0 or self.disk_mb <= 0 or self.vcpus <= 0

    def fits(self, req: P.Requirements) -> bool:
        return req.mem_mb <= self.mem_mb and req.disk_mb <= self.disk_mb and req.vcpus <= self.vcpus


def invalid_start(start: P.Start, node_uuid: uuid.UUID) -> str:
    """Why a well-formed START cannot be acted on, or "" when it can."""
    req = start.requirements
    if not is_safe_id(start.instance_uuid):
        return "instance_uuid must be letters, digits, '-' or '_' (at most 128)"
    if req.mem_mb <= 0 or req.vcpus <= 0 or req.disk_mb < 0:
        return "requirements need mem_mb > 0, vcpus > 0 and disk_mb >= 0"
    if start.node_uuid and start.node_uuid != str(node_uuid):
        return f"START is for node {start.node_uuid}, this is {node_uuid}"
    return ""


class Launcher:
    def __init__(self, backend: Backend, store: StateStore, options: LauncherOptions) -> None:
        self.backend = backend
        self.store = store
        self.options = options
        self.node = store.load_node()
        self.instances: dict[str, InstanceRecord] = {}
        self.jobs = Serializer()
        self.client: Client | None = None
        self.resources = NodeResources(0, 0, 0)
        self._outbox: collections.deque[Frame] = collections.deque(maxlen=OUTBOX_LIMIT)
        # The instance operations a command queues, from its message (and, for a resize,
        # the requirements held before it): run when it arrives, and again after a restart
        # for a command the launcher had not answered.
        self._operations: dict[Command, Callable[[Any, P.Requirements | None], Job]] = {
            Command.STOP: lambda m, _: functools.partial(self._stop, m),
            Command.RESTART: lambda m, _: functools.partial(self._restart, m),
            Command.DELETE: lambda m, _: functools.partial(self._delete, m.instance_uuid),
            Command.ATTACH_VOLUME: lambda m, _: functools.partial(self._attach, m),
            Command.DETACH_VOLUME: lambda m, _: functools.partial(self._detach, m),
            Command.REBUILD: lambda m, _: functools.partial(self._rebuild, m),
            Command.RESIZE: lambda m, held: functools.partial(
                self._size_change, m, held, revert=False
            ),
            Command.REVERT_RESIZE: lambda m, held: functools.partial(
                self._size_change, m, held, revert=True
            ),
            Command.CONFIRM_RESIZE: lambda m, _: functools.partial(
                self._confirm_resize, m.instance_uuid
            ),
            Command.SNAPSHOT: lambda m, _: functools.partial(self._snapshot, m),
        }
        for command in POWER_CHANGES:
            self._operations[command] = functools.partial(self._power_operation, command)
        self._commands: dict[Command, Callable[[Any], Awaitable[None]]] = {
            Command.START: self._on_start,
            Command.EVACUATE: self._on_evacuate,
            Command.RESTORE: self._on_restore,
            Command.CONFIGURE: self._on_configure,
            Command.STATS: self._on_stats,
            Command.RESIZE: functools.partial(self._on_size_change, revert=False),
            Command.REVERT_RESIZE: functools.partial(self._on_size_change, revert=True),
            Command.CONSOLE_OUTPUT: self._on_console_output,
        }
        for command in self._operations:
            self._commands.setdefault(command, functools.partial(self._on_command, command))

    @property
    def uuid(self) -> uuid.UUID:
        return self.node.node_uuid

    # -- running ---------------------------------------------------------------------------------

    async def recover(self) -> None:
        """Reload instances from disk, re-attach them, resume interrupted operations."""
        records = self.store.load_instances()
        found = await self.backend.reattach(list(records))
        for instance_uuid, record in records.items():
            self.instances[instance_uuid] = record
            if record.task == Task.DELETING:
                # Whatever else it was asked is moot once it is gone.
                LOG.info("instance=%s resuming delete", instance_uuid)
                record.pending.clear()
                self.jobs.submit(instance_uuid, functools.partial(self._delete, instance_uuid))
                continue
            if record.task == Task.CREATING:
                LOG.info("instance=%s resuming create", instance_uuid)
                self.jobs.submit(instance_uuid, functools.partial(self._create, record))
            elif instance_uuid in found:
                if record.state != found[instance_uuid]:
                    record.state = found[instance_uuid]
                    self.store.save(record)
                LOG.info("instance=%s re-attached state=%s", instance_uuid, record.state)
                if record.start.resize_from and record.state == P.InstanceState.RUNNING:
                    # A move's copy: the InstanceResized that ends the move may have been
                    # lost with the process that started it. Said again, it ends only the
                    # move it is numbered for, if still in flight, and nothing else.
                    self.jobs.submit(
                        instance_uuid,
                        functools.partial(
                            self._event,
                            Event.INSTANCE_RESIZED,
                            instance_uuid,
                            record.start.attempt,
                        ),
                    )
            else:
                LOG.warning("instance=%s is gone from the backend: state error", instance_uuid)
                record.state = P.InstanceState.ERROR
                self.store.save(record)
            self._resume_pending(record)
        self.resources = await self.backend.capacity()

    async def run(self, client: Client) -> None:
        """Recover, then stay connected and report until cancelled or refused for good."""
        self.client = client
        await self.recover()
        stats = asyncio.create_task(self._stats_loop())
        try:
            await client.run()
        finally:
            stats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stats

    async def close(self) -> None:
        """Stop talking and working; instances keep running and are re-attached next time."""
        if self.client is not None:
            await self.client.stop()
        await self.jobs.cancel()
        await self.backend.close()

    async def on_connected(self, conn: Connection) -> None:
        LOG.info("launcher node=%s connected to scheduler=%s", self.uuid, conn.peer_uuid)
        await self.announce()
        await self._send(await self.stats_frame())
        while self._outbox:
            frame = self._outbox.popleft()
            if not await self._send(frame):
                self._outbox.appendleft(frame)
                break

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.stats_interval)
            if self.client is None or not self.client.connected.is_set():
                continue
            try:
                await self._send(await self.stats_frame())
            except Exception:
                LOG.exception("launcher STATS report failed")

    # -- reports ----------------------------------------------------------------------------------

    async def _send(self, frame: Frame, keep: bool = False) -> bool:
        """Send a frame; when disconnected, keep it for the next connection if asked to."""
        try:
            if self.client is None:
                raise ConnectionError("no client")
            await self.client.send(frame)
        except (ConnectionError, OSError):
            if keep:
                self._outbox.append(frame)
            LOG.debug("launcher not connected: %s %s", frame.name, "kept" if keep else "dropped")
            return False
        return True

    async def _event(self, event: Event, instance_uuid: str, attempt: int = 0) -> None:
        payload = P.InstanceEvent(
            instance_uuid=instance_uuid, node_uuid=str(self.uuid), attempt=attempt
        )
        await self._send(P.frame(Type.EVENT, event, payload), keep=True)

    async def _failure(self, error: Error, payload: Any) -> None:
        await self._send(P.frame(Type.ERROR, error, payload), keep=True)

    def free(self) -> Free:
        # Every instance the node holds counts, stopped ones too: as in Nova, a stopped
        # server keeps its resources so that it can always be started again.
        used_mem = used_disk = used_vcpus = 0
        for record in self.instances.values():
            req = record.start.requirements
            used_mem += req.mem_mb
            used_disk += req.disk_mb
            used_vcpus += req.vcpus
        res = self.resources
        return Free(
            max(0, res.mem_mb - self.options.reserve_mem_mb - used_mem),
            max(0, res.disk_mb - self.options.reserve_disk_mb - used_disk),
            max(0, res.vcpus - used_vcpus),
        )

    def status(self) -> P.NodeStatus:
        if self.node.maintenance:
            return P.NodeStatus.MAINTENANCE
        return P.NodeStatus.FULL if self.free().full else P.NodeStatus.READY

    async def announce(self) -> None:
        """READY with the node's figures and instances, then FULL or MAINTENANCE if so."""
        self.resources = await self.backend.capacity()
        free, res = self.free(), self.resources
        ready = P.Ready(
            node_uuid=str(self.uuid),
            mem_total_mb=res.mem_mb,
            mem_available_mb=free.mem_mb,
            disk_total_mb=res.disk_mb,
            disk_available_mb=free.disk_mb,
            vcpus_total=res.vcpus,
            vcpus_available=free.vcpus,
            load=res.load,
            hostname=self.options.hostname,
            availability_zone=self.options.availability_zone,
            instances=list(self.instances),
        )
        await self._send(P.frame(Type.STATUS, Status.READY, ready))
        status = self.status()
        if status is not P.NodeStatus.READY:
            operand = Status.MAINTENANCE if status is P.NodeStatus.MAINTENANCE else Status.FULL
            await self._send(P.frame(Type.STATUS, operand, P.NodeOnly(str(self.uuid))))

    async def stats_frame(self) -> Frame:
        usage = await self.backend.stats()
        free, res = self.free(), self.resources
        stats = []
        for instance_uuid, record in self.instances.items():
            used = usage.get(instance_uuid)
            stats.append(
                P.InstanceStat(
                    instance_uuid=instance_uuid,
                    state=record.state,
                    memory_usage_mb=used.memory_mb if used else 0,
                    disk_usage_mb=used.disk_mb if used else 0,
                    cpu_usage=used.cpu_percent if used else 0,
                    power_state=POWER_STATES[record.state],
                    volumes=list(record.volumes),
                )
            )
        payload = P.Stats(
            node_uuid=str(self.uuid),
            status=self.status(),
            mem_total_mb=res.mem_mb,
            mem_available_mb=free.mem_mb,
            disk_total_mb=res.disk_mb,
            disk_available_mb=free.disk_mb,
            vcpus_total=res.vcpus,
            vcpus_available=free.vcpus,
            load=res.load,
            hostname=self.options.hostname,
            instances=stats,
            availability_zone=self.options.availability_zone,
        )
        return P.frame(Type.COMMAND, Command.STATS, payload)

    # -- frames -----------------------------------------------------------------------------------

    async def handle(self, conn: Connection, frame: Frame, message: Any) -> None:
        LOG.debug("launcher frame=%s", frame.name)
        if frame.type == Type.COMMAND:
            command = self._commands.get(Command(frame.operand))
            if command is not None:
                await command(message)
                return
            await conn.send_error(
                Error.INVALID_FRAME_TYPE,
                P.InvalidFrame(
                    frame_type=int(frame.type),
                    operand=int(frame.operand),
                    message=f"a launcher does not handle {frame.name}",
                ),
            )
        elif frame.type == Type.ERROR:
            LOG.warning("scheduler reported %s: %s", frame.name, frame.payload.get("message", ""))

    async def _on_start(self, start: P.Start) -> None:
        instance_uuid = start.instance_uuid
        problem = invalid_start(start, self.uuid)
        if problem:
            LOG.warning("instance=%r START refused: %s", instance_uuid, problem)
            await self._start_failure(start, P.StartFailureReason.INVALID_DATA, problem)
            return
        if instance_uuid in self.instances:
            LOG.info("instance=%s START repeated: answering with its state", instance_uuid)
            self.jobs.submit(instance_uuid, functools.partial(self._answer_start, start))
            return
        if self.node.maintenance:
            LOG.info("instance=%s START refused: node in maintenance", instance_uuid)
            await self._start_failure(
                start, P.StartFailureReason.NODE_MAINTENANCE, "the node is in maintenance"
            )
            return
        free = self.free()
        if not free.fits(start.requirements):
            req = start.requirements
            message = (
                f"needs {req.mem_mb} MB, {req.disk_mb} MB disk, {req.vcpus} vCPUs; the node has "
                f"{free.mem_mb} MB, {free.disk_mb} MB disk, {free.vcpus} vCPUs beyond its reserve"
            )
            LOG.info("instance=%s START refused: %s", instance_uuid, message)
            await self._start_failure(start, P.StartFailureReason.FULL_CN, message)
            await self.announce()  # the scheduler's figures were wrong: correct them
            return
        record = InstanceRecord(start=start)
        self.instances[instance_uuid] = record
        self.store.save(record)
        LOG.info(
            "instance=%s creating image=%s mem_mb=%d vcpus=%d",
            instance_uuid,
            start.image_uuid,
            start.requirements.mem_mb,
            start.requirements.vcpus,
        )
        self.jobs.submit(instance_uuid, functools.partial(self._create, record))

    async def _start_failure(
        self, start: P.Start, reason: P.StartFailureReason, message: str
    ) -> None:
        await self._failure(
            Error.START_FAILURE,
            P.StartFailure(
                instance_uuid=start.instance_uuid,
                reason=reason,
                message=message,
                node_uuid=str(self.uuid),
                attempt=start.attempt,
            ),
        )

    async def _on_command(self, command: Command, message: Any) -> None:
        self._accept(command, message)

    def _accept(self, command: Command, message: Any, held: P.Requirements | None = None) -> None:
        """Queue a command's operation on its instance. Until it is answered the command
        stays in the instance's state file, so that a launcher killed in the middle runs
        it again after its restart instead of leaving the controller waiting for an
        answer that never comes."""
        instance_uuid = message.instance_uuid
        record = self.instances.get(instance_uuid)
        pending = None
        if record is not None:
            pending = PendingCommand(
                id=uuid.uuid4().hex,
                command=command.name,
                payload=P.to_dict(message),
                held=P.to_dict(held) if held is not None else None,
            )
            record.pending.append(pending)
            self.store.save(record)
        self._queue(instance_uuid, self._operations[command](message, held), pending)

    def _queue(self, instance_uuid: str, job: Job, pending: PendingCommand | None) -> None:
        self.jobs.submit(
            instance_uuid, functools.partial(self._answer, instance_uuid, job, pending)
        )

    async def _answer(self, instance_uuid: str, job: Job, pending: PendingCommand | None) -> None:
        try:
            await job()
        finally:
            record = self.instances.get(instance_uuid)
            if pending is not None and record is not None and pending in record.pending:
                record.pending.remove(pending)
                self.store.save(record)

    def _power_operation(
        self, command: Command, message: P.InstanceCommand, held: P.Requirements | None
    ) -> Job:
        return functools.partial(self._power, command, message.instance_uuid)

    def _resume_pending(self, record: InstanceRecord) -> None:
        """Queue again, in their order, the commands a killed launcher had not answered."""
        for pending in record.pending:
            command = Command[pending.command]
            try:
                message = P.from_dict(P.MESSAGES[(Type.COMMAND, command)], pending.payload)
                held = P.from_dict(P.Requirements, pending.held) if pending.held else None
            except (KeyError, ValueError) as exc:
                LOG.error(
                    "instance=%s pending %s dropped: %s", record.instance_uuid, command.name, exc
                )
                continue
            LOG.info("instance=%s resuming %s", record.instance_uuid, command.name)
            self._queue(record.instance_uuid, self._operations[command](message, held), pending)

    async def _on_size_change(self, message: P.Resize, revert: bool) -> None:
        """RESIZE and REVERT_RESIZE: whether the node has room for what the instance grows
        by is decided now, in frame order, and held by updating its requirements; the
        backend then works on the instance's queue."""
        instance_uuid = message.instance_uuid
        error = Error.REVERT_RESIZE_FAILURE if revert else Error.RESIZE_FAILURE
        event = Event.RESIZE_REVERTED if revert else Event.INSTANCE_RESIZED
        failure = self._instance_failure(instance_uuid, message.attempt)
        record = self.instances.get(instance_uuid)
        if record is None:
            await self._failure(error, failure(P.NO_INSTANCE, "no such instance on this node"))
            return
        held, wanted = record.start.requirements, message.requirements
        if (held.mem_mb, held.vcpus, held.disk_mb) == (wanted.mem_mb, wanted.vcpus, wanted.disk_mb):
            LOG.info("instance=%s already has the size asked for", instance_uuid)
            self.jobs.submit(
                instance_uuid,
                functools.partial(self._event, event, instance_uuid, message.attempt),
            )
            return
        growth = P.Requirements(
            mem_mb=max(0, wanted.mem_mb - held.mem_mb),
            vcpus=max(0, wanted.vcpus - held.vcpus),
            disk_mb=max(0, wanted.disk_mb - held.disk_mb),
        )
        free = self.free()
        if not free.fits(growth):
            text = (
                f"needs {growth.mem_mb} MB, {growth.disk_mb} MB disk, {growth.vcpus} vCPUs more; "
                f"the node has {free.mem_mb} MB, {free.disk_mb} MB disk, {free.vcpus} vCPUs "
                "beyond its reserve"
            )
            LOG.info("instance=%s resize refused: %s", instance_uuid, text)
            await self._failure(error, failure(P.StartFailureReason.FULL_CN.value, text))
            await self.announce()
            return
        record.start = dataclasses.replace(
            record.start,
            requirements=dataclasses.replace(
                held, mem_mb=wanted.mem_mb, vcpus=wanted.vcpus, disk_mb=wanted.disk_mb
            ),
        )
        # Saved with the new requirements by _accept.
        self._accept(Command.REVERT_RESIZE if revert else Command.RESIZE, message, held)

    async def _on_console_output(self, message: P.ConsoleRequest) -> None:
        # Read-only: on a queue of its own, so that it does not wait behind a snapshot.
        self.jobs.submit(
            f"console-{message.instance_uuid}", functools.partial(self._console_output, message)
        )

    async def _on_evacuate(self, message: P.Evacuate) -> None:
        if message.workload_agent_uuid != str(self.uuid):
            LOG.warning("EVACUATE for node %s ignored: not this node", message.workload_agent_uuid)
            return
        LOG.info("node=%s entering maintenance: STARTs refused until RESTORE", self.uuid)
        self.node.maintenance = True
        self.store.save_node(self.node)
        await self._send(P.frame(Type.STATUS, Status.MAINTENANCE, P.NodeOnly(str(self.uuid))))

    async def _on_restore(self, message: P.Restore) -> None:
        if message.workload_agent_uuid != str(self.uuid):
            LOG.warning("RESTORE for node %s ignored: not this node", message.workload_agent_uuid)
            return
        LOG.info("node=%s leaving maintenance", self.uuid)
        self.node.maintenance = False
        self.store.save_node(self.node)
        await self.announce()

    async def _on_configure(self, message: P.Configure) -> None:
        LOG.debug("CONFIGURE ignored: a launcher has no cluster-wide settings to apply")

    async def _on_stats(self, message: P.Stats) -> None:
        # A server asking for STATS gets the node's own.
        await self._send(await self.stats_frame())

    # -- instance operations (each runs on the instance's queue) ---------------------------

    async def _answer_start(self, start: P.Start) -> None:
        record = self.instances.get(start.instance_uuid)
        if record is None:
            # The START it repeats failed or was followed by a DELETE, and that was reported:
            # a second StartFailure could make a controller retry the instance twice.
            LOG.info("instance=%s repeated START: already reported gone", start.instance_uuid)
        elif record.state == P.InstanceState.STOPPED:
            await self._event(Event.INSTANCE_STOPPED, start.instance_uuid)
        else:
            await self.announce()
            await self._send(await self.stats_frame())
            if record.start.resize_from and record.state == P.InstanceState.RUNNING:
                # The number of the move this copy was started for: a START of a later
                # move that finds it here must not be taken as done by it.
                await self._event(Event.INSTANCE_RESIZED, start.instance_uuid, record.start.attempt)

    async def _create(self, record: InstanceRecord) -> None:
        instance_uuid = record.instance_uuid
        try:
            await self.backend.create(record.start)
        except Exception as exc:
            if isinstance(exc, BackendError):
                reason, message = exc.reason, str(exc)
                LOG.warning("instance=%s start failed (%s): %s", instance_uuid, reason, message)
            else:
                reason, message = P.StartFailureReason.LAUNCH_FAILURE, "internal backend error"
                LOG.exception("instance=%s start failed", instance_uuid)
            with contextlib.suppress(Exception):
                await self.backend.delete(instance_uuid)
            # Forget it before reporting: a launcher killed in between must not start it again
            # after the controller has moved it to another node.
            self.instances.pop(instance_uuid, None)
            self.store.remove(instance_uuid)
            await self._start_failure(record.start, P.StartFailureReason(reason), message)
            await self.announce()
            return
        record.state, record.task = P.InstanceState.RUNNING, Task.NONE
        self.store.save(record)
        LOG.info("instance=%s running", instance_uuid)
        await self.announce()
        await self._send(await self.stats_frame())
        if record.start.resize_from:
            # Here with its new size, moved from another node: the resize is done.
            await self._event(Event.INSTANCE_RESIZED, instance_uuid, record.start.attempt)

    async def _backend_call(
        self,
        instance_uuid: str,
        error: Error,
        failure: Callable[[str, str], Any],
        action: Callable[[], Awaitable[None]],
    ) -> bool:
        """Run a backend action; on failure send `error` built by `failure(reason, message)`."""
        try:
            await action()
        except BackendError as exc:
            LOG.warning("instance=%s %s: %s", instance_uuid, error.name.lower(), exc)
            await self._failure(error, failure(BACKEND_FAILURE[error], str(exc)))
            return False
        except Exception:
            LOG.exception("instance=%s %s", instance_uuid, error.name.lower())
            await self._failure(error, failure(BACKEND_FAILURE[error], "internal backend error"))
            return False
        return True

    def _instance_failure(
        self, instance_uuid: str, attempt: int = 0
    ) -> Callable[[str, str], P.InstanceFailure]:
        return functools.partial(P.InstanceFailure, instance_uuid, attempt=attempt)

    async def _stop(self, message: P.InstanceCommand) -> None:
        instance_uuid = message.instance_uuid
        record = self.instances.get(instance_uuid)
        if record is None:
            await self._failure(
                Error.STOP_FAILURE,
                P.InstanceFailure(instance_uuid, P.NO_INSTANCE, "no such instance on this node"),
            )
            return
        if not await self._backend_call(
            instance_uuid,
            Error.STOP_FAILURE,
            self._instance_failure(instance_uuid),
            functools.partial(self.backend.stop, instance_uuid),
        ):
            return
        record.state = P.InstanceState.STOPPED
        self.store.save(record)
        LOG.info("instance=%s stopped", instance_uuid)
        await self._event(Event.INSTANCE_STOPPED, instance_uuid)

    async def _restart(self, message: P.InstanceCommand) -> None:
        instance_uuid = message.instance_uuid
        record = self.instances.get(instance_uuid)
        failure = self._instance_failure(instance_uuid)
        if record is None:
            await self._failure(
                Error.RESTART_FAILURE, failure(P.NO_INSTANCE, "no such instance on this node")
            )
            return
        if message.reboot not in ("", "soft", "hard"):
            await self._failure(
                Error.RESTART_FAILURE, failure(INVALID_DATA, "reboot must be soft or hard")
            )
            return
        if record.state == P.InstanceState.RUNNING:
            if not message.reboot:
                action, verb = None, "already running"
            else:
                hard = message.reboot == "hard"
                action = functools.partial(self.backend.reboot, instance_uuid, hard)
                verb = f"rebooted ({message.reboot})"
        elif record.state == P.InstanceState.ERROR:
            # Its workload vanished: build it again from the START it came from.
            action = functools.partial(self.backend.create, record.start)
            verb = "re-created"
        else:
            action, verb = functools.partial(self.backend.start, instance_uuid), "started"
        if action is not None and not await self._backend_call(
            instance_uuid, Error.RESTART_FAILURE, failure, action
        ):
            return
        record.state = P.InstanceState.RUNNING
        self.store.save(record)
        LOG.info("instance=%s %s", instance_uuid, verb)
        await self._send(await self.stats_frame())

    async def _delete(self, instance_uuid: str) -> None:
        record = self.instances.get(instance_uuid)
        if record is None:
            LOG.info("instance=%s delete: not on this node, reported deleted", instance_uuid)
            await self._event(Event.INSTANCE_DELETED, instance_uuid)
            return
        record.task = Task.DELETING
        self.store.save(record)
        if not await self._backend_call(
            instance_uuid,
            Error.DELETE_FAILURE,
            self._instance_failure(instance_uuid),
            functools.partial(self.backend.delete, instance_uuid),
        ):
            record.task = Task.NONE
            self.store.save(record)
            return
        self.store.remove(instance_uuid)
        del self.instances[instance_uuid]
        LOG.info("instance=%s deleted", instance_uuid)
        await self._event(Event.INSTANCE_DELETED, instance_uuid)
        await self.announce()

    async def _attach(self, message: P.VolumeCommand) -> None:
        await self._volume(message, attach=True)

    async def _detach(self, message: P.VolumeCommand) -> None:
        await self._volume(message, attach=False)

    async def _volume(self, message: P.VolumeCommand, attach: bool) -> None:
        instance_uuid, volume_uuid = message.instance_uuid, message.volume_uuid
        error = Error.ATTACH_VOLUME_FAILURE if attach else Error.DETACH_VOLUME_FAILURE
        failure = functools.partial(P.VolumeFailure, instance_uuid, volume_uuid)
        record = self.instances.get(instance_uuid)
        if record is None:
            await self._failure(error, failure(P.NO_INSTANCE, "no such instance on this node"))
            return
        if attach:
            action = functools.partial(
                self.backend.attach_volume, instance_uuid, volume_uuid, message.device
            )
        else:
            action = functools.partial(self.backend.detach_volume, instance_uuid, volume_uuid)
        if not await self._backend_call(instance_uuid, error, failure, action):
            return
        if attach and volume_uuid not in record.volumes:
            record.volumes.append(volume_uuid)
        elif not attach and volume_uuid in record.volumes:
            record.volumes.remove(volume_uuid)
        self.store.save(record)
        LOG.info(
            "instance=%s volume=%s %s",
            instance_uuid,
            volume_uuid,
            "attached" if attach else "detached",
        )
        await self._send(await self.stats_frame())

    async def _power(self, command: Command, instance_uuid: str) -> None:
        """Pause, unpause, suspend or resume; an instance already there is left alone."""
        error, source, target = POWER_CHANGES[command]
        failure = self._instance_failure(instance_uuid)
        record = self.instances.get(instance_uuid)
        if record is None:
            await self._failure(error, failure(P.NO_INSTANCE, "no such instance on this node"))
            return
        if record.state != target:
            if record.state != source:
                await self._failure(
                    error, failure(INVALID_STATE, f"the instance is {record.state}")
                )
                return
            action = getattr(self.backend, command.name.lower())  # named as the command
            if not await self._backend_call(
                instance_uuid, error, failure, functools.partial(action, instance_uuid)
            ):
                return
            record.state = target
            self.store.save(record)
            LOG.info("instance=%s %s", instance_uuid, target.value)
        await self._send(await self.stats_frame())

    async def _rebuild(self, message: P.Rebuild) -> None:
        """A fresh workload from the new image; a stopped instance is stopped again after.
        A failed rebuild may have destroyed the old workload: the instance is in error."""
        instance_uuid = message.instance_uuid
        failure = self._instance_failure(instance_uuid)
        record = self.instances.get(instance_uuid)
        if record is None:
            await self._failure(
                Error.REBUILD_FAILURE, failure(P.NO_INSTANCE, "no such instance on this node")
            )
            return
        start = dataclasses.replace(
            record.start,
            image_uuid=message.image_uuid,
            name=message.name or record.start.name,
            metadata=dict(message.metadata),
            user_data=message.user_data,
        )
        was_stopped = record.state == P.InstanceState.STOPPED
        if not await self._backend_call(
            instance_uuid,
            Error.REBUILD_FAILURE,
            failure,
            functools.partial(self.backend.rebuild, start),
        ):
            record.state = P.InstanceState.ERROR
            self.store.save(record)
            await self._send(await self.stats_frame())
            return
        # The record keeps its old state until the new one is reached: STATS sent
        # meanwhile must not show a stopped instance running.
        state = P.InstanceState.RUNNING
        if was_stopped:
            try:
                await self.backend.stop(instance_uuid)
                state = P.InstanceState.STOPPED
            except Exception:
                LOG.exception("instance=%s rebuilt but could not be stopped again", instance_uuid)
        record.start, record.state = start, state
        self.store.save(record)
        LOG.info("instance=%s rebuilt from image=%s", instance_uuid, start.image_uuid)
        await self._event(Event.INSTANCE_REBUILT, instance_uuid)
        await self._send(await self.stats_frame())

    async def _size_change(self, message: P.Resize, held: P.Requirements, revert: bool) -> None:
        """The backend's part of a resize or its revert; on failure the instance keeps
        the requirements it had (`held`)."""
        instance_uuid = message.instance_uuid
        error = Error.REVERT_RESIZE_FAILURE if revert else Error.RESIZE_FAILURE
        method = self.backend.revert_resize if revert else self.backend.resize
        done = await self._backend_call(
            instance_uuid,
            error,
            self._instance_failure(instance_uuid, message.attempt),
            functools.partial(method, instance_uuid, message.requirements),
        )
        record = self.instances.get(instance_uuid)
        if not done:
            if record is not None:
                record.start = dataclasses.replace(record.start, requirements=held)
                self.store.save(record)
        else:
            req = message.requirements
            LOG.info(
                "instance=%s %s to mem_mb=%d vcpus=%d disk_mb=%d",
                instance_uuid,
                "reverted" if revert else "resized",
                req.mem_mb,
                req.vcpus,
                req.disk_mb,
            )
            await self._event(
                Event.RESIZE_REVERTED if revert else Event.INSTANCE_RESIZED,
                instance_uuid,
                message.attempt,
            )
        await self.announce()

    async def _confirm_resize(self, instance_uuid: str) -> None:
        failure = self._instance_failure(instance_uuid)
        if instance_uuid not in self.instances:
            await self._failure(
                Error.CONFIRM_RESIZE_FAILURE,
                failure(P.NO_INSTANCE, "no such instance on this node"),
            )
            return
        if await self._backend_call(
            instance_uuid,
            Error.CONFIRM_RESIZE_FAILURE,
            failure,
            functools.partial(self.backend.confirm_resize, instance_uuid),
        ):
            LOG.info("instance=%s resize confirmed", instance_uuid)

    async def _power_off_for_snapshot(self, message: P.Snapshot) -> bool:
        """A shelve's guest stops before its disk is copied; False (and the snapshot's
        failure sent) when it cannot be stopped."""
        record = self.instances[message.instance_uuid]
        if record.state == P.InstanceState.STOPPED:
            return True
        instance_uuid = message.instance_uuid
        try:
            await self.backend.stop(instance_uuid)
        except Exception as exc:
            if isinstance(exc, BackendError):
                LOG.warning("instance=%s not stopped for its shelve: %s", instance_uuid, exc)
                why = str(exc)
            else:
                LOG.exception("instance=%s not stopped for its shelve", instance_uuid)
                why = "internal backend error"
            failure = P.SnapshotFailure(
                instance_uuid,
                message.image_uuid,
                BACKEND_FAILURE[Error.SNAPSHOT_FAILURE],
                f"the guest could not be powered off: {why}",
            )
            await self._failure(Error.SNAPSHOT_FAILURE, failure)
            return False
        record.state = P.InstanceState.STOPPED
        self.store.save(record)
        await self._send(await self.stats_frame())
        return True

    async def _snapshot(self, message: P.Snapshot) -> None:
        """Copy the disk to a file in the state directory, PUT it to the image API with
        the grant, and remove the file whatever happens."""
        instance_uuid, image_uuid = message.instance_uuid, message.image_uuid
        failure = functools.partial(P.SnapshotFailure, instance_uuid, image_uuid)
        if instance_uuid not in self.instances:
            await self._failure(
                Error.SNAPSHOT_FAILURE, failure(P.NO_INSTANCE, "no such instance on this node")
            )
            return
        if not is_safe_id(image_uuid):
            await self._failure(Error.SNAPSHOT_FAILURE, failure(INVALID_DATA, "bad image id"))
            return
        if message.power_off and not await self._power_off_for_snapshot(message):
            return
        directory = self.store.directory / "snapshots"
        directory.mkdir(mode=0o700, exist_ok=True)
        target = directory / f"{image_uuid}.img"
        try:
            disk_format = await self.backend.snapshot(instance_uuid, target)
            await asyncio.to_thread(
                upload.put_file,
                message.upload_url,
                message.upload_grant,
                target,
                disk_format,
                cafile=self.options.ca_file,
            )
        except (BackendError, upload.UploadError) as exc:
            reason = (
                UPLOAD_FAILURE
                if isinstance(exc, upload.UploadError)
                else BACKEND_FAILURE[Error.SNAPSHOT_FAILURE]
            )
            LOG.warning("instance=%s snapshot image=%s failed: %s", instance_uuid, image_uuid, exc)
            await self._failure(Error.SNAPSHOT_FAILURE, failure(reason, str(exc)))
            return
        except Exception:
            LOG.exception("instance=%s snapshot image=%s failed", instance_uuid, image_uuid)
            await self._failure(
                Error.SNAPSHOT_FAILURE,
                failure(BACKEND_FAILURE[Error.SNAPSHOT_FAILURE], "internal error"),
            )
            return
        finally:
            target.unlink(missing_ok=True)
        LOG.info("instance=%s snapshot uploaded as image=%s", instance_uuid, image_uuid)
        event = P.SnapshotEvent(instance_uuid, image_uuid, node_uuid=str(self.uuid))
        await self._send(P.frame(Type.EVENT, Event.SNAPSHOT_UPLOADED, event), keep=True)

    async def _console_output(self, message: P.ConsoleRequest) -> None:
        """The log's tail for a waiting API request: sent now or never (nobody waits for
        a late answer, so it is not kept while disconnected)."""
        instance_uuid = message.instance_uuid
        reason, text, output = "", "", ""
        if instance_uuid not in self.instances:
            reason, text = P.NO_INSTANCE, "no such instance on this node"
        else:
            length = None if message.length < 0 else message.length
            try:
                output = await self.backend.console_output(instance_uuid, length)
            except BackendError as exc:
                reason, text = BACKEND_FAILURE[Error.CONSOLE_OUTPUT_FAILURE], str(exc)
            except Exception:
                LOG.exception("instance=%s console output", instance_uuid)
                reason, text = BACKEND_FAILURE[Error.CONSOLE_OUTPUT_FAILURE], "internal error"
        if reason:
            failure = P.ConsoleFailure(instance_uuid, message.request_id, reason, text)
            await self._send(P.frame(Type.ERROR, Error.CONSOLE_OUTPUT_FAILURE, failure))
            return
        reply = P.ConsoleOutput(
            instance_uuid, message.request_id, output[-MAX_CONSOLE_CHARS:], str(self.uuid)
        )
        await self._send(P.frame(Type.EVENT, Event.CONSOLE_OUTPUT, reply))


def make_client(
    launcher: Launcher, host: str, port: int, context: ssl.SSLContext, max_backoff: float = 10.0
) -> Client:
    """The reconnecting SSNTP client a launcher speaks through (role AGENT)."""
    return Client(
        launcher.uuid,
        Role.AGENT,
        context,
        host,
        port,
        launcher.handle,
        on_connected=launcher.on_connected,
        hostname=launcher.options.hostname,
        max_backoff=max_backoff,
    )
