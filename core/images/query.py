"""Image lists: who sees what, the filters clients send, sorting and marker paging.

A project sees its own images, public ones, community ones (in a list only
when it owns them or asks for `visibility=community`), and shared images whose
membership for it has the requested status (accepted by default); an admin
sees every image. Sorting always ends with created_at and id so that a marker
names one position; nullable sort keys sort as '' or 0, as in Glance.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Select, and_, bindparam, exists, func, or_, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ciaostack.core import errors
from ciaostack.core.db.models import Image, ImageMember, ImageProperty, ImageTag
from ciaostack.core.images.model import Caller

SORT_KEYS = (
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
)
DEFAULT_LIMIT = 25
MAX_LIMIT = 1000
OPERATORS = ("eq", "neq", "gt", "gte", "lt", "lte", "in")
_NULL_AS = {"name": "", "container_format": "", "disk_format": "", "size": 0}


@dataclasses.dataclass(frozen=True)
class Filter:
    """`field op value`; `field` is an image attribute, or an extra property if `prop`."""

    field: str
    op: str
    value: Any
    prop: bool = False


@dataclasses.dataclass
class ListQuery:
    filters: list[Filter] = dataclasses.field(default_factory=list)
    tags: list[str] = dataclasses.field(default_factory=list)
    visibility: str | None = None  # one of VISIBILITIES, "all", or None
    member_status: str = "accepted"  # or "all"
    os_hidden: bool = False
    sort: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    marker: str | None = None
    limit: int = DEFAULT_LIMIT


def _sort_expr(key: str) -> ColumnElement:
    column = getattr(Image, key)
    return func.coalesce(column, _NULL_AS[key]) if key in _NULL_AS else column


def _compare(column: ColumnElement, op: str, value: Any) -> ColumnElement:
    if op == "in":
        return column.in_(value)
    return {
        "eq": column.__eq__,
        "neq": column.__ne__,
        "gt": column.__gt__,
        "gte": column.__ge__,
        "lt": column.__lt__,
        "lte": column.__le__,
    }[op](value)


def visible_to(caller: Caller, member_status: str = "all") -> ColumnElement:
    """Rows the caller may see at all; shared ones need a membership with that status."""
    if caller.is_admin:
        return true()
    if not caller.project_id:
        return _PUBLIC  # nothing is owned by or shared with no project
    return _visible_to_project(caller.project_id, member_status)


# Equalities, not IN: a prepared statement cannot expand a list when it runs.
_PUBLIC = or_(Image.visibility == "public", Image.visibility == "community")


def _visible_to_project(project: str | ColumnElement, member_status: str = "all") -> ColumnElement:
    """What a project's caller (not an admin) may see; `project` may be a bound
    parameter, for a statement built once."""
    membership = select(ImageMember.image_id).where(
        ImageMember.image_id == Image.id, ImageMember.member == project
    )
    if member_status != "all":
        membership = membership.where(ImageMember.status == member_status)
    return or_(
        _PUBLIC,
        Image.owner == project,
        and_(Image.visibility == "shared", exists(membership)),
    )


class VisibleTo:
    """A statement built once for each kind of caller `visible_to` tells apart, the
    project a bound parameter: for prepared statements (a server's boot image)."""

    def __init__(self, stmt: Select) -> None:
        self._admin = stmt
        self._project = stmt.where(_visible_to_project(bindparam("project")))
        self._public = stmt.where(_PUBLIC)

    def pick(self, caller: Caller) -> tuple[Select, dict[str, str]]:
        """The statement for `caller` (as `visible_to` decides), and its parameters."""
        if caller.is_admin:
            return self._admin, {}
        if caller.project_id:
            return self._project, {"project": caller.project_id}
        return self._public, {}


def _filters(query: ListQuery) -> list[ColumnElement]:
    conds: list[ColumnElement] = [Image.os_hidden.is_(query.os_hidden)]
    for f in query.filters:
        if f.prop:
            conds.append(
                exists(
                    select(ImageProperty.image_id).where(
                        ImageProperty.image_id == Image.id,
                        ImageProperty.name == f.field,
                        ImageProperty.value == f.value,
                    )
                )
            )
        else:
            conds.append(_compare(getattr(Image, f.field), f.op, f.value))
    for tag in query.tags:
        conds.append(
            exists(
                select(ImageTag.image_id).where(
                    ImageTag.image_id == Image.id, ImageTag.value == tag
                )
            )
        )
    return conds


def _full_sort(query: ListQuery) -> list[tuple[str, str]]:
    sort = list(query.sort) or [("created_at", "desc")]
    default_dir = sort[0][1] if len({d for _, d in sort}) == 1 else "desc"
    for key in ("created_at", "id"):
        if key not in {k for k, _ in sort}:
            sort.append((key, default_dir))
    return sort


def _after_marker(marker: Image, sort: list[tuple[str, str]]) -> ColumnElement:
    """Rows strictly after the marker in the sort order (lexicographic on the keys)."""
    clauses = []
    for i, (key, direction) in enumerate(sort):
        equal = [_sort_expr(k) == _marker_value(marker, k) for k, _ in sort[:i]]
        value = _marker_value(marker, key)
        beyond = _sort_expr(key) > value if direction == "asc" else _sort_expr(key) < value
        clauses.append(and_(*equal, beyond))
    return or_(*clauses)


def _marker_value(marker: Image, key: str) -> Any:
    value = getattr(marker, key)
    return _NULL_AS.get(key) if value is None else value


def build(session: Session, caller: Caller, query: ListQuery) -> Select:
    """One page of images, plus one row more when another page follows."""
    stmt = select(Image).where(visible_to(caller, query.member_status), *_filters(query))
    if query.visibility not in (None, "all"):
        stmt = stmt.where(Image.visibility == query.visibility)
    elif query.visibility is None:
        # Community images crowd every list, so they appear only when asked for
        # or owned.
        stmt = stmt.where(
            or_(Image.visibility != "community", Image.owner == caller.project_id)
            if caller.project_id
            else Image.visibility != "community"
        )
    sort = _full_sort(query)
    if query.marker is not None:
        marker = session.scalar(select(Image).where(Image.id == query.marker, visible_to(caller)))
        if marker is None:
            raise errors.BadRequest(f"No image found with ID {query.marker}")
        stmt = stmt.where(_after_marker(marker, sort))
    order = [
        _sort_expr(key).asc() if direction == "asc" else _sort_expr(key).desc()
        for key, direction in sort
    ]
    return stmt.order_by(*order).limit(query.limit + 1)
