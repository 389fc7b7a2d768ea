"""Compute nodes as Nova's hypervisors and services: what the controller recorded from
the scheduler's node reports (core/controller/reports.py).

Nova numbered hypervisors and services before microversion 2.53 and uses uuids
since; a node's number here is the first 48 bits of its uuid, so it is stable,
needs no column, and orders nodes as their uuids do. A node in MAINTENANCE is a
disabled service; a disconnected node is down.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ciaostack.core.db.models import ComputeNode, Instance

COMPUTE = "compute"  # ComputeNode.node_type of nodes that run instances
# The zone of a node configured in none, and the only one while no node has reported
# (clients such as the Cinder CSI driver ask for it by name).
DEFAULT_ZONE = "nova"
MAINTENANCE = "MAINTENANCE"
_ID_HEX = 12  # hex digits of the uuid that make a node's number


def number(node_uuid: str) -> int:
    return int(uuid.UUID(node_uuid).hex[:_ID_HEX], 16)


def _uuid_prefix(node_number: int) -> str:
    digits = f"{node_number:0{_ID_HEX}x}"
    return f"{digits[:8]}-{digits[8:]}"


def disabled(node: ComputeNode) -> bool:
    return node.status == MAINTENANCE


def _compute_nodes() -> Select[tuple[ComputeNode]]:
    return select(ComputeNode).where(ComputeNode.node_type == COMPUTE)


def zones(session: Session) -> dict[str, bool]:
    """The zones compute nodes are in, each with whether it is available (as Nova: one
    of its nodes is enabled, that is not in maintenance); the default zone when no node
    has reported."""
    found: dict[str, bool] = {}
    rows = session.execute(
        select(ComputeNode.availability_zone, ComputeNode.status).where(
            ComputeNode.node_type == COMPUTE
        )
    )
    for zone, status in rows:
        found[zone] = found.get(zone, False) or status != MAINTENANCE
    return found or {DEFAULT_ZONE: True}


def list_nodes(
    session: Session,
    hostname_contains: str | None = None,
    limit: int | None = None,
    after_uuid: str | None = None,
) -> list[ComputeNode]:
    """Compute nodes by uuid; `hostname_contains` matches part of the hostname, as Nova's
    hypervisor search does."""
    stmt = _compute_nodes()
    if hostname_contains is not None:
        stmt = stmt.where(ComputeNode.hostname.contains(hostname_contains, autoescape=True))
    if after_uuid is not None:
        stmt = stmt.where(ComputeNode.uuid > after_uuid)
    stmt = stmt.order_by(ComputeNode.uuid)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def find(session: Session, ident: str, by_uuid: bool) -> ComputeNode | None:
    """The compute node with this uuid, or this number; None when there is none."""
    if by_uuid:
        return session.scalar(_compute_nodes().where(ComputeNode.uuid == ident))
    if not ident.isdigit():
        return None
    prefix = _uuid_prefix(int(ident))
    nodes = session.scalars(_compute_nodes().where(ComputeNode.uuid.startswith(prefix))).all()
    return nodes[0] if len(nodes) == 1 else None


@dataclasses.dataclass(frozen=True)
class Load:
    running_vms: int = 0
    current_workload: int = 0  # instances with a task in flight


def loads(session: Session, node_uuids: Iterable[str]) -> dict[str, Load]:
    uuids = list(node_uuids)
    result = {node_uuid: Load() for node_uuid in uuids}
    if not uuids:
        return result
    rows = session.execute(
        select(
            Instance.node_uuid,
            func.count(Instance.id),
            func.count(Instance.task_state),
        )
        .where(Instance.node_uuid.in_(uuids), Instance.deleted.is_(False))
        .group_by(Instance.node_uuid)
    )
    for node_uuid, running, busy in rows:
        result[node_uuid] = Load(running_vms=running, current_workload=busy)
    return result


def servers_on(session: Session, node_uuids: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """(id, name) of the instances each node runs."""
    uuids = list(node_uuids)
    result: dict[str, list[tuple[str, str]]] = {node_uuid: [] for node_uuid in uuids}
    if uuids:
        rows = session.execute(
            select(Instance.node_uuid, Instance.id, Instance.name)
            .where(Instance.node_uuid.in_(uuids), Instance.deleted.is_(False))
            .order_by(Instance.created_at, Instance.id)
        )
        for node_uuid, instance_id, name in rows:
            result[node_uuid].append((instance_id, name))
    return result


@dataclasses.dataclass(frozen=True)
class Capacity:
    """One node's figures in Nova's units (MB of memory, GB of disk)."""

    vcpus: int
    vcpus_used: int
    memory_mb: int
    memory_mb_used: int
    free_ram_mb: int
    local_gb: int
    local_gb_used: int
    free_disk_gb: int

    @classmethod
    def of(cls, node: ComputeNode) -> Capacity:
        local_gb = node.disk_total_mb // 1024
        free_disk_gb = node.disk_available_mb // 1024
        return cls(
            vcpus=node.vcpus_total,
            vcpus_used=max(node.vcpus_total - node.vcpus_available, 0),
            memory_mb=node.mem_total_mb,
            memory_mb_used=max(node.mem_total_mb - node.mem_available_mb, 0),
            free_ram_mb=node.mem_available_mb,
            local_gb=local_gb,
            local_gb_used=max(local_gb - free_disk_gb, 0),
            free_disk_gb=free_disk_gb,
        )


def statistics(session: Session) -> dict[str, int]:
    """The sums over every compute node, as Nova's hypervisor statistics."""
    nodes = list(session.scalars(_compute_nodes()))
    totals = dict.fromkeys(
        (
            "count",
            "vcpus",
            "vcpus_used",
            "memory_mb",
            "memory_mb_used",
            "free_ram_mb",
            "local_gb",
            "local_gb_used",
            "free_disk_gb",
            "disk_available_least",
            "running_vms",
            "current_workload",
        ),
        0,
    )
    load = loads(session, (node.uuid for node in nodes))
    for node in nodes:
        capacity = Capacity.of(node)
        totals["count"] += 1
        for field in dataclasses.fields(Capacity):
            totals[field.name] += getattr(capacity, field.name)
        totals["disk_available_least"] += capacity.free_disk_gb
        totals["running_vms"] += load[node.uuid].running_vms
        totals["current_workload"] += load[node.uuid].current_workload
    return totals


def last_report(session: Session) -> dt.datetime | None:
    """When any node's record last changed: the newest news from the scheduler."""
    return session.scalar(select(func.max(ComputeNode.updated_at)))
