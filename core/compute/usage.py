"""Simple tenant usage: instance-hours of each project over a period, as Nova bills them.

An instance counts from its launch (or the period's start) to its termination
(or the period's end); one that never launched counts nothing. Deleted
instances count for the time they ran, so a period in the past is reported the
same later on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ciaostack.core import errors
from ciaostack.core.db.models import Instance, ServerAttributes, utcnow

TERMINATED = "terminated"


@dataclasses.dataclass(frozen=True)
class ServerUsage:
    instance_id: str
    name: str
    tenant_id: str
    flavor: str
    memory_mb: int
    vcpus: int
    local_gb: int
    hours: float
    started_at: dt.datetime
    ended_at: dt.datetime | None
    state: str
    uptime: int


@dataclasses.dataclass
class TenantUsage:
    tenant_id: str
    start: dt.datetime
    stop: dt.datetime
    total_hours: float = 0.0
    total_vcpus_usage: float = 0.0
    total_memory_mb_usage: float = 0.0
    total_local_gb_usage: float = 0.0
    server_usages: list[ServerUsage] = dataclasses.field(default_factory=list)

    def add(self, usage: ServerUsage) -> None:
        self.total_hours += usage.hours
        self.total_vcpus_usage += usage.vcpus * usage.hours
        self.total_memory_mb_usage += usage.memory_mb * usage.hours
        self.total_local_gb_usage += usage.local_gb * usage.hours
        self.server_usages.append(usage)


def _hours(
    launched: dt.datetime, ended: dt.datetime | None, start: dt.datetime, stop: dt.datetime
) -> float:
    if ended is not None and ended < start:
        return 0.0
    if launched > stop:
        return 0.0
    begin = max(launched, start)
    end = min(stop, ended) if ended is not None else stop
    return (end - begin).total_seconds() / 3600.0


def _server_usage(
    instance: Instance,
    launched: dt.datetime,
    flavor: dict[str, Any],
    start: dt.datetime,
    stop: dt.datetime,
) -> ServerUsage:
    ended = instance.terminated_at
    now = utcnow()
    return ServerUsage(
        instance_id=instance.id,
        name=instance.name,
        tenant_id=instance.project_id,
        flavor=str(flavor.get("name", "")),
        memory_mb=instance.mem_mb,
        vcpus=instance.vcpus,
        local_gb=instance.disk_gb + int(flavor.get("ephemeral", 0) or 0),
        hours=_hours(launched, ended, start, stop),
        started_at=launched,
        ended_at=ended,
        state=TERMINATED if ended is not None else instance.vm_state,
        uptime=int(((ended or now) - launched).total_seconds()),
    )


def tenant_usages(
    session: Session,
    start: dt.datetime,
    stop: dt.datetime,
    project_id: str | None = None,
    limit: int | None = None,
    marker: str | None = None,
) -> tuple[list[TenantUsage], list[ServerUsage]]:
    """Usage per project (one project with `project_id`) of the instances that ran in
    [start, stop], paged over instances by id (`marker`: the last id seen).

    Returns the projects' summaries and the page's server usages.
    """
    stop = min(stop, utcnow())
    stmt = (
        select(Instance, ServerAttributes.flavor)
        .outerjoin(ServerAttributes, ServerAttributes.instance_id == Instance.id)
        .where(
            or_(Instance.terminated_at.is_(None), Instance.terminated_at > start),
            Instance.launched_at < stop,
        )
    )
    if project_id is not None:
        stmt = stmt.where(Instance.project_id == project_id)
    if marker is not None:
        if session.scalar(select(Instance.id).where(Instance.id == marker)) is None:
            raise errors.BadRequest(f"Marker {marker} could not be found.")
        stmt = stmt.where(Instance.id > marker)
    stmt = stmt.order_by(Instance.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    summaries: dict[str, TenantUsage] = {}
    servers: list[ServerUsage] = []
    for instance, flavor in session.execute(stmt):
        # The query takes launched instances only.
        usage = _server_usage(instance, instance.launched_at, flavor or {}, start, stop)
        summary = summaries.get(usage.tenant_id)
        if summary is None:
            summary = summaries[usage.tenant_id] = TenantUsage(usage.tenant_id, start, stop)
        summary.add(usage)
        servers.append(usage)
    return list(summaries.values()), servers
