"""Turning launcher reports into datastore state.

Every function here is idempotent: several controllers receive the same
reports, and a report may arrive twice or late. Each returns the commands the
controller must send as a result (a retry START, a DELETE for an instance a
node runs but the datastore has deleted), already written to the outbox when
they must survive a controller crash.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ciaostack.core import quota
from ciaostack.core.controller import states
from ciaostack.core.controller.operations import counts_toward_quota, enqueue, quota_deltas
from ciaostack.core.db.models import ComputeNode, Instance, utcnow
from ciaostack.core.ssntp import payloads as P

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


def fault(message: str, code: int = 500) -> dict[str, Any]:
    return {"code": code, "message": message, "details": "", "created": utcnow().isoformat()}


def set_error(session: Session, instance: Instance, message: str) -> None:
    if counts_toward_quota(instance):
        quota.release(session, instance.project_id, quota_deltas(instance))
    instance.vm_state = states.ERROR
    instance.task_state = None
    instance.fault = fault(message)


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


def _settle(instance: Instance, stat: P.InstanceStat) -> None:
    """Move an instance to what its node reports, finishing the task in flight."""
    if stat.state is P.InstanceState.RUNNING:
        if instance.vm_state in (states.BUILDING, states.STOPPED) or instance.task_state in (
            states.REBOOTING,
            states.REBOOTING_HARD,
            states.POWERING_ON,
            states.SPAWNING,
        ):
            instance.vm_state = states.ACTIVE
            instance.task_state = None
        if instance.launched_at is None:
            instance.launched_at = utcnow()
        instance.power_state = states.RUNNING
    elif stat.state in (P.InstanceState.STOPPED, P.InstanceState.EXITED):
        if instance.vm_state == states.ACTIVE or instance.task_state == states.POWERING_OFF:
            instance.vm_state = states.STOPPED
            instance.task_state = None
        instance.power_state = states.SHUTDOWN
    elif stat.state is P.InstanceState.PAUSED:
        instance.power_state = states.PAUSED
    elif stat.state is P.InstanceState.ERROR:
        instance.power_state = states.CRASHED


def stats(session: Session, report: P.Stats) -> list[str]:
    """Apply a node's STATS; returns ids the node runs that must be deleted there."""
    node = _node(session, report.node_uuid)
    node.connected = True
    node.status = report.status.value
    node.hostname = report.hostname or node.hostname
    for field in (
        "mem_total_mb",
        "mem_available_mb",
        "disk_total_mb",
        "disk_available_mb",
        "vcpus_total",
        "vcpus_available",
        "load",
    ):
        setattr(node, field, getattr(report, field))
    ids = [s.instance_uuid for s in report.instances]
    rows = (
        {i.id: i for i in session.scalars(select(Instance).where(Instance.id.in_(ids)))}
        if ids
        else {}
    )
    strays: list[str] = []
    for stat in report.instances:
        instance = rows.get(stat.instance_uuid)
        if instance is None or instance.deleted or _runs_elsewhere(session, instance, report):
            strays.append(stat.instance_uuid)
            continue
        if instance.vm_state == states.ERROR and instance.node_uuid not in (None, report.node_uuid):
            continue
        instance.node_uuid = report.node_uuid
        instance.host = report.hostname or instance.host
        instance.node_lost = False
        instance.usage = {
            "memory_mb": stat.memory_usage_mb,
            "disk_mb": stat.disk_usage_mb,
            "cpu_percent": stat.cpu_usage,
        }
        if instance.vm_state == states.ERROR:
            continue
        _settle(instance, stat)
    return strays


def _runs_elsewhere(session: Session, instance: Instance, report: P.Stats) -> bool:
    """A second copy: the instance is known to run on another node that is still up."""
    if instance.node_uuid in (None, report.node_uuid):
        return False
    other = session.get(ComputeNode, instance.node_uuid)
    return other is not None and other.connected


def instance_stopped(session: Session, event: P.InstanceEvent) -> None:
    instance = session.get(Instance, event.instance_uuid)
    if instance is not None and not instance.deleted:
        _settle(instance, P.InstanceStat(instance_uuid=instance.id, state=P.InstanceState.STOPPED))


def instance_deleted(session: Session, event: P.InstanceEvent) -> None:
    instance = session.get(Instance, event.instance_uuid)
    if instance is not None and instance.deleted:
        instance.vm_state = states.DELETED
        instance.task_state = None
        instance.power_state = states.NOSTATE


def start_failed(session: Session, failure: P.StartFailure, max_attempts: int) -> bool:
    """Retry on another node when it makes sense; True when a retry was queued.

    Only the controller whose conditional UPDATE moves `start_attempts` from
    the failed attempt's number queues the retry, so controllers that all
    received the same failure cannot start the instance twice.
    """
    instance = session.get(Instance, failure.instance_uuid)
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


def instance_failure(session: Session, failure: P.InstanceFailure, command: str) -> None:
    """STOP/RESTART/DELETE refused by a node: clear the task, or finish a delete."""
    instance = session.get(Instance, failure.instance_uuid)
    if instance is None:
        return
    if command == "DELETE" or instance.deleted:
        if instance.deleted and failure.reason == "no_node":
            instance.vm_state = states.DELETED
            instance.task_state = None
        return
    instance.task_state = None
    instance.fault = fault(f"{command} failed: {failure.message or failure.reason}")
