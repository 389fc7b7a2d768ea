"""Server lists: the filters clients send, sorting, marker paging, and loading what a
view shows for a whole page in a handful of queries.

Sorting always ends with the instance id so that a marker names one position;
nullable sort keys sort as '' or the epoch so that both engines order them alike.
A page of N servers costs five queries, whatever N is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, Select, and_, exists, false, func, literal, not_, or_, select
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ciaostack.core import errors
from ciaostack.core.db.models import (
    ComputeNode,
    Instance,
    ServerAttributes,
    ServerGroupMember,
    ServerMetadata,
    ServerTag,
)
from ciaostack.core.network.ipam import IPAM, Interface

MAX_LIMIT = 1000
EPOCH = dt.datetime(1970, 1, 1)

# Nova's sort keys -> (column, what a NULL sorts as).
SORT_COLUMNS: dict[str, tuple[Any, Any]] = {
    "access_ip_v4": (ServerAttributes.access_ip_v4, ""),
    "access_ip_v6": (ServerAttributes.access_ip_v6, ""),
    "auto_disk_config": (ServerAttributes.disk_config, ""),
    "availability_zone": (Instance.availability_zone, ""),
    "config_drive": (ServerAttributes.config_drive, False),
    "created_at": (Instance.created_at, None),
    "display_description": (ServerAttributes.description, ""),
    "display_name": (Instance.name, ""),
    "host": (Instance.host, ""),
    "hostname": (ServerAttributes.hostname, ""),
    "image_ref": (Instance.image_id, ""),
    "instance_type_id": (ServerAttributes.flavor_id, ""),
    "key_name": (ServerAttributes.key_name, ""),
    "launch_index": (ServerAttributes.launch_index, 0),
    "launched_at": (Instance.launched_at, EPOCH),
    "locked_by": (ServerAttributes.locked_by, ""),
    "node": (Instance.host, ""),
    "power_state": (Instance.power_state, None),
    "project_id": (Instance.project_id, None),
    "task_state": (Instance.task_state, ""),
    "terminated_at": (Instance.terminated_at, EPOCH),
    "updated_at": (Instance.updated_at, None),
    "user_id": (Instance.user_id, None),
    "uuid": (Instance.id, None),
    "vm_state": (Instance.vm_state, None),
}
# Keys Nova accepts but that order nothing here (no such column, or always the same value).
CONSTANT_SORT_KEYS = frozenset(
    {"kernel_id", "ramdisk_id", "root_device_name", "progress"}
    | {
        "architecture",
        "cell_name",
        "cleaned",
        "default_ephemeral_device",
        "default_swap_device",
        "deleted",
        "deleted_at",
        "disable_terminate",
        "ephemeral_gb",
        "ephemeral_key_uuid",
        "id",
        "key_data",
        "launched_on",
        "locked",
        "memory_mb",
        "os_type",
        "reservation_id",
        "root_gb",
        "shutdown_terminate",
        "user_data",
        "vcpus",
        "vm_mode",
    }
)
ADMIN_SORT_KEYS = frozenset({"host", "node"})


@dataclasses.dataclass(frozen=True)
class StateMatch:
    """Instances in `vm_state` with one of `task_states` (None: any task state)."""

    vm_state: str
    task_states: frozenset[str | None] | None = None


@dataclasses.dataclass
class ServerQuery:
    project_id: str | None = None  # None: every project (an admin's all_tenants)
    user_id: str | None = None
    name: str | None = None  # a regular expression
    states: list[StateMatch] | None = None
    deleted: bool | None = False  # False: live servers, True: deleted ones, None: both
    changes_since: dt.datetime | None = None
    changes_before: dt.datetime | None = None
    image_id: str | None = None
    flavor_id: str | None = None
    ip: str | None = None  # a regular expression
    availability_zone: str | None = None
    host: str | None = None
    reservation_id: str | None = None
    uuid: str | None = None
    key_name: str | None = None
    locked: bool | None = None
    tags: tuple[str, ...] = ()
    tags_any: tuple[str, ...] = ()
    not_tags: tuple[str, ...] = ()
    not_tags_any: tuple[str, ...] = ()
    matches_nothing: bool = False
    sort: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    marker: str | None = None
    limit: int = MAX_LIMIT


def check_regex(pattern: str, what: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise errors.BadRequest(f"Invalid regular expression for {what}: {exc}") from exc
    return pattern


def _sort_expr(key: str) -> ColumnElement:
    column, null_as = SORT_COLUMNS[key]
    return column if null_as is None else func.coalesce(column, null_as)


def _full_sort(sort: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    keys = [(k, d) for k, d in sort if k not in CONSTANT_SORT_KEYS]
    if not keys:
        keys = [("created_at", "desc")]
    if "uuid" not in {k for k, _ in keys}:
        keys.append(("uuid", keys[-1][1]))
    return keys


def _marker_values(session: Session, query: ServerQuery, sort: list[tuple[str, str]]) -> list[Any]:
    """The marker's sort values; it must be a server the caller could list."""
    stmt = (
        select(*(_sort_expr(k) for k, _ in sort))
        .select_from(Instance)
        .outerjoin(ServerAttributes, ServerAttributes.instance_id == Instance.id)
        .where(Instance.id == query.marker)
    )
    if query.project_id is not None:
        stmt = stmt.where(Instance.project_id == query.project_id)
    row = session.execute(stmt).first()
    if row is None:
        raise errors.BadRequest(f"marker [{query.marker}] not found")
    return list(row)


