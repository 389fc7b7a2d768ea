"""Flavors: the sizes instances are created with, public or shared with chosen projects.

A private flavor is visible only to administrators and to the projects in its
access list; to anyone else it does not exist (404), as in Nova. Flavor ids
are strings chosen by the creator ("1", a uuid) or generated.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ciaostack.core import errors
from ciaostack.core.db import prepared
from ciaostack.core.db.models import Flavor, FlavorAccess, FlavorExtraSpec

# (id, name, ram MB, vcpus, disk GB): the classic m1 sizes, plus m1.nano for tests
# (tempest's usual small flavor).
DEFAULT_FLAVORS = (
    ("1", "m1.tiny", 512, 1, 1),
    ("2", "m1.small", 2048, 1, 20),
    ("3", "m1.medium", 4096, 2, 40),
    ("4", "m1.large", 8192, 4, 80),
    ("5", "m1.xlarge", 16384, 8, 160),
    ("42", "m1.nano", 128, 1, 1),
)

# Nova's sort keys (its column names) -> ours. Nova's internal integer id orders by
# creation, and flavors change only their description, so both map to created_at.
SORT_COLUMNS: dict[str, Any] = {
    "created_at": Flavor.created_at,
    "updated_at": Flavor.created_at,
    "id": Flavor.created_at,
    "description": func.coalesce(Flavor.description, ""),
    "disabled": Flavor.disabled,
    "ephemeral_gb": Flavor.ephemeral,
    "flavorid": Flavor.id,
    "is_public": Flavor.is_public,
    "memory_mb": Flavor.ram,
    "name": Flavor.name,
    "root_gb": Flavor.disk,
    "rxtx_factor": Flavor.rxtx_factor,
    "swap": Flavor.swap,
    "vcpu_weight": Flavor.id,
    "vcpus": Flavor.vcpus,
}


@dataclasses.dataclass(frozen=True)
class FlavorQuery:
    """What a flavor list asks for. `is_public`: True lists public flavors and the
    project's private ones, False private flavors only, None all of them."""

    project_id: str | None
    is_admin: bool
    is_public: bool | None = True
    min_ram: int | None = None
    min_disk: int | None = None
    sort_key: str = "flavorid"
    sort_dir: str = "asc"
    limit: int | None = None
    marker: str | None = None


def _accessible(project: str | BindParameter[str]) -> ColumnElement[bool]:
    """Public flavors, and private ones the project was given."""
    granted = exists().where(
        FlavorAccess.flavor_id == Flavor.id, FlavorAccess.project_id == project
    )
    return or_(Flavor.is_public.is_(True), granted)


def _by_id(stmt: Select) -> tuple[Select, Select]:
    """`stmt` for one flavor: as an admin sees it, and as a project does."""
    anyone = stmt.where(Flavor.id == bindparam("flavor"))
    return anyone, anyone.where(_accessible(bindparam("project")))


# Built once: every server create looks its flavor up.
_ANY_FLAVOR, _ACCESSIBLE_FLAVOR = _by_id(select(Flavor))
_EXTRA_SPECS = select(FlavorExtraSpec.key, FlavorExtraSpec.value).where(
    FlavorExtraSpec.flavor_id == bindparam("flavor")
)


class FlavorSize(Protocol):
    """What a server is built from: a Flavor, or a row of these columns."""

    id: str
    name: str
    ram: int
    vcpus: int
    disk: int
    ephemeral: int
    swap: int
    disabled: bool


# Prepared: every server create reads its flavor's size (as rows, not objects).
_ANY_SIZE, _ACCESSIBLE_SIZE = _by_id(
    select(
        Flavor.id,
        Flavor.name,
        Flavor.ram,
        Flavor.vcpus,
        Flavor.disk,
        Flavor.ephemeral,
        Flavor.swap,
        Flavor.disabled,
    )
)


def _lookup(
    flavor_ref: str, project_id: str | None, is_admin: bool, anyone: Select, accessible: Select
) -> tuple[Select, dict[str, str]]:
    """The statement for this caller, and its parameters."""
    if is_admin:
        return anyone, {"flavor": str(flavor_ref)}
    return accessible, {"flavor": str(flavor_ref), "project": project_id or ""}


