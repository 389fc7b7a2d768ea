"""The record of each resize and cold migration, for os-migrations.

One row per request, written with the change that starts it and moved along
by the same transactions that move the instance: the resize or migration in
flight is the instance's newest row in a status that is not final.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ciaostack.core import errors
from ciaostack.core.db.models import Instance, Migration, utcnow

RESIZE, MIGRATION = "resize", "migration"
PRE_MIGRATING, FINISHED, CONFIRMED = "pre-migrating", "finished", "confirmed"
REVERTING, REVERTED, ERROR = "reverting", "reverted", "error"
_FINAL = (CONFIRMED, REVERTED, ERROR)


def begin(
    session: Session,
    instance: Instance,
    migration_type: str,
    old_flavor: Mapping[str, Any],
    new_flavor: Mapping[str, Any],
) -> int:
    """The new record's id (a move's START carries it as its attempt number, so that a
    failure to start is matched with the resize it belongs to)."""
    now = utcnow()
    row = Migration(
        uuid=str(uuid.uuid4()),
        instance_id=instance.id,
        project_id=instance.project_id,
        user_id=instance.user_id,
        migration_type=migration_type,
        status=PRE_MIGRATING,
        source_node=instance.node_uuid,
        source_compute=instance.host,
        old_flavor_id=old_flavor["id"],
        new_flavor_id=new_flavor["id"],
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row.id


def in_flight(session: Session, instance: Instance) -> Migration | None:
    return session.scalar(
        select(Migration)
        .where(Migration.instance_id == instance.id, Migration.status.not_in(_FINAL))
        .order_by(Migration.id.desc())
        .limit(1)
    )


def advance(session: Session, instance: Instance, status: str) -> None:
    """The instance's migration in flight reaches `status`; on `finished`, the node the
    instance is on now is its destination."""
    current = in_flight(session, instance)
    if current is None:
        return
    current.status = status
    if status == FINISHED:
        current.dest_node, current.dest_compute = instance.node_uuid, instance.host


def listing(
    session: Session,
    *,
    instance_id: str | None = None,
    status: str | None = None,
    host: str | None = None,
    source_compute: str | None = None,
    migration_type: str | None = None,
    changes_since: dt.datetime | None = None,
    changes_before: dt.datetime | None = None,
    marker: str | None = None,
    limit: int | None = None,
) -> list[Migration]:
    """Newest first; `marker` is a migration's uuid, `host` either end's host name."""
    stmt = select(Migration)
    if instance_id is not None:
        stmt = stmt.where(Migration.instance_id == instance_id)
    if status is not None:
        stmt = stmt.where(Migration.status == status)
    if host is not None:
        stmt = stmt.where(or_(Migration.source_compute == host, Migration.dest_compute == host))
    if source_compute is not None:
        stmt = stmt.where(Migration.source_compute == source_compute)
    if migration_type is not None:
        stmt = stmt.where(Migration.migration_type == migration_type)
    if changes_since is not None:
        stmt = stmt.where(Migration.updated_at >= changes_since)
    if changes_before is not None:
        stmt = stmt.where(Migration.updated_at <= changes_before)
    if marker is not None:
        row = session.scalar(select(Migration).where(Migration.uuid == marker))
        if row is None:
            raise errors.BadRequest(f"Marker {marker} could not be found.")
        stmt = stmt.where(
            (Migration.created_at < row.created_at)
            | ((Migration.created_at == row.created_at) & (Migration.id < row.id))
        )
    stmt = stmt.order_by(Migration.created_at.desc(), Migration.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))
