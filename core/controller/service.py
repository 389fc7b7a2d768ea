"""The controller process: outbox in, SSNTP commands out, reports back into the datastore.

Three loops share one SSNTP connection to the scheduler:
- the dispatcher claims outbox rows (PostgreSQL: FOR UPDATE SKIP LOCKED, woken
  by LISTEN/NOTIFY; SQLite: a short poll), sends them, then deletes them; a
  claim is a lease, so rows a crashed controller claimed are sent again by
  another (commands are idempotent);
- the report consumer applies launcher reports in batches, one transaction
  per batch, in arrival order;
- the reconciler ends builds that took too long, re-sends commands whose
  effect never showed, finishes deletes whose node is gone, and drops
  console-output replies that no API request waits for any more.
Several controllers may run at once: the datastore decides who does what.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, delete, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ciaostack.core.compute import server_groups
from ciaostack.core.controller import operations, reports, states
from ciaostack.core.controller.operations import enqueue
from ciaostack.core.db import prepared
from ciaostack.core.db.models import ComputeNode, ConsoleReply, Instance, Outbox, utcnow
from ciaostack.core.db.session import Database
from ciaostack.core.images import snapshots
from ciaostack.core.images.store import Store
from ciaostack.core.ssntp import payloads as P
from ciaostack.core.ssntp.frames import Command, Error, Event, Frame, Role, Status, Type
from ciaostack.core.ssntp.transport import Client, Connection

LOG = logging.getLogger("ciaostack.controller")

COMMANDS = {
    "START": Command.START,
    "STOP": Command.STOP,
    "DELETE": Command.DELETE,
    "RESTART": Command.RESTART,
    "ATTACH_VOLUME": Command.ATTACH_VOLUME,
    "DETACH_VOLUME": Command.DETACH_VOLUME,
    "EVACUATE": Command.EVACUATE,
    "RESTORE": Command.RESTORE,
    "PAUSE": Command.PAUSE,
    "UNPAUSE": Command.UNPAUSE,
    "SUSPEND": Command.SUSPEND,
    "RESUME": Command.RESUME,
    "REBUILD": Command.REBUILD,
    "RESIZE": Command.RESIZE,
    "CONFIRM_RESIZE": Command.CONFIRM_RESIZE,
    "REVERT_RESIZE": Command.REVERT_RESIZE,
    "SNAPSHOT": Command.SNAPSHOT,
    "CONSOLE_OUTPUT": Command.CONSOLE_OUTPUT,
}
# Failures that clear the task they answer (reports.instance_failure).
FAILURE_COMMAND = {
    Error.STOP_FAILURE: "STOP",
    Error.DELETE_FAILURE: "DELETE",
    Error.RESTART_FAILURE: "RESTART",
    Error.PAUSE_FAILURE: "PAUSE",
    Error.UNPAUSE_FAILURE: "UNPAUSE",
    Error.SUSPEND_FAILURE: "SUSPEND",
    Error.RESUME_FAILURE: "RESUME",
    Error.REBUILD_FAILURE: "REBUILD",
    Error.CONFIRM_RESIZE_FAILURE: "CONFIRM_RESIZE",
    Error.REVERT_RESIZE_FAILURE: "REVERT_RESIZE",
}
# Events that end a server action's task.
ACTION_EVENTS = {
    Event.INSTANCE_REBUILT: reports.instance_rebuilt,
    Event.INSTANCE_RESIZED: reports.instance_resized,
    Event.RESIZE_REVERTED: reports.resize_reverted,
    Event.SNAPSHOT_UPLOADED: reports.snapshot_uploaded,
}
NODE_STATUS = {
    Status.FULL: "FULL",
    Status.OFFLINE: "OFFLINE",
    Status.MAINTENANCE: "MAINTENANCE",
}
BATCH = 500
# Seconds a wake-up waits for more commands to send with it.
GATHER = 0.05
# Events about a node, each of which reads its row (STATS read their nodes themselves).
_NODE_REPORTS = {
    (Type.EVENT, Event.NODE_CONNECTED),
    (Type.EVENT, Event.NODE_DISCONNECTED),
}
LEASE = dt.timedelta(seconds=10)
# The dispatcher's statements, prepared (they run for every command sent).
_CLAIMABLE = (
    select(Outbox.id, Outbox.instance_id, Outbox.command, Outbox.payload)
    .where(or_(Outbox.claimed_at.is_(None), Outbox.claimed_at < bindparam("expired")))
    .order_by(Outbox.id)
    .limit(bindparam("limit"))
)
# PostgreSQL: several controllers claim at once; each skips the rows another holds.
_CLAIMABLE_LOCKED = _CLAIMABLE.with_for_update(skip_locked=True)
_CLAIM = (
    update(Outbox)
    .where(Outbox.id == bindparam("row"))
    .values(claimed_by=bindparam("by"), claimed_at=bindparam("at"))
)
_SENT = delete(Outbox).where(Outbox.id == bindparam("row"))
_TOUCH = update(Instance).where(Instance.id == bindparam("instance"))
# Console replies nobody waits for any more (the API request timed out) are dropped then.
CONSOLE_REPLY_TTL = dt.timedelta(minutes=2)


def _is_stats(report: tuple[Frame, Any]) -> bool:
    return (report[0].type, report[0].operand) == (Type.COMMAND, Command.STATS)


# SQLSTATEs of a transaction that lost a race with another controller (deadlock,
# serialization failure, or a row such as a new node's that the other inserted
# first): the work is simply done again, and then sees what the winner wrote.
_RACES = {"40P01", "40001", "23505"}
_TRIES = 4
T = TypeVar("T")


def _lost_race(exc: DBAPIError) -> bool:
    state = getattr(exc.orig, "sqlstate", None)
    return state in _RACES or "database is locked" in str(exc.orig)


def retrying(work: Callable[..., T], *args: Any) -> T:
    """Run one unit of work, again when it lost a lock race to another controller:
    several controllers apply the same reports, each in its own transaction."""
    for attempt in range(1, _TRIES + 1):
        try:
            return work(*args)
        except DBAPIError as exc:
            if attempt == _TRIES or not _lost_race(exc):
                raise
            LOG.info("%s lost a lock race (attempt %d); retrying", work.__name__, attempt)
            time.sleep(random.uniform(0.01, 0.05) * attempt)
    raise AssertionError("unreachable")


class Controller:
    def __init__(
        self,
        db: Database,
        client_factory,  # noqa: ANN001 - Callable[[handler, on_connected], Client]
        max_attempts: int = 3,
        build_timeout: float = 300,
        resend_after: float = 15,
        task_timeout: float = 1800,
        poll_interval: float = 0.2,
        reconcile_interval: float = 2.0,
        image_store: Store | None = None,
    ) -> None:
        self.db = db
        # Where image data is: the controller deletes the images of shelves that are over.
        self.image_store = image_store
        self.name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.max_attempts = max_attempts
        self.build_timeout = dt.timedelta(seconds=build_timeout)
        self.resend_after = dt.timedelta(seconds=resend_after)
        self.task_timeout = dt.timedelta(seconds=task_timeout)
        self.poll_interval = poll_interval
        self.reconcile_interval = reconcile_interval
        self.client: Client = client_factory(self.handle, self.on_connected)
        self.reports: asyncio.Queue[tuple[Frame, Any]] = asyncio.Queue(maxsize=20000)
        self.wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # -- lifecycle --------------------------------------------------------------------

    async def run(self) -> None:
        self._tasks = [
            asyncio.create_task(self.client.run(), name="ssntp"),
            asyncio.create_task(self._dispatch_loop(), name="dispatch"),
            asyncio.create_task(self._report_loop(), name="reports"),
            asyncio.create_task(self._reconcile_loop(), name="reconcile"),
        ]
        if not self.db.is_sqlite:
            self._tasks.append(asyncio.create_task(self._listen_loop(), name="listen"))
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def stop(self) -> None:
        await self.client.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def on_connected(self, conn: Connection) -> None:
        LOG.info("controller %s connected to scheduler %s", self.name, conn.peer_uuid)
        self.wake.set()

    async def handle(self, conn: Connection, frame: Frame, message: Any) -> None:
        await self.reports.put((frame, message))

    # -- outbox -----------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.poll_interval)
            # On PostgreSQL every API transaction that writes a command wakes us: waiting
            # a moment gathers the commands of concurrent requests into one claim and one
            # done transaction instead of two each (bench/compute at 3,000 servers: the
            # controller's CPU per server fell by a third, for 50 ms more to ACTIVE).
            # On SQLite the poll itself gathers them.
            if not self.db.is_sqlite:
                await asyncio.sleep(GATHER)
            self.wake.clear()
            if not self.client.connected.is_set():
                continue
            try:
                rows = await asyncio.to_thread(retrying, self._claim, BATCH)
            except Exception:
                LOG.exception("claiming outbox rows failed")
                continue
            if not rows:
                continue
            sent: list[int] = []
            instances: list[str] = []
            try:
                for row_id, instance_id, command, payload in rows:
                    await self.client.send(Frame(Type.COMMAND, COMMANDS[command], payload))
                    sent.append(row_id)
                    instances.append(instance_id)
            except (ConnectionError, OSError):
                LOG.warning(
                    "scheduler connection lost with %d commands unsent", len(rows) - len(sent)
                )
            if sent:
                await asyncio.to_thread(retrying, self._done, sent, instances)
            if len(rows) == BATCH:
                self.wake.set()

    def _claim(self, limit: int) -> list[tuple[int, str, str, dict[str, Any]]]:
        now = utcnow()
        claimable = _CLAIMABLE if self.db.is_sqlite else _CLAIMABLE_LOCKED
        with self.db.session() as session:
            rows = prepared.run(session, claimable, {"expired": now - LEASE, "limit": limit}).rows
            prepared.run(
                session, _CLAIM, [{"row": row[0], "by": self.name, "at": now} for row in rows]
            )
        return [tuple(row) for row in rows]

    def _done(self, ids: list[int], instance_ids: list[str]) -> None:
        """Sent: drop the rows, and restart the instances' clocks for resending."""
        now = utcnow()
        with self.db.session() as session:
            # In key order, as every writer of these rows (PostgreSQL: no lock cycles).
            prepared.run(session, _SENT, [{"row": row_id} for row_id in sorted(ids)])
            prepared.run(
                session,
                _TOUCH,
                [{"instance": i, "updated_at": now} for i in sorted(set(instance_ids))],
            )

    async def _listen_loop(self) -> None:
        """PostgreSQL: wake the dispatcher the moment an API transaction commits."""
        import psycopg

        from ciaostack.core.controller.operations import NOTIFY_CHANNEL

        dsn = self.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    async for _ in conn.notifies():
                        self.wake.set()
            except (psycopg.Error, OSError) as exc:
                LOG.warning("LISTEN connection failed (%s); polling meanwhile", exc)
                await asyncio.sleep(1)

    # -- reports ----------------------------------------------------------------------

    async def _report_loop(self) -> None:
        while True:
            batch = [await self.reports.get()]
            while len(batch) < BATCH and not self.reports.empty():
                batch.append(self.reports.get_nowait())
            try:
                strays, wake = await asyncio.to_thread(retrying, self._apply, batch)
            except Exception:
                LOG.exception("applying %d reports failed", len(batch))
                continue
            for node_uuid, instance_id in strays:
                LOG.info(
                    "instance=%s runs on node=%s but is deleted here: deleting it",
                    instance_id,
                    node_uuid,
                )
                with contextlib.suppress(ConnectionError, OSError):
                    await self.client.send(
                        P.frame(
                            Type.COMMAND,
                            Command.DELETE,
                            P.InstanceCommand(
                                instance_uuid=instance_id, workload_agent_uuid=node_uuid
                            ),
                        )
                    )
            if wake:
                self.wake.set()

    def _apply(self, batch: list[tuple[Frame, Any]]) -> tuple[list[tuple[str, str]], bool]:
        strays: list[tuple[str, str]] = []
        wake = False
        with self.db.session() as session:
            reports.load_nodes(
                session, {m.node_uuid for f, m in batch if (f.type, f.operand) in _NODE_REPORTS}
            )
            # In order; consecutive STATS are applied together (see reports.stats).
            for is_stats, group in itertools.groupby(batch, key=_is_stats):
                if is_stats:
                    strays += reports.stats(session, [message for _, message in group])
                    continue
                for frame, message in group:
                    wake |= self._apply_report(session, frame, message)
                    # A report may queue a command (a resize that moved stops a copy).
                    wake |= any(isinstance(row, Outbox) for row in session.new)
                    session.flush()
        return strays, wake

    def _apply_report(self, session: Session, frame: Frame, message: Any) -> bool:
        """One report other than STATS; True when it queued a command to send."""
        key = (frame.type, frame.operand)
        if key == (Type.EVENT, Event.INSTANCE_DELETED):
            reports.instance_deleted(session, message)
        elif key == (Type.EVENT, Event.INSTANCE_STOPPED):
            reports.instance_stopped(session, message)
        elif key == (Type.EVENT, Event.NODE_CONNECTED):
            reports.node_connected(session, message)
        elif key == (Type.EVENT, Event.NODE_DISCONNECTED):
            reports.node_disconnected(session, message)
        elif frame.type == Type.EVENT and frame.operand in ACTION_EVENTS:
            ACTION_EVENTS[frame.operand](session, message)
        elif key == (Type.EVENT, Event.CONSOLE_OUTPUT):
            reports.console_reply(
                session, message.request_id, message.instance_uuid, output=message.output
            )
        elif key == (Type.ERROR, Error.CONSOLE_OUTPUT_FAILURE):
            reports.console_reply(
                session, message.request_id, message.instance_uuid, error=message.reason
            )
        elif key == (Type.ERROR, Error.RESIZE_FAILURE):
            reports.resize_failed(session, message)
        elif key == (Type.ERROR, Error.SNAPSHOT_FAILURE):
            reports.snapshot_failed(session, message)
        elif key == (Type.ERROR, Error.START_FAILURE):
            return reports.start_failed(session, message, self.max_attempts)
        elif frame.type == Type.ERROR and frame.operand in FAILURE_COMMAND:
            reports.instance_failure(session, message, FAILURE_COMMAND[frame.operand])
        elif frame.type == Type.STATUS and frame.operand in NODE_STATUS:
            if message.node_uuid:
                reports.node_status(session, message.node_uuid, NODE_STATUS[frame.operand])
        else:
            LOG.debug("controller ignores %s", frame.name)
        return False

    # -- reconciliation -------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reconcile_interval)
            try:
                if await asyncio.to_thread(retrying, self.reconcile):
                    self.wake.set()
            except Exception:
                LOG.exception("reconciliation failed")

    def reconcile(self) -> bool:
        """One pass; True when commands were queued."""
        now = utcnow()
        queued = False
        with self.db.session() as session:
            # Only instances whose last news is older than the resend delay: a busy
            # cloud with thousands building must not reread them all every pass.
            building = session.scalars(
                select(Instance).where(
                    Instance.vm_state == states.BUILDING,
                    Instance.deleted.is_(False),
                    Instance.id.not_in(select(Outbox.instance_id)),
                    or_(
                        Instance.updated_at < now - self.resend_after,
                        Instance.created_at < now - self.build_timeout,
                    ),
                )
            ).all()
            for instance in building:
                if now - instance.created_at > self.build_timeout:
                    LOG.warning("instance=%s timed out in BUILD", instance.id)
                    reports.set_error(session, instance, "Build timed out.")
                elif now - instance.updated_at > self.resend_after:
                    # A START or its report was lost: ask again (START is idempotent).
                    enqueue(
                        session,
                        instance.id,
                        "START",
                        instance.start_payload | {"attempt": instance.start_attempts},
                    )
                    instance.updated_at = now
                    queued = True
            queued |= self._resend_unshelves(session, now)
            queued |= self._finish_deletes(session, now)
            session.execute(
                delete(ConsoleReply).where(ConsoleReply.created_at < now - CONSOLE_REPLY_TTL)
            )
            discarded = self._discard_shelved_images(session)
        for location in discarded:
            with contextlib.suppress(OSError):
                self.image_store.delete(location)  # type: ignore[union-attr]
        return queued

    def _resend_unshelves(self, session: Session, now: dt.datetime) -> bool:
        """An unshelve whose START no node took (lost with a scheduler or its link):
        ask again, with the group rules as they are now. A START that did arrive is
        answered (a node reports the instance, or the scheduler refuses it), so one
        with no node after the resend delay is one that went missing."""
        lost = session.scalars(
            select(Instance).where(
                Instance.task_state == states.UNSHELVING,
                Instance.node_uuid.is_(None),
                Instance.shelved_image_id.is_not(None),
                Instance.deleted.is_(False),
                Instance.updated_at < now - self.resend_after,
                Instance.id.not_in(select(Outbox.instance_id)),
            )
        ).all()
        for instance in lost:
            LOG.info("instance=%s unshelve START sent again", instance.id)
            constraints = server_groups.constraints_now(session, instance)
            start = operations.unshelve_start(instance, constraints)
            enqueue(session, instance.id, "START", P.to_dict(start))
            instance.updated_at = now
        return bool(lost)

    def _discard_shelved_images(self, session: Session) -> list[str]:
        """The images of shelves that are over (the server runs again, or is deleted):
        their records go now, their data after the commit (returned)."""
        if self.image_store is None:
            return []
        done = session.scalars(
            select(Instance).where(
                Instance.shelved_image_id.is_not(None),
                or_(
                    Instance.deleted.is_(True),
                    and_(
                        Instance.vm_state.not_in([states.SHELVED, states.SHELVED_OFFLOADED]),
                        Instance.task_state.is_(None),
                    ),
                ),
            )
        ).all()
        locations: list[str] = []
        for candidate in done:
            # Read again, locked: a shelve may have started meanwhile (PostgreSQL).
            instance = session.get(
                Instance, candidate.id, with_for_update=True, populate_existing=True
            )
            if instance is None or not instance.shelved_image_id or not _shelve_over(instance):
                continue
            location = snapshots.discard_shelved(session, instance.shelved_image_id)
            if location is not None:
                locations.append(location)
            LOG.info("instance=%s shelved image=%s deleted", instance.id, instance.shelved_image_id)
            instance.shelved_image_id = None
        return locations

    def _finish_deletes(self, session: Session, now: dt.datetime) -> bool:
        queued = False
        connected = set(
            session.scalars(select(ComputeNode.uuid).where(ComputeNode.connected.is_(True)))
        )
        unconfirmed = session.scalars(
            select(Instance).where(
                Instance.deleted.is_(True),
                Instance.vm_state != states.DELETED,
                Instance.updated_at < now - self.resend_after,
                Instance.id.not_in(select(Outbox.instance_id)),
            )
        ).all()
        for instance in unconfirmed:
            if instance.node_uuid is None or instance.node_uuid not in connected:
                # Never placed, or its node is gone: if it comes back running it,
                # its STATS will show a deleted instance and we delete it there.
                instance.vm_state = states.DELETED
                instance.task_state = None
                continue
            enqueue(
                session,
                instance.id,
                "DELETE",
                P.to_dict(
                    P.InstanceCommand(
                        instance_uuid=instance.id, workload_agent_uuid=instance.node_uuid
                    )
                ),
            )
            instance.updated_at = now
            queued = True
        return queued


def _shelve_over(instance: Instance) -> bool:
    """The server runs again (or is gone): the image its shelve kept is not needed."""
    return instance.deleted or (
        instance.vm_state not in (states.SHELVED, states.SHELVED_OFFLOADED)
        and instance.task_state is None
    )


def client_factory(conf, node_uuid: uuid.UUID | None = None):  # noqa: ANN001, ANN201
    """Build the controller's SSNTP client from configuration."""
    from ciaostack.core.ssntp.transport import client_context

    ca = conf.pki_file("ssntp", "ca", "ca.pem")
    cert = conf.pki_file("controller", "cert", "controller.pem")

    def make(handler, on_connected) -> Client:  # noqa: ANN001
        return Client(
            node_uuid or uuid.uuid4(),
            Role.CONTROLLER,
            client_context(cert, ca),
            conf.get("ssntp", "host"),
            conf.get("ssntp", "port"),
            handler,
            on_connected=on_connected,
            hostname=socket.gethostname(),
        )

    return make
