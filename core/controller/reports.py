"""Turning launcher reports into datastore state.

Every function here is idempotent: several controllers receive the same
reports, and a report may arrive twice or late. Each returns the commands the
controller must send as a result (a retry START, a DELETE for an instance a
node runs but the datastore has deleted), already written to the outbox when
they must survive a controller crash.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import types
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, Update, bindparam, delete, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from ciaostack.core import errors, quota
from ciaostack.core.controller import migrations, operations, states
from ciaostack.core.controller.operations import (
    current_flavor,
    enqueue,
    excess,
    instance_command,
    set_flavor,
)
from ciaostack.core.db import prepared, rows
from ciaostack.core.db.models import (
    ComputeNode,
    ConsoleReply,
    Instance,
    InstanceAction,
    Outbox,
    utcnow,
)
from ciaostack.core.images import snapshots
from ciaostack.core.ssntp import payloads as P

LOG = logging.getLogger("ciaostack.controller")

# Reasons where another node may well succeed.
RETRYABLE = frozenset(
    {
        P.StartFailureReason.FULL_CN,
        P.StartFailureReason.NODE_MAINTENANCE,
        P.StartFailureReason.LAUNCH_FAILURE,
        P.StartFailureReason.NETWORK_FAILURE,
        P.StartFailureReason.NO_CN,
    }
)
NO_VALID_HOST = "No valid host was found. "
# Reasons for which a resize found no room: Nova's "no valid host" case.
NO_ROOM = frozenset(
    {
        P.NO_NODE,
        P.StartFailureReason.FULL_CN.value,
        P.StartFailureReason.FULL_CLOUD.value,
        P.StartFailureReason.NO_CN.value,
        P.StartFailureReason.NODE_MAINTENANCE.value,
    }
)


def fault(message: str, code: int = 500) -> dict[str, Any]:
    return {"code": code, "message": message, "details": "", "created": utcnow().isoformat()}


def set_error(session: Session, instance: Instance, message: str) -> None:
    """The instance keeps its quota (Nova's rule: until it is deleted), so that a
    reboot or rebuild can bring it back without asking for it again."""
    instance.vm_state = states.ERROR
    instance.task_state = None
    instance.fault = fault(message)


# Built once (each batch of reports runs it; building and keying a statement cost
# more than running it).
_NODES_BY_UUID = select(ComputeNode).where(ComputeNode.uuid.in_(bindparam("uuids", expanding=True)))


def load_nodes(session: Session, node_uuids: set[str]) -> None:
    """Read these nodes' rows in one query, for the events of a batch to find them in
    the session (1,000 nodes connecting at once: one query per event adds up)."""
    if node_uuids:
        # Held in the session's info: its identity map keeps unchanged objects only
        # while something else refers to them.
        session.info["nodes"] = session.scalars(_NODES_BY_UUID, {"uuids": list(node_uuids)}).all()


def _node(session: Session, node_uuid: str) -> ComputeNode:
    node = session.get(ComputeNode, node_uuid)
    if node is None:
        node = ComputeNode(uuid=node_uuid)
        session.add(node)
    return node


def node_connected(session: Session, event: P.NodeEvent) -> None:
    node = _node(session, event.node_uuid)
    node.connected = True
    node.hostname = event.hostname or node.hostname
    node.node_type = event.node_type.value
    session.execute(
        update(Instance)
        .where(Instance.node_uuid == event.node_uuid, Instance.node_lost.is_(True))
        .values(node_lost=False)
    )


def node_disconnected(session: Session, event: P.NodeEvent) -> None:
    node = _node(session, event.node_uuid)
    node.connected = False
    session.execute(
        update(Instance)
        .where(Instance.node_uuid == event.node_uuid, Instance.deleted.is_(False))
        .values(node_lost=True)
    )


def node_status(session: Session, node_uuid: str, status: str) -> None:
    _node(session, node_uuid).status = status


# Tasks a running instance finishes (the launcher reports the new state once it is reached).
_ENDED_BY_RUNNING = frozenset(
    {
        states.REBOOTING,
        states.REBOOTING_HARD,
        states.POWERING_ON,
        states.SPAWNING,
        states.UNPAUSING,
        states.RESUMING,
        states.UNSHELVING,
    }
)
# Tasks that leave an instance in the node's state, and the state each settles in.
_SETTLED_AS = {
    (P.InstanceState.PAUSED, states.PAUSING): states.PAUSED,
    (P.InstanceState.SUSPENDED, states.SUSPENDING): states.SUSPENDED,
}
_POWER = {
    P.InstanceState.RUNNING: states.Power.RUNNING,
    P.InstanceState.STOPPED: states.Power.SHUTDOWN,
    P.InstanceState.EXITED: states.Power.SHUTDOWN,
    P.InstanceState.PAUSED: states.Power.PAUSED,
    P.InstanceState.SUSPENDED: states.Power.SUSPENDED,
    P.InstanceState.ERROR: states.Power.CRASHED,
}


def _settle(instance: Instance | types.SimpleNamespace, stat: P.InstanceStat) -> None:
    """Move an instance to what its node reports, finishing the task in flight.

    A report never ends a task it cannot be the result of: a STATS sent before
    a pause reached the node says "running", which ends no pausing; and the tasks
    only their event ends (states.ENDED_BY_EVENT_ONLY) are left to it.
    """
    state, task = stat.state, instance.task_state
    if state in _POWER:
        instance.power_state = _POWER[state]
    if state is P.InstanceState.RUNNING and instance.launched_at is None:
        instance.launched_at = utcnow()
    if task in states.ENDED_BY_EVENT_ONLY:
        return
    settled = _SETTLED_AS.get((state, task))
    if state is P.InstanceState.RUNNING:
        if instance.vm_state in (states.BUILDING, states.STOPPED) or task in _ENDED_BY_RUNNING:
            settled = states.ACTIVE
    elif state in (P.InstanceState.STOPPED, P.InstanceState.EXITED) and (
        instance.vm_state == states.ACTIVE or task == states.POWERING_OFF
    ):
        settled = states.STOPPED
    if settled is not None:
        instance.vm_state = settled
        instance.task_state = None


def stats(session: Session, batch: Sequence[P.Stats]) -> list[tuple[str, str]]:
    """Apply nodes' STATS, in order; returns (node, instance) pairs a node runs that
    must be deleted there.

    The reports are read and written together, without the ORM: one query for the
    instances they list, one for their nodes, and for each table the changed columns
    only, one executemany per stretch of rows (in key order) that change the same ones.
    1,000 nodes report every few seconds and SQLite's writers wait while this
    transaction runs; loading each instance as an object and flushing it cost several
    times as much. A run of reports ends where an instance comes up again (a node that
    reported twice), so each instance is read once per run."""
    strays: list[tuple[str, str]] = []
    run: list[P.Stats] = []
    seen: set[str] = set()
    for report in batch:
        ids = {stat.instance_uuid for stat in report.instances}
        if run and not seen.isdisjoint(ids):
            strays += _stats_run(session, run)
            run, seen = [], set()
        run.append(report)
        seen |= ids
    if run:
        strays += _stats_run(session, run)
    return strays


# What a report may change of each instance it lists (it reads these and _REPORTED's).
_WRITTEN = (
    "node_uuid",
    "host",
    "node_lost",
    "availability_zone",
    "vm_state",
    "task_state",
    "power_state",
    "launched_at",
)
_REPORTED = (
    Instance.id,
    Instance.deleted,
    Instance.new_flavor,
    Instance.resize_source_node,
) + tuple(getattr(Instance, field) for field in _WRITTEN)
# What a report says of its node: its figures, and these.
_NODE_FIGURES = (
    "mem_total_mb",
    "mem_available_mb",
    "disk_total_mb",
    "disk_available_mb",
    "vcpus_total",
    "vcpus_available",
    "load",
)
_NODE_FIELDS = ("connected", "status", "hostname", "availability_zone", *_NODE_FIGURES)
# A node not in the datastore yet: not connected until its report is applied.
_NEW_NODE = {"connected": False, "hostname": "", "availability_zone": "nova"}


@functools.cache
def _reported(size: int) -> Select[Any]:
    return select(*_REPORTED).where(Instance.id.in_(prepared.in_list(size)))


@functools.cache
def _reporting_nodes(size: int) -> Select[Any]:
    columns = (getattr(ComputeNode, field) for field in _NODE_FIELDS)
    return select(ComputeNode.uuid, *columns).where(ComputeNode.uuid.in_(prepared.in_list(size)))


_UPDATE_INSTANCE = update(Instance).where(Instance.id == bindparam("instance_id"))
_UPDATE_NODE = update(ComputeNode).where(ComputeNode.uuid == bindparam("node_uuid"))
_NODE_CONNECTED = select(ComputeNode.connected).where(ComputeNode.uuid == bindparam("node_uuid"))
_START_PAYLOAD = select(Instance.start_payload).where(Instance.id == bindparam("instance_id"))


def _stats_run(session: Session, run: list[P.Stats]) -> list[tuple[str, str]]:
    # Written now: what the session's objects still hold of them is read afresh below.
    session.flush()
    ids = [stat.instance_uuid for report in run for stat in report.instances]
    read = {row.id: row for row in prepared.run_in(session, _reported, ids)}
    instances = {key: types.SimpleNamespace(**row._asdict()) for key, row in read.items()}
    node_ids = list(dict.fromkeys(report.node_uuid for report in run))
    known = {row.uuid: row for row in prepared.run_in(session, _reporting_nodes, node_ids)}
    nodes = {
        uuid: types.SimpleNamespace(**(known[uuid]._asdict() if uuid in known else _NEW_NODE))
        for uuid in node_ids
    }
    strays: list[tuple[str, str]] = []
    for report in run:
        strays += [(report.node_uuid, i) for i in _apply_stats(session, report, instances, nodes)]
    written = _update(session, _UPDATE_INSTANCE, "instance_id", read, instances, _WRITTEN)
    _expire(session, Instance, written)
    written = _update(session, _UPDATE_NODE, "node_uuid", known, nodes, _NODE_FIELDS)
    _expire(session, ComputeNode, written)
    new = [
        {"uuid": uuid, **{f: getattr(nodes[uuid], f) for f in _NODE_FIELDS}}
        for uuid in sorted(nodes)
        if uuid not in known
    ]
    prepared.run(session, rows.insert_into(ComputeNode.__table__), new)
    return strays


def _update(
    session: Session,
    statement: Update,
    key: str,
    read: dict[str, Any],
    now: dict[str, types.SimpleNamespace],
    fields: tuple[str, ...],
) -> list[str]:
    """Write the columns each row changed, and only those (on PostgreSQL another
    transaction may have changed the others since they were read); returns the keys of
    the rows written.

    Rows are written in key order, as the ORM's flush does, one executemany for each
    stretch of rows that change the same columns: controllers applying the same
    reports then lock rows in the same order, and none waits on another that waits on
    it (a deadlock, which PostgreSQL breaks after a second by failing one of them)."""
    written: list[str] = []
    stretch: list[dict[str, Any]] = []
    columns: tuple[str, ...] = ()
    for ident in sorted(read):
        before, after = read[ident], now[ident]
        changed = tuple(f for f in fields if getattr(after, f) != getattr(before, f))
        if not changed:
            continue
        if changed != columns:
            prepared.run(session, statement, stretch)
            stretch, columns = [], changed
        stretch.append({key: ident, **{f: getattr(after, f) for f in changed}})
        written.append(ident)
    prepared.run(session, statement, stretch)
    return written


def _expire(session: Session, mapped: type[Instance] | type[ComputeNode], keys: list[str]) -> None:
    """Objects of these rows that the session holds (for other reports of the batch)
    read them again when next used."""
    for key in keys:
        held = session.identity_map.get(identity_key(mapped, key))
        if held is not None:
            session.expire(held)


def _apply_stats(
    session: Session,
    report: P.Stats,
    instances: dict[str, types.SimpleNamespace],
    nodes: dict[str, types.SimpleNamespace],
) -> list[str]:
    node = nodes[report.node_uuid]
    node.connected = True
    node.status = report.status.value
    node.hostname = report.hostname or node.hostname
    node.availability_zone = report.availability_zone or node.availability_zone
    for field in _NODE_FIGURES:
        setattr(node, field, getattr(report, field))
    strays: list[str] = []
    for stat in report.instances:
        instance = instances.get(stat.instance_uuid)
        if instance is not None and not instance.deleted and _moving_copy(instance, report):
            continue
        if (
            instance is None
            or instance.deleted
            or _runs_elsewhere(session, instance, report, nodes)
            or (instance.vm_state == states.SHELVED_OFFLOADED and not instance.task_state)
        ):
            strays.append(stat.instance_uuid)
            continue
        if instance.vm_state == states.ERROR and instance.node_uuid not in (None, report.node_uuid):
            continue
        instance.node_uuid = report.node_uuid
        instance.host = report.hostname or instance.host
        instance.node_lost = False
        # As Nova, a server is in its node's zone once placed (asked for one or not);
        # one unshelved without a zone of its own is in its new node's.
        if instance.task_state == states.UNSHELVING and not _zone_asked(
            prepared.run(session, _START_PAYLOAD, {"instance_id": instance.id}).scalar()
        ):
            instance.availability_zone = report.availability_zone or instance.availability_zone
        instance.availability_zone = instance.availability_zone or report.availability_zone
        if instance.vm_state == states.ERROR and instance.task_state is None:
            continue  # only a reboot or stop asked of it may bring it back
        _settle(instance, stat)
    return strays


def _moving_copy(instance: types.SimpleNamespace, report: P.Stats) -> bool:
    """A copy that a resize which moves the instance keeps on another node than the
    instance's: the one being started on the node it goes to, or the one left on the
    node it came from. Neither says how the instance is, and neither is a stray."""
    if report.node_uuid == instance.node_uuid:
        return False
    return instance.new_flavor is not None or report.node_uuid == instance.resize_source_node


def _runs_elsewhere(
    session: Session,
    instance: types.SimpleNamespace,
    report: P.Stats,
    nodes: dict[str, types.SimpleNamespace],
) -> bool:
    """A second copy: the instance is known to run on another node that is still up."""
    if instance.node_uuid in (None, report.node_uuid):
        return False
    other = nodes.get(instance.node_uuid)  # as the reports before this one left it
    if other is not None:
        return bool(other.connected)
    return bool(prepared.run(session, _NODE_CONNECTED, {"node_uuid": instance.node_uuid}).scalar())


def _elsewhere(instance: Instance, event: P.InstanceEvent) -> bool:
    """An event from a node that does not hold the instance (the copy a resize left)."""
    return bool(event.node_uuid and instance.node_uuid and event.node_uuid != instance.node_uuid)


def instance_stopped(session: Session, event: P.InstanceEvent) -> None:
    instance = session.get(Instance, event.instance_uuid)
    if instance is not None and not instance.deleted and not _elsewhere(instance, event):
        _settle(instance, P.InstanceStat(instance_uuid=instance.id, state=P.InstanceState.STOPPED))


def instance_deleted(session: Session, event: P.InstanceEvent) -> None:
    instance = session.get(Instance, event.instance_uuid)
    if instance is None:
        return
    if _left_copy_gone(instance, event.node_uuid):
        left = _locked(session, instance.id)
        if left is not None and _left_copy_gone(left, event.node_uuid):
            left.resize_source_node = None
        return
    if _elsewhere(instance, event):
        return
    if not instance.deleted and instance.task_state == states.SHELVING_OFFLOADING:
        offloaded = _live(session, instance.id, states.COMMAND_TASKS["DELETE"])
        if offloaded is not None:
            _offloaded(offloaded)
        return
    if instance.deleted:
        instance.vm_state = states.DELETED
        instance.task_state = None
        instance.power_state = states.Power.NOSTATE
    elif instance.resize_source_node and instance.task_state == states.RESIZE_REVERTING:
        # Locked and read again: every controller applies this event.
        reverting = _live(session, instance.id, states.COMMAND_TASKS["REVERT_RESIZE"])
        if reverting is not None and reverting.resize_source_node:
            _moved_back(session, reverting)


def _place_on(session: Session, instance: Instance, node_uuid: str) -> None:
    """The instance is on `node_uuid` now (a move, or its revert): its host, and its zone
    unless it asked for one (it could only move within that)."""
    instance.node_uuid = node_uuid
    node = session.get(ComputeNode, node_uuid)
    if node is None:
        return
    instance.host = node.hostname or instance.host
    if not _zone_asked(instance.start_payload):
        instance.availability_zone = node.availability_zone or instance.availability_zone


def _zone_asked(start_payload: dict[str, Any] | None) -> bool:
    """Whether the server (its START payload) was created in a zone it asked for (and
    so stays in)."""
    return bool((start_payload or {}).get("requirements", {}).get("availability_zone"))


def _offloaded(instance: Instance) -> None:
    """A shelved instance's copy is gone from its node: it holds no node until unshelved."""
    instance.vm_state = states.SHELVED_OFFLOADED
    instance.task_state = None
    instance.node_uuid = instance.host = None
    instance.power_state = states.Power.SHUTDOWN


def _left_copy_gone(instance: Instance, node_uuid: str) -> bool:
    """The node a confirmed move left has deleted (or lost) the copy it kept."""
    return bool(
        node_uuid
        and node_uuid == instance.resize_source_node
        and instance.vm_state != states.RESIZED
        and not instance.deleted
    )


def _moved_back(session: Session, instance: Instance) -> None:
    """A revert of a resize that moved the instance: its new copy is gone, so it is back
    on the node it left, with its old flavor, running again if it ran."""
    running = instance.power_state == states.Power.RUNNING
    source, instance.resize_source_node = instance.resize_source_node, None
    _place_on(session, instance, source)
    instance.power_state = states.Power.SHUTDOWN  # its copy there was stopped
    _reverted(session, instance)
    if running:
        instance.task_state = states.POWERING_ON
        enqueue(session, instance.id, "RESTART", instance_command(instance))


def start_failed(session: Session, failure: P.StartFailure, max_attempts: int) -> bool:
    """Retry on another node when it makes sense; True when a retry was queued.

    Only the controller whose conditional UPDATE moves `start_attempts` from
    the failed attempt's number queues the retry, so controllers that all
    received the same failure cannot start the instance twice.
    """
    instance = session.get(Instance, failure.instance_uuid)
    if instance is not None and instance.task_state == states.UNSHELVING:
        unshelving = _live(session, instance.id, states.COMMAND_TASKS["START"])
        if unshelving is not None and failure.attempt == unshelving.start_attempts:
            # Still offloaded: no node holds it (a node that reported it took it first).
            unshelving.node_uuid = unshelving.host = None
            unshelving.task_state = None
            detail = failure.message or failure.reason
            unshelving.fault = fault(
                NO_VALID_HOST + detail if failure.reason in NO_ROOM else detail
            )
        return False
    if instance is not None and instance.new_flavor is not None and failure.node_uuid:
        moving = migrations.in_flight(session, instance)
        if failure.node_uuid != instance.node_uuid and moving and moving.id == failure.attempt:
            # The node a resize moved the instance to could not start it: it stays.
            resize_failed(session, P.InstanceFailure(instance.id, failure.reason, failure.message))
        return False
    if instance is None or instance.deleted or instance.vm_state != states.BUILDING:
        return False
    if failure.attempt != instance.start_attempts:
        return False  # a stale report about an attempt already superseded
    if failure.reason in RETRYABLE and failure.attempt < max_attempts:
        excluded = list(
            dict.fromkeys(
                [*instance.excluded_nodes, failure.node_uuid]
                if failure.node_uuid
                else instance.excluded_nodes
            )
        )
        won = session.execute(
            update(Instance)
            .where(Instance.id == instance.id, Instance.start_attempts == failure.attempt)
            .values(
                start_attempts=failure.attempt + 1,
                excluded_nodes=excluded,
                node_uuid=None,
                host=None,
            )
        ).rowcount
        if won:
            session.refresh(instance)
            start = P.from_dict(P.Start, instance.start_payload)
            retry = dataclasses.replace(
                start,
                attempt=failure.attempt + 1,
                requirements=dataclasses.replace(start.requirements, excluded_nodes=excluded),
            )
            enqueue(session, instance.id, "START", P.to_dict(retry))
        return bool(won)
    message = failure.message or failure.reason.value
    if failure.reason is P.StartFailureReason.FULL_CLOUD or failure.attempt >= max_attempts:
        message = NO_VALID_HOST + message
    set_error(session, instance, message)
    return False


def _locked(session: Session, instance_uuid: str) -> Instance | None:
    """The instance row, locked until this transaction ends and read afresh.

    Every controller applies the same reports: on PostgreSQL (READ COMMITTED) two of
    them could both see a task still in flight and both release its quota. The lock
    makes the second wait for the first's commit and then see the task gone. (SQLite
    serialises writers already: BEGIN IMMEDIATE.)"""
    return session.get(Instance, instance_uuid, with_for_update=True, populate_existing=True)


def instance_failure(session: Session, failure: P.InstanceFailure, command: str) -> None:
    """A command refused by a node (or by the scheduler, reason `no_node`): clear the
    task it answers with a fault, or finish a delete. A rebuild that failed on the node
    leaves no workload behind, so the instance is in error. A failure of another task
    than the one in flight (late, or repeated) changes nothing."""
    instance = _locked(session, failure.instance_uuid)
    if instance is None:
        return
    if command == "DELETE" and not instance.deleted:
        # Only a move or a shelve deletes a copy of a live instance: the node a revert
        # leaves, the one a confirmed move left, or the node of a shelved instance.
        if instance.task_state == states.SHELVING_OFFLOADING:
            if failure.reason == P.NO_NODE:
                _offloaded(instance)  # its node is gone, and its copy with it
            else:
                instance.task_state = None
                instance.fault = fault(f"Offload failed: {failure.message or failure.reason}")
        elif instance.task_state == states.RESIZE_REVERTING and instance.resize_source_node:
            if failure.reason == P.NO_NODE:
                # The node it moved to is gone, and its copy with it: back it goes.
                _moved_back(session, instance)
            else:
                instance.task_state = None
                instance.fault = fault(f"REVERT_RESIZE failed: {failure.message or failure.reason}")
                migrations.advance(session, instance, migrations.ERROR)
        elif failure.reason == P.NO_NODE and _left_copy_gone(
            instance, instance.resize_source_node or ""
        ):
            instance.resize_source_node = None  # the node left is gone; its copy, a stray
        return
    if command == "DELETE" or instance.deleted:
        if instance.deleted and failure.reason == P.NO_NODE:
            instance.vm_state = states.DELETED
            instance.task_state = None
        return
    if not states.failure_ends(command, instance.task_state):
        return
    if command == "REVERT_RESIZE" and not _answers_this_resize(session, instance, failure.attempt):
        return
    message = f"{command} failed: {failure.message or failure.reason}"
    if command == "REBUILD" and failure.reason != P.NO_NODE:
        set_error(session, instance, message)
        return
    instance.task_state = None
    instance.fault = fault(message)


# -- server actions' reports ----------------------------------------------------------------


def _live(session: Session, instance_uuid: str, tasks: frozenset[str]) -> Instance | None:
    """The instance, locked, if it is still in one of `tasks` (reports may repeat, come
    late, or reach several controllers at once)."""
    instance = _locked(session, instance_uuid)
    if instance is None or instance.deleted or instance.task_state not in tasks:
        return None
    return instance


def instance_rebuilt(session: Session, event: P.InstanceEvent) -> None:
    instance = _live(session, event.instance_uuid, states.COMMAND_TASKS["REBUILD"])
    if instance is not None:
        instance.task_state = None
        if instance.vm_state == states.ERROR:
            # Built afresh: a server rebuilt from error runs (a stopped one stays stopped).
            instance.vm_state = states.ACTIVE
            instance.power_state = states.Power.RUNNING


def _answers_this_resize(session: Session, instance: Instance, attempt: int) -> bool:
    """Whether a node's answer numbered `attempt` is for the resize in flight, not a
    late one for an earlier resize that timed out (0: a node that predates numbers)."""
    if not attempt:
        return True
    current = migrations.in_flight(session, instance)
    return current is not None and current.id == attempt


def instance_resized(session: Session, event: P.InstanceEvent) -> None:
    """The node has the new flavor: the server waits for its owner's verdict, keeping
    the old flavor for a revert."""
    instance = _live(session, event.instance_uuid, states.COMMAND_TASKS["RESIZE"])
    if instance is None or instance.new_flavor is None:
        return
    if not _answers_this_resize(session, instance, event.attempt):
        LOG.info(
            "instance=%s late InstanceResized of resize %d ignored", instance.id, event.attempt
        )
        return
    if _elsewhere(instance, event):
        _moved(session, instance, event.node_uuid)
    old = current_flavor(session, instance)
    set_flavor(session, instance, instance.new_flavor)
    instance.old_flavor, instance.new_flavor = old, None
    instance.vm_state = states.RESIZED
    instance.task_state = None
    migrations.advance(session, instance, migrations.FINISHED)


def _moved(session: Session, instance: Instance, node_uuid: str) -> None:
    """The instance now runs on `node_uuid`; the copy on the node it left is stopped
    (kept for a revert), or, for a server that was stopped, the new copy is."""
    was_running = instance.power_state == states.Power.RUNNING
    instance.resize_source_node = instance.node_uuid
    _place_on(session, instance, node_uuid)
    stopped = instance.resize_source_node if was_running else node_uuid
    enqueue(session, instance.id, "STOP", instance_command(instance, workload_agent_uuid=stopped))


def resize_failed(session: Session, failure: P.InstanceFailure) -> None:
    """No room on the node (or it refused): back to the old flavor as it was, with the
    quota reserved for the new one freed and a fault for the instance action."""
    instance = _live(session, failure.instance_uuid, states.COMMAND_TASKS["RESIZE"])
    if instance is None or instance.new_flavor is None:
        return
    if not _answers_this_resize(session, instance, failure.attempt):
        return
    wanted, instance.new_flavor = instance.new_flavor, None
    migrations.advance(session, instance, migrations.ERROR)
    quota.release(session, instance.project_id, excess(wanted, current_flavor(session, instance)))
    instance.task_state = None
    detail = failure.message or failure.reason
    instance.fault = fault(NO_VALID_HOST + detail if failure.reason in NO_ROOM else detail)


def resize_reverted(session: Session, event: P.InstanceEvent) -> None:
    instance = _live(session, event.instance_uuid, states.COMMAND_TASKS["REVERT_RESIZE"])
    if instance is None or instance.old_flavor is None:
        return
    if _answers_this_resize(session, instance, event.attempt):
        _reverted(session, instance)


def _reverted(session: Session, instance: Instance) -> None:
    """Back to the old flavor; the quota the new one held beyond it is freed."""
    if instance.old_flavor is None:
        return
    resized = current_flavor(session, instance)
    set_flavor(session, instance, instance.old_flavor)
    instance.old_flavor = None
    quota.release(session, instance.project_id, excess(resized, current_flavor(session, instance)))
    instance.vm_state = states.at_rest(instance.power_state)
    instance.task_state = None
    migrations.advance(session, instance, migrations.REVERTED)


def snapshot_uploaded(session: Session, event: P.SnapshotEvent) -> None:
    instance = _live(session, event.instance_uuid, states.COMMAND_TASKS["SNAPSHOT"])
    if instance is None:
        return
    if instance.task_state != states.SHELVING_IMAGE_PENDING_UPLOAD:
        instance.task_state = None
    elif event.image_uuid == instance.shelved_image_id:
        # Shelved: its disk is kept; it leaves its node at once (Nova's default
        # shelved_offload_time of 0).
        instance.vm_state = states.SHELVED
        operations.offload_instance(session, instance)
    # (else: a late event of an earlier snapshot, which ends no shelve)


def snapshot_failed(session: Session, failure: P.SnapshotFailure) -> None:
    """As Nova: the image that will never get its data goes (if it is this instance's
    snapshot), the instance gets a fault."""
    instance = _locked(session, failure.instance_uuid)
    if instance is None:
        return
    snapshots.discard_unfinished(session, failure.image_uuid, instance.id, instance.project_id)
    if not instance.deleted and instance.task_state in states.COMMAND_TASKS["SNAPSHOT"]:
        instance.task_state = None
        instance.fault = fault(f"SNAPSHOT failed: {failure.message or failure.reason}")


# The command each task waits on, for a task whose answer never comes.
_TASK_COMMAND = {task: command for command, tasks in states.COMMAND_TASKS.items() for task in tasks}
TIMED_OUT = "timeout"


def expire_tasks(session: Session, started_before: dt.datetime) -> None:
    """Fail the tasks whose action started before `started_before` and that no node
    answered (the node died mid-task, or the command or its answer was lost), through
    the same path as the node's own failure: quota, flavors and snapshot images end as
    they would then, and a late answer finds no task and changes nothing. The clock is
    the action's start: STATS move `updated_at` all the time."""
    waiting = session.execute(
        select(Instance.id, Instance.task_state).where(
            Instance.deleted.is_(False), Instance.task_state.in_(list(_TASK_COMMAND))
        )
    ).all()
    for instance_id, task in waiting:
        started = session.scalar(
            select(func.max(InstanceAction.start_time)).where(
                InstanceAction.instance_id == instance_id
            )
        )
        if started is None or started >= started_before:
            continue
        LOG.warning("instance=%s task=%s timed out", instance_id, task)
        _fail_task(session, instance_id, task, TIMED_OUT, "the node did not answer in time")


def _fail_task(session: Session, instance_id: str, task: str, reason: str, message: str) -> None:
    """End `task` as its node's failure would have."""
    command = _TASK_COMMAND[task]
    failure = P.InstanceFailure(instance_uuid=instance_id, reason=reason, message=message)
    if command == "RESIZE":
        resize_failed(session, failure)
    elif command == "SNAPSHOT":
        instance = session.get(Instance, instance_id)
        images = snapshots.unfinished(session, instance_id, instance.project_id) or [""]
        for image_id in images:
            snapshot_failed(session, P.SnapshotFailure(instance_id, image_id, reason, message))
    else:
        instance_failure(session, failure, command)


RESET = "reset"
# States whose instance holds what only its own action may settle: a resize waiting
# for its verdict (two flavors, maybe two copies), a shelved disk kept as an image
# (the image would be deleted as no longer needed).
_NOT_RESETTABLE = frozenset({states.RESIZED, states.SHELVED, states.SHELVED_OFFLOADED})


def reset_state(session: Session, instance: Instance, vm_state: str) -> None:
    """os-resetState: an administrator sets the state the cloud got wrong. The task in
    flight ends as its node's failure would end it (quota, flavors, snapshot images
    settle), so that a late answer to it changes nothing; the node is not asked
    anything, as in Nova."""
    if instance.vm_state in _NOT_RESETTABLE:
        resized = instance.vm_state == states.RESIZED
        action = "confirm or revert its resize" if resized else "unshelve or delete it"
        raise errors.Conflict(
            f"Cannot reset the state of instance {instance.id} while it is in vm_state "
            f"{instance.vm_state}: {action} instead"
        )
    task = instance.task_state
    if task in _TASK_COMMAND:
        # Its command, if not sent yet, is not sent at all (a RESIZE would resize to a
        # flavor the failure dropped); and as in Nova the reset leaves no fault of its own.
        session.execute(
            delete(Outbox).where(
                Outbox.instance_id == instance.id,
                Outbox.command == _TASK_COMMAND[task],
                Outbox.claimed_by.is_(None),
            )
        )
        fault_before = instance.fault
        _fail_task(session, instance.id, task, RESET, "reset by an administrator")
        instance.fault = fault_before
    instance.vm_state = vm_state
    instance.task_state = None


def console_reply(session: Session, request_id: str, instance_id: str, **reply: str) -> None:
    """Keep a node's answer for the API request waiting on it (idempotent: every
    controller receives it)."""
    session.merge(ConsoleReply(request_id=request_id, instance_id=instance_id, **reply))