def _found(flavor: Any, flavor_ref: str) -> Any:
    if flavor is None:
        raise errors.NotFound(f"Flavor {flavor_ref} could not be found.")
    return flavor


def get_flavor_size(
    session: Session, flavor_ref: str, project_id: str | None, is_admin: bool
) -> FlavorSize:
    """As get_flavor, for a server create: NotFound unless the caller may see it."""
    stmt, params = _lookup(flavor_ref, project_id, is_admin, _ANY_SIZE, _ACCESSIBLE_SIZE)
    return _found(prepared.run(session, stmt, params).first(), flavor_ref)


def get_flavor(session: Session, flavor_ref: str, project_id: str | None, is_admin: bool) -> Flavor:
    """The flavor as the caller may see it; NotFound when missing or private to others.

    Disabled flavors are returned (they can still be shown); a server create must
    refuse them itself.
    """
    return _found(_visible(session, flavor_ref, project_id, is_admin), flavor_ref)


def _visible(
    session: Session, flavor_ref: str, project_id: str | None, is_admin: bool
) -> Flavor | None:
    stmt, params = _lookup(flavor_ref, project_id, is_admin, _ANY_FLAVOR, _ACCESSIBLE_FLAVOR)
    return session.scalar(stmt, params)


def extra_specs(session: Session, flavor_id: str) -> dict[str, str]:
    return dict(prepared.run(session, _EXTRA_SPECS, {"flavor": flavor_id}).rows)


