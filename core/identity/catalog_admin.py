"""Regions, services and endpoints: the catalog as administrators change it.

Keystone's rules, kept here once:

- a region's id is chosen by the caller or generated; its parent must exist and
  the parents may not form a cycle; deleting a region deletes its sub-regions,
  but not while it or any of them has endpoints;
- deleting a service deletes its endpoints;
- an endpoint names an existing service and an existing region by `region_id`;
  the older `region` field creates a missing region on the fly, as Keystone
  still does for clients written before regions existed.

Tokens carry the catalog built from these rows (core/identity/catalog.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ciaostack.core import errors
from ciaostack.core.db.models import Endpoint, Region, Service, new_id
from ciaostack.core.identity.lookup import found

INTERFACES = ("public", "internal", "admin")


# -- regions ----------------------------------------------------------------------


def get_region(session: Session, region_id: str) -> Region:
    return found(session.get(Region, region_id), "region", region_id)


def list_regions(session: Session, parent_region_id: str | None = None) -> list[Region]:
    query = select(Region).order_by(Region.id)
    if parent_region_id is not None:
        query = query.where(Region.parent_region_id == parent_region_id)
    return list(session.scalars(query))


def _region_conflict(region_id: str) -> str:
    return f"Conflict occurred attempting to store region - the id {region_id} is taken."


def create_region(
    session: Session,
    region_id: str | None = None,
    description: str = "",
    parent_region_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Region:
    region_id = region_id or new_id()
    if session.get(Region, region_id) is not None:
        raise errors.Conflict(_region_conflict(region_id))
    if parent_region_id is not None:
        get_region(session, parent_region_id)
    region = Region(
        id=region_id,
        description=description,
        parent_region_id=parent_region_id,
        extra=extra or {},
    )
    session.add(region)
    try:
        session.flush()
    except IntegrityError as exc:
        raise errors.Conflict(_region_conflict(region_id)) from exc
    return region


def update_region(session: Session, region_id: str, **changes: Any) -> Region:
    """`changes`: description, parent_region_id, extra (merged)."""
    region = get_region(session, region_id)
    if "parent_region_id" in changes:
        parent_id = changes["parent_region_id"]
        ancestor, seen = parent_id, set()
        while ancestor is not None and ancestor not in seen:
            if ancestor == region_id:
                raise errors.BadRequest(
                    f"The parent region {parent_id} would make the region hierarchy circular."
                )
            seen.add(ancestor)
            ancestor = get_region(session, ancestor).parent_region_id
        region.parent_region_id = parent_id
    if "description" in changes:
        region.description = changes["description"] or ""
    if "extra" in changes:
        region.extra = {**region.extra, **changes["extra"]}
    session.flush()
    return region


def delete_region(session: Session, region_id: str) -> None:
    region = get_region(session, region_id)
    family = [region]
    ids = {region_id}
    frontier = [region_id]
    while frontier:
        rows = session.scalars(select(Region).where(Region.parent_region_id.in_(frontier)))
        children = [c for c in rows if c.id not in ids]
        family.extend(children)
        ids.update(c.id for c in children)
        frontier = [c.id for c in children]
    if session.scalar(select(Endpoint.id).where(Endpoint.region_id.in_(ids)).limit(1)):
        raise errors.Forbidden(
            f"Cannot delete region {region_id}: it or a region below it has endpoints."
        )
    for member in reversed(family):  # leaves first: a parent must outlive its children
        session.delete(member)
        session.flush()


# -- services ---------------------------------------------------------------------


def get_service(session: Session, service_id: str) -> Service:
    return found(session.get(Service, service_id), "service", service_id)


def list_services(
    session: Session, type: str | None = None, name: str | None = None
) -> list[Service]:
    query = select(Service).order_by(Service.type, Service.id)
    if type is not None:
        query = query.where(Service.type == type)
    if name is not None:
        query = query.where(Service.name == name)
    return list(session.scalars(query))


def create_service(
    session: Session,
    type: str,
    name: str = "",
    description: str = "",
    enabled: bool = True,
    extra: dict[str, Any] | None = None,
) -> Service:
    service = Service(
        type=type, name=name, description=description, enabled=enabled, extra=extra or {}
    )
    session.add(service)
    session.flush()
    return service


def update_service(session: Session, service_id: str, **changes: Any) -> Service:
    """`changes`: type, name, description, enabled, extra (merged)."""
    service = get_service(session, service_id)
    for field in ("type", "name", "enabled"):
        if changes.get(field) is not None:
            setattr(service, field, changes[field])
    if "description" in changes:
        service.description = changes["description"] or ""
    if "extra" in changes:
        service.extra = {**service.extra, **changes["extra"]}
    session.flush()
    return service


def delete_service(session: Session, service_id: str) -> None:
    service = get_service(session, service_id)
    for endpoint in session.scalars(select(Endpoint).where(Endpoint.service_id == service_id)):
        session.delete(endpoint)
    session.delete(service)
    session.flush()


# -- endpoints --------------------------------------------------------------------


def get_endpoint(session: Session, endpoint_id: str) -> Endpoint:
    return found(session.get(Endpoint, endpoint_id), "endpoint", endpoint_id)


def list_endpoints(
    session: Session,
    service_id: str | None = None,
    interface: str | None = None,
    region_id: str | None = None,
) -> list[Endpoint]:
    query = select(Endpoint).order_by(Endpoint.service_id, Endpoint.interface, Endpoint.id)
    if service_id is not None:
        query = query.where(Endpoint.service_id == service_id)
    if interface is not None:
        query = query.where(Endpoint.interface == interface)
    if region_id is not None:
        query = query.where(Endpoint.region_id == region_id)
    return list(session.scalars(query))


def _endpoint_region(
    session: Session, region_id: str | None, legacy_region: str | None
) -> str | None:
    """The region an endpoint names: `region_id` must exist; `region` alone is created."""
    if region_id is not None:
        if session.get(Region, region_id) is None:
            raise errors.BadRequest(f"The endpoint's region_id {region_id} is not a region.")
        return region_id
    if legacy_region:  # an empty legacy region names none (it is no region id)
        if session.get(Region, legacy_region) is None:
            create_region(session, legacy_region)
        return legacy_region
    return None


def _check_service(session: Session, service_id: str) -> None:
    if session.get(Service, service_id) is None:
        raise errors.BadRequest(f"The endpoint's service_id {service_id} is not a service.")


def create_endpoint(
    session: Session,
    service_id: str,
    interface: str,
    url: str,
    region_id: str | None = None,
    region: str | None = None,
    enabled: bool = True,
    extra: dict[str, Any] | None = None,
) -> Endpoint:
    _check_service(session, service_id)
    endpoint = Endpoint(
        service_id=service_id,
        interface=interface,
        url=url,
        region_id=_endpoint_region(session, region_id, region),
        enabled=enabled,
        extra=extra or {},
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def update_endpoint(session: Session, endpoint_id: str, **changes: Any) -> Endpoint:
    """`changes`: service_id, interface, url, region_id, region (legacy), enabled,
    extra (merged). A null region_id takes the endpoint out of every region."""
    endpoint = get_endpoint(session, endpoint_id)
    if changes.get("service_id") is not None:
        _check_service(session, changes["service_id"])
        endpoint.service_id = changes["service_id"]
    for field in ("interface", "url", "enabled"):
        if changes.get(field) is not None:
            setattr(endpoint, field, changes[field])
    if changes.get("region_id") is not None or changes.get("region") is not None:
        endpoint.region_id = _endpoint_region(
            session, changes.get("region_id"), changes.get("region")
        )
    elif "region_id" in changes or "region" in changes:
        endpoint.region_id = None
    if "extra" in changes:
        endpoint.extra = {**endpoint.extra, **changes["extra"]}
    session.flush()
    return endpoint


def delete_endpoint(session: Session, endpoint_id: str) -> None:
    session.delete(get_endpoint(session, endpoint_id))
    session.flush()
