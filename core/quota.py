"""Quota usage: counters changed in the same transaction as what they count.

A reservation is a conditional UPDATE (`in_use + n <= limit` on each counter's
row; one statement for all the counters of a request), so concurrent creates on
any database can never overshoot a limit; the counter row is created on first use
(only when the UPDATE found no row: a project's counters exist after its first
reservation, so the insert is not paid on every request). Limits are passed in by
the caller (the compute API's quota sets); a limit of -1 means unlimited.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from sqlalchemy import Integer, Update, bindparam, case, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ciaostack.core import errors
from ciaostack.core.db import prepared
from ciaostack.core.db.models import QuotaUsage

_USAGE = QuotaUsage.__table__
# Built once: every create runs them per resource, and building a statement costs
# several times what executing it does.
_ADD = (
    update(_USAGE)
    .where(_USAGE.c.project_id == bindparam("project"), _USAGE.c.resource == bindparam("res"))
    .values(in_use=_USAGE.c.in_use + bindparam("delta"))
)
_ADD_WITHIN = _ADD.where(_USAGE.c.in_use + bindparam("delta") <= bindparam("limit"))


class QuotaExceeded(errors.Forbidden):
    """Nova answers 403 (Cinder 413): the compat layer picks the status."""

    def __init__(self, resource: str, requested: int, in_use: int, limit: int) -> None:
        super().__init__(
            f"Quota exceeded for {resource}: Requested {requested}, but already used "
            f"{in_use} of {limit} {resource}"
        )
        self.resource = resource


def _ensure_row(session: Session, project_id: str, resource: str) -> None:
    """Create a missing counter without disturbing a concurrent creator of the same row."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(QuotaUsage)
        .values(project_id=project_id, resource=resource, in_use=0)
        .on_conflict_do_nothing()
    )


def _add(session: Session, project_id: str, resource: str, delta: int, limit: int) -> bool:
    """Add `delta` to the counter unless that passes `limit`; False also when no row."""
    stmt = _ADD_WITHIN if limit >= 0 and delta > 0 else _ADD
    params = {"project": project_id, "res": resource, "delta": delta, "limit": limit}
    return session.execute(stmt, params).rowcount == 1


def _in_use(session: Session, project_id: str, resource: str) -> int | None:
    return session.scalar(
        select(QuotaUsage.in_use).where(
            QuotaUsage.project_id == project_id, QuotaUsage.resource == resource
        )
    )


@functools.cache
def _add_all(resources: tuple[str, ...]) -> Update:
    """One statement adding to several counters, each within its limit (-1: none), that
    says which it changed: a server create reserves three at once."""
    c = _USAGE.c
    return (
        update(_USAGE)
        .where(
            c.project_id == bindparam("project"),
            or_(*(c.resource == resource for resource in resources)),
            case(
                *(
                    (
                        c.resource == resource,
                        or_(
                            bindparam(f"limit_{i}", type_=Integer) < 0,
                            c.in_use + bindparam(f"delta_{i}", type_=Integer)
                            <= bindparam(f"limit_{i}", type_=Integer),
                        ),
                    )
                    for i, resource in enumerate(resources)
                )
            ),
        )
        .values(
            in_use=c.in_use
            + case(
                *(
                    (c.resource == resource, bindparam(f"delta_{i}", type_=Integer))
                    for i, resource in enumerate(resources)
                )
            )
        )
        .returning(c.resource)
    )


def _reserve_all(
    session: Session, project_id: str, deltas: Mapping[str, int], limits: Mapping[str, int]
) -> bool:
    """All of `deltas` in one statement, or none of them (False: the slow way decides)."""
    resources = tuple(deltas)
    params: dict[str, object] = {"project": project_id}
    for i, resource in enumerate(resources):
        delta = deltas[resource]
        params[f"delta_{i}"] = delta
        # A release (or nothing) is never refused, as in _add.
        params[f"limit_{i}"] = limits.get(resource, -1) if delta > 0 else -1
    changed = prepared.run(session, _add_all(resources), params).scalars()
    if len(changed) == len(resources):
        return True
    release(session, project_id, {resource: deltas[resource] for resource in changed})
    return False


def reserve(
    session: Session, project_id: str, deltas: Mapping[str, int], limits: Mapping[str, int]
) -> None:
    """Add `deltas` to the project's usage, refusing the lot if any limit would be passed."""
    if len(deltas) > 1 and _reserve_all(session, project_id, deltas, limits):
        return
    for resource, delta in deltas.items():
        limit = limits.get(resource, -1)
        if _add(session, project_id, resource, delta, limit):
            continue
        in_use = _in_use(session, project_id, resource)
        if in_use is None:
            # The first reservation of this resource: make the counter, then try again.
            _ensure_row(session, project_id, resource)
            if _add(session, project_id, resource, delta, limit):
                continue
            in_use = _in_use(session, project_id, resource)
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
    usages = session.scalars(select(QuotaUsage).where(QuotaUsage.project_id == project_id))
    return {row.resource: row.in_use for row in usages}
