"""Compute quota limits: Nova's defaults, the `default` quota class, then per project
(and per user within a project).

Limits are looked up here; usage is counted by core/quota.py in the transaction
that changes what it counts (instances, cores, ram by the instance operations,
server_groups by server groups, key_pairs per user by key pairs). As in Nova,
key_pairs and server_group_members show no usage at the project level, and the
limits without a counter (metadata items, injected files) are checked where the
request carries them.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session

from ciaostack.core import errors, quota
from ciaostack.core.db import prepared
from ciaostack.core.db.models import Instance, QuotaClassLimit, QuotaLimit, ServerGroup

UNLIMITED = -1
DEFAULT_CLASS = "default"
# Nova's defaults; the network quotas are long gone from Nova and unlimited.
DEFAULTS: dict[str, int] = {
    "instances": 10,
    "cores": 20,
    "ram": 50 * 1024,
    "metadata_items": 128,
    "injected_files": 5,
    "injected_file_content_bytes": 10 * 1024,
    "injected_file_path_bytes": 255,
    "key_pairs": 100,
    "server_groups": 10,
    "server_group_members": 10,
    "fixed_ips": UNLIMITED,
    "floating_ips": UNLIMITED,
    "security_groups": UNLIMITED,
    "security_group_rules": UNLIMITED,
}
RESOURCES = tuple(DEFAULTS)
PROJECT = ""  # QuotaLimit.user_id of a project-wide limit


# Built once and prepared: every server create reads them.
_LIMIT_ROWS = select(QuotaLimit.resource, QuotaLimit.hard_limit).where(
    QuotaLimit.project_id == bindparam("project"), QuotaLimit.user_id == bindparam("user")
)
_CLASS_ROWS = select(QuotaClassLimit.resource, QuotaClassLimit.hard_limit).where(
    QuotaClassLimit.class_name == bindparam("name")
)


def _rows(session: Session, project_id: str, user_id: str) -> dict[str, int]:
    rows = prepared.run(session, _LIMIT_ROWS, {"project": project_id, "user": user_id}).rows
    return {resource: limit for resource, limit in rows}


def class_limits(session: Session, class_name: str = DEFAULT_CLASS) -> dict[str, int]:
    """The defaults as the class overrides them (an unknown class is the defaults)."""
    limits = dict(DEFAULTS)
    for name in dict.fromkeys((DEFAULT_CLASS, class_name)):
        rows = prepared.run(session, _CLASS_ROWS, {"name": name}).rows
        limits.update({resource: limit for resource, limit in rows})
    return limits


def limits_for(session: Session, project_id: str, user_id: str | None = None) -> dict[str, int]:
    """Every resource's limit for the project (-1: unlimited), or for one of its users."""
    limits = class_limits(session)
    limits.update(_rows(session, project_id, PROJECT))
    if user_id:
        limits.update(_rows(session, project_id, user_id))
    return limits


def usage_for(session: Session, project_id: str, user_id: str | None = None) -> dict[str, int]:
    """What the project (or one of its users) holds, per resource, as Nova reports it."""
    in_use = dict.fromkeys(RESOURCES, 0)
    if not user_id:
        counters = quota.usage(session, project_id)
        for resource in ("instances", "cores", "ram", "server_groups"):
            in_use[resource] = counters.get(resource, 0)
        return in_use
    instances, cores, ram = session.execute(
        select(
            func.count(Instance.id),
            func.coalesce(func.sum(Instance.vcpus), 0),
            func.coalesce(func.sum(Instance.mem_mb), 0),
        ).where(
            Instance.project_id == project_id,
            Instance.user_id == user_id,
            Instance.deleted.is_(False),
        )
    ).one()
    groups = session.scalar(
        select(func.count(ServerGroup.id)).where(
            ServerGroup.project_id == project_id, ServerGroup.user_id == user_id
        )
    )
    in_use.update(instances=instances, cores=int(cores), ram=int(ram), server_groups=groups or 0)
    return in_use


def check_metadata_items(limit: int, count: int, image: bool = False) -> None:
    """403 when `count` metadata items pass the `metadata_items` limit (-1: none), in
    Nova's words for a server's metadata or (`image`) a snapshot's."""
    if 0 <= limit < count:
        if image:
            raise errors.Forbidden("Image metadata limit exceeded")
        raise errors.Forbidden(f"Maximum number of metadata items exceeds {limit}")


def _sum_user_limits(session: Session, project_id: str, resource: str, skip: str = "") -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(QuotaLimit.hard_limit), 0)).where(
            QuotaLimit.project_id == project_id,
            QuotaLimit.user_id != PROJECT,
            QuotaLimit.user_id != skip,
            QuotaLimit.resource == resource,
            QuotaLimit.hard_limit != UNLIMITED,
        )
    )
    return int(total or 0)


def _as_ceiling(value: int) -> float:
    return float("inf") if value == UNLIMITED else value


def _check(resource: str, limit: int, minimum: int, maximum: int) -> None:
    if _as_ceiling(limit) < _as_ceiling(minimum):
        raise errors.BadRequest(
            f"Quota limit {limit} for {resource} must be greater than or equal to already "
            f"used and reserved {minimum}."
        )
    if _as_ceiling(limit) > _as_ceiling(maximum):
        raise errors.BadRequest(
            f"Quota limit {limit} for {resource} must be less than or equal to {maximum}."
        )


def _bounds(
    session: Session, project_id: str, user_id: str | None, resource: str, in_use: int
) -> tuple[int, int]:
    """(minimum, maximum) a new limit may take: at least what is used (and, for a
    project, what its users' own limits add up to); a user's at most what the
    project's limit leaves after the other users' limits."""
    if not user_id:
        return max(in_use, _sum_user_limits(session, project_id, resource)), UNLIMITED
    project_limit = limits_for(session, project_id)[resource]
    if project_limit == UNLIMITED:
        return in_use, UNLIMITED
    return in_use, project_limit - _sum_user_limits(session, project_id, resource, skip=user_id)


def update_limits(
    session: Session,
    project_id: str,
    values: Mapping[str, int],
    user_id: str | None = None,
    force: bool = False,
) -> None:
    """Set limits, all or none: unless `force`, each must stay within _bounds()."""
    if not force:
        in_use = usage_for(session, project_id, user_id)
        for resource, limit in values.items():
            _check(
                resource, limit, *_bounds(session, project_id, user_id, resource, in_use[resource])
            )
    for resource, limit in values.items():
        key = (project_id, user_id or PROJECT, resource)
        row = session.get(QuotaLimit, key)
        if row is None:
            session.add(
                QuotaLimit(
                    project_id=project_id,
                    user_id=user_id or PROJECT,
                    resource=resource,
                    hard_limit=limit,
                )
            )
        else:
            row.hard_limit = limit
    session.flush()


def reset_limits(session: Session, project_id: str, user_id: str | None = None) -> None:
    """Back to the defaults: a project's reset also drops its users' own limits."""
    stmt = delete(QuotaLimit).where(QuotaLimit.project_id == project_id)
    if user_id:
        stmt = stmt.where(QuotaLimit.user_id == user_id)
    session.execute(stmt)


def update_class(session: Session, class_name: str, values: Mapping[str, int]) -> None:
    for resource, limit in values.items():
        row = session.get(QuotaClassLimit, (class_name, resource))
        if row is None:
            session.add(QuotaClassLimit(class_name=class_name, resource=resource, hard_limit=limit))
        else:
            row.hard_limit = limit
    session.flush()