def _after(values: list[Any], sort: list[tuple[str, str]]) -> ColumnElement:
    """Rows strictly after the marker's position (lexicographic on the sort keys)."""
    clauses = []
    for i, (key, direction) in enumerate(sort):
        equal = [_sort_expr(k) == values[j] for j, (k, _) in enumerate(sort[:i])]
        expr = _sort_expr(key)
        clauses.append(and_(*equal, expr > values[i] if direction == "asc" else expr < values[i]))
    return or_(*clauses)


def _has_tag(tags: Sequence[str]) -> ColumnElement:
    return exists().where(ServerTag.instance_id == Instance.id, ServerTag.tag.in_(tags))


def _filters(query: ServerQuery, ipam: IPAM) -> list[ColumnElement]:
    conds: list[ColumnElement] = []
    if query.matches_nothing:
        return [false()]
    if query.project_id is not None:
        conds.append(Instance.project_id == query.project_id)
    if query.deleted is not None:
        conds.append(Instance.deleted.is_(query.deleted))
    simple = {
        Instance.user_id: query.user_id,
        Instance.image_id: query.image_id,
        ServerAttributes.flavor_id: query.flavor_id,
        Instance.availability_zone: query.availability_zone,
        Instance.host: query.host,
        ServerAttributes.reservation_id: query.reservation_id,
        Instance.id: query.uuid,
        ServerAttributes.key_name: query.key_name,
    }
    conds += [column == value for column, value in simple.items() if value is not None]
    if query.locked is not None:
        conds.append(func.coalesce(ServerAttributes.locked, False).is_(query.locked))
    if query.name is not None:
        conds.append(Instance.name.regexp_match(query.name))
    if query.ip is not None:
        conds.append(Instance.id.in_(ipam.devices_with_address(query.ip)))
    if query.changes_since is not None:
        conds.append(Instance.updated_at >= query.changes_since)
    if query.changes_before is not None:
        conds.append(Instance.updated_at <= query.changes_before)
    if query.states is not None:
        conds.append(or_(false(), *(_state(m) for m in query.states)))
    conds += [_has_tag([tag]) for tag in query.tags]
    if query.tags_any:
        conds.append(_has_tag(query.tags_any))
    if query.not_tags:
        conds.append(not_(and_(*(_has_tag([tag]) for tag in query.not_tags))))
    if query.not_tags_any:
        conds.append(not_(_has_tag(query.not_tags_any)))
    return conds


def _state(match: StateMatch) -> ColumnElement:
    cond = Instance.vm_state == match.vm_state
    if match.task_states is None:
        return cond
    named = [t for t in match.task_states if t is not None]
    task = Instance.task_state.in_(named) if named else literal(False)
    if None in match.task_states:
        task = or_(task, Instance.task_state.is_(None))
    return and_(cond, task)