def extra_specs_of(session: Session, flavor_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """Extra specs of many flavors in one query (a detailed list at 2.61)."""
    ids = list(flavor_ids)
    specs: dict[str, dict[str, str]] = {flavor_id: {} for flavor_id in ids}
    if ids:
        rows = session.scalars(select(FlavorExtraSpec).where(FlavorExtraSpec.flavor_id.in_(ids)))
        for row in rows:
            specs[row.flavor_id][row.key] = row.value
    return specs


def list_flavors(session: Session, query: FlavorQuery) -> list[Flavor]:
    """One page of flavors in Nova's order; BadRequest for a marker the caller can't see."""
    stmt = select(Flavor)
    if not query.is_admin:
        stmt = stmt.where(Flavor.disabled.is_(False))
    if query.is_public is True:
        stmt = stmt.where(_accessible(query.project_id or ""))
    elif query.is_public is False:
        stmt = stmt.where(Flavor.is_public.is_(False))
    if query.min_ram is not None:
        stmt = stmt.where(Flavor.ram >= query.min_ram)
    if query.min_disk is not None:
        stmt = stmt.where(Flavor.disk >= query.min_disk)
    column = SORT_COLUMNS[query.sort_key]
    descending = query.sort_dir == "desc"
    if query.marker is not None:
        marker = _visible(session, query.marker, query.project_id, query.is_admin)
        if marker is None:
            raise errors.BadRequest(f"marker [{query.marker}] not found")
        stmt = stmt.where(_after(column, marker, descending))
    order = (column.desc(), Flavor.id.desc()) if descending else (column.asc(), Flavor.id.asc())
    stmt = stmt.order_by(*order)
    if query.limit is not None:
        stmt = stmt.limit(query.limit)
    return list(session.scalars(stmt))


def _after(column: Any, marker: Flavor, descending: bool) -> ColumnElement[bool]:
    """Rows after the marker in (column, id) order."""
    value = select(column).where(Flavor.id == marker.id).scalar_subquery()
    if descending:
        return or_(column < value, and_(column == value, Flavor.id < marker.id))
    return or_(column > value, and_(column == value, Flavor.id > marker.id))


@dataclasses.dataclass(frozen=True)
class FlavorSpec:
    name: str
    ram: int
    vcpus: int
    disk: int
    id: str | None = None
    ephemeral: int = 0
    swap: int = 0
    rxtx_factor: float = 1.0
    is_public: bool = True
    description: str | None = None


def create_flavor(session: Session, spec: FlavorSpec) -> Flavor:
    """Conflict when the id or the name is taken (checked again by the constraints)."""
    flavor_id = spec.id or str(uuid.uuid4())
    if session.get(Flavor, flavor_id) is not None:
        raise errors.Conflict(f"Flavor with ID {flavor_id} already exists.")
    if session.scalar(select(Flavor.id).where(Flavor.name == spec.name)) is not None:
        raise errors.Conflict(f"Flavor with name {spec.name} already exists.")
    flavor = Flavor(
        id=flavor_id,
        name=spec.name,
        ram=spec.ram,
        vcpus=spec.vcpus,
        disk=spec.disk,
        ephemeral=spec.ephemeral,
        swap=spec.swap,
        rxtx_factor=spec.rxtx_factor,
        is_public=spec.is_public,
        description=spec.description,
        disabled=False,
    )
    try:
        with session.begin_nested():
            session.add(flavor)
    except IntegrityError as exc:  # a concurrent create took the id or the name
        raise errors.Conflict(
            f"Flavor with ID {flavor_id} or name {spec.name} already exists."
        ) from exc
    return flavor


def delete_flavor(session: Session, flavor_id: str) -> None:
    """Servers keep their own copy of the flavor they were built with."""
    flavor = session.get(Flavor, flavor_id)
    if flavor is None:
        raise errors.NotFound(f"Flavor {flavor_id} could not be found.")
    session.execute(delete(FlavorExtraSpec).where(FlavorExtraSpec.flavor_id == flavor_id))
    session.execute(delete(FlavorAccess).where(FlavorAccess.flavor_id == flavor_id))
    session.delete(flavor)
    session.flush()


def set_extra_specs(session: Session, flavor: Flavor, specs: Mapping[str, str]) -> None:
    """Add or replace the given keys, leaving the others."""
    for key, value in specs.items():
        row = session.get(FlavorExtraSpec, (flavor.id, key))
        if row is None:
            session.add(FlavorExtraSpec(flavor_id=flavor.id, key=key, value=value))
        else:
            row.value = value
    session.flush()


def delete_extra_spec(session: Session, flavor: Flavor, key: str) -> None:
    row = session.get(FlavorExtraSpec, (flavor.id, key))
    if row is None:
        raise errors.NotFound(f"Flavor {flavor.id} has no extra specs with key {key}.")
    session.delete(row)
    session.flush()


def access_list(session: Session, flavor_id: str) -> list[str]:
    """Projects a private flavor is shared with, in a stable order."""
    return list(
        session.scalars(
            select(FlavorAccess.project_id)
            .where(FlavorAccess.flavor_id == flavor_id)
            .order_by(FlavorAccess.project_id)
        )
    )


def add_access(session: Session, flavor: Flavor, project_id: str) -> None:
    if session.get(FlavorAccess, (flavor.id, project_id)) is not None:
        raise errors.Conflict(
            f"Flavor access already exists for flavor {flavor.id} and project "
            f"{project_id} combination."
        )
    try:
        with session.begin_nested():
            session.add(FlavorAccess(flavor_id=flavor.id, project_id=project_id))
    except IntegrityError as exc:
        raise errors.Conflict(
            f"Flavor access already exists for flavor {flavor.id} and project "
            f"{project_id} combination."
        ) from exc


def remove_access(session: Session, flavor: Flavor, project_id: str) -> None:
    row = session.get(FlavorAccess, (flavor.id, project_id))
    if row is None:
        raise errors.NotFound(
            f"Flavor access not found for {flavor.id} / {project_id} combination."
        )
    session.delete(row)
    session.flush()


def ensure_default_flavors(session: Session) -> None:
    """Bootstrap seed: the default flavors, made only while the cloud has no flavor at
    all, so that a bootstrap run again (`ciaostack up` does at every start) never
    brings back a flavor an operator deleted."""
    if session.scalar(select(Flavor.id).limit(1)) is not None:
        return
    for flavor_id, name, ram, vcpus, disk in DEFAULT_FLAVORS:
        session.add(Flavor(id=flavor_id, name=name, ram=ram, vcpus=vcpus, disk=disk))
    session.flush()
