"""Quota usage: counters changed in the same transaction as what they count.

A reservation is one conditional UPDATE per resource (`in_use + n <= limit`),
so concurrent creates on any database can never overshoot a limit; the
counter row is created on first use. Limits are passed in by the caller (the
compute API's quota sets); a limit of -1 means unlimited.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ciaostack.core import errors
from ciaostack.core.db.models import QuotaUsage


class QuotaExceeded(errors.Forbidden):
    """Nova answers 403 (Cinder 413): the compat layer picks the status."""

    def __init__(self, resource: str, requested: int, in_use: int, limit: int) -> None:
        super().__init__(
            f"Quota exceeded for {resource}: Requested {requested}, but already used "
            f"{in_use} of {limit} {resource}"
        )
        self.resource = resource


def _ensure_rows(session: Session, project_id: str, resources: list[str]) -> None:
    """Create missing counters without disturbing a concurrent creator of the same row."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(QuotaUsage)
        .values([{"project_id": project_id, "resource": r, "in_use": 0} for r in resources])
        .on_conflict_do_nothing()
    )


def reserve(
    session: Session, project_id: str, deltas: Mapping[str, int], limits: Mapping[str, int]
) -> None:
    """Add `deltas` to the project's usage, refusing the lot if any limit would be passed."""
    _ensure_rows(session, project_id, list(deltas))
    for resource, delta in deltas.items():
        limit = limits.get(resource, -1)
        stmt = update(QuotaUsage).where(
            QuotaUsage.project_id == project_id, QuotaUsage.resource == resource
        )
        if limit >= 0 and delta > 0:
            stmt = stmt.where(QuotaUsage.in_use + delta <= limit)
        result = session.execute(
            stmt.values(in_use=QuotaUsage.in_use + delta),
            execution_options={"synchronize_session": False},
        )
        if result.rowcount == 0:
            in_use = session.scalar(
                select(QuotaUsage.in_use).where(
                    QuotaUsage.project_id == project_id, QuotaUsage.resource == resource
                )
            )
            raise QuotaExceeded(resource, delta, in_use or 0, limit)


def release(session: Session, project_id: str, deltas: Mapping[str, int]) -> None:
    for resource, delta in deltas.items():
        session.execute(
            update(QuotaUsage)
            .where(QuotaUsage.project_id == project_id, QuotaUsage.resource == resource)
            .values(in_use=QuotaUsage.in_use - delta),
            execution_options={"synchronize_session": False},
        )


def usage(session: Session, project_id: str) -> dict[str, int]:
    rows = session.scalars(select(QuotaUsage).where(QuotaUsage.project_id == project_id))
    return {row.resource: row.in_use for row in rows}