# A page is read as plain rows of the columns a view shows (named as the model's fields):
# a page's 1,000 ORM objects cost several times the query. What the controller keeps in
# an instance row for itself is never read (the START payload alone is most of the row).
_NOT_SHOWN = frozenset({"start_payload", "excluded_nodes"})
_SHOWN_INSTANCE = tuple(c for c in Instance.__table__.columns if c.key not in _NOT_SHOWN)
_SHOWN_ATTRIBUTES = tuple(
    column
    for column in ServerAttributes.__table__.columns
    if column.key not in ("scheduler_hints", "key_data")
)


def page(session: Session, query: ServerQuery, ipam: IPAM) -> list[Row[Any]]:
    """One page of instances in the requested order, as rows of _SHOWN_INSTANCE."""
    sort = _full_sort(query.sort)
    stmt: Select = (
        select(*_SHOWN_INSTANCE)
        .outerjoin(ServerAttributes, ServerAttributes.instance_id == Instance.id)
        .where(*_filters(query, ipam))
    )
    if query.marker is not None:
        stmt = stmt.where(_after(_marker_values(session, query, sort), sort))
    order = [_sort_expr(k).asc() if d == "asc" else _sort_expr(k).desc() for k, d in sort]
    try:
        return list(session.execute(stmt.order_by(*order).limit(query.limit)))
    except DataError as exc:
        # PostgreSQL's regular expressions refuse a few patterns Python's accept.
        raise errors.BadRequest(f"Invalid filter: {exc.orig}") from exc


@dataclasses.dataclass
class ServerDetail:
    """Everything a server view shows, loaded for a whole page at once."""

    instance: Instance | Row[Any]  # a page's are rows of _SHOWN_INSTANCE
    attrs: Row[Any] | None  # _SHOWN_ATTRIBUTES
    metadata: dict[str, str]
    tags: list[str]
    interfaces: list[Interface]
    node: ComputeNode | None
    group_ids: list[str]


def details(
    session: Session,
    instances: Sequence[Instance | Row[Any]],
    ipam: IPAM,
    tags: bool = True,
    groups: bool = False,
) -> list[ServerDetail]:
    ids = [i.id for i in instances]
    if not ids:
        return []
    attrs = {
        row.instance_id: row
        for row in session.execute(
            select(*_SHOWN_ATTRIBUTES).where(ServerAttributes.instance_id.in_(ids))
        )
    }
    metadata: dict[str, dict[str, str]] = {i: {} for i in ids}
    for instance_id, key, value in session.execute(
        select(ServerMetadata.instance_id, ServerMetadata.key, ServerMetadata.value).where(
            ServerMetadata.instance_id.in_(ids)
        )
    ):
        metadata[instance_id][key] = value
    tag_map: dict[str, list[str]] = {i: [] for i in ids}
    if tags:
        for instance_id, tag in session.execute(
            select(ServerTag.instance_id, ServerTag.tag)
            .where(ServerTag.instance_id.in_(ids))
            .order_by(ServerTag.tag)
        ):
            tag_map[instance_id].append(tag)
    group_map: dict[str, list[str]] = {i: [] for i in ids}
    if groups:
        for instance_id, group_id in session.execute(
            select(ServerGroupMember.instance_id, ServerGroupMember.group_id).where(
                ServerGroupMember.instance_id.in_(ids)
            )
        ):
            group_map[instance_id].append(group_id)
    node_ids = {i.node_uuid for i in instances if i.node_uuid}
    nodes = {
        n.uuid: n
        for n in session.scalars(select(ComputeNode).where(ComputeNode.uuid.in_(node_ids or [""])))
    }
    interfaces = ipam.interfaces(session, ids)
    return [
        ServerDetail(
            instance=i,
            attrs=attrs.get(i.id),
            metadata=metadata[i.id],
            tags=tag_map[i.id],
            interfaces=interfaces[i.id],
            node=nodes.get(i.node_uuid) if i.node_uuid else None,
            group_ids=group_map[i.id],
        )
        for i in instances
    ]
