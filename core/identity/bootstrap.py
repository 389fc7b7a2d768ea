"""First-run setup of identity, safe to repeat (like keystone-manage bootstrap).

Creates the default domain (id `default`, name `Default`), the roles admin,
manager, member, reader, service with admin -> manager -> member -> reader
implied (Keystone's since 2023.2, where "manager" came between), the admin
project and user, the region, and the catalog entries for every service this
cloud serves. A second run changes nothing except, when given, the password.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ciaostack.core.db.models import (
    Domain,
    Endpoint,
    ImpliedRole,
    Project,
    Region,
    Role,
    Service,
    User,
    utcnow,
)
from ciaostack.core.db.session import Database
from ciaostack.core.identity import assignments, passwords

DEFAULT_DOMAIN_ID = "default"
ROLES = ("admin", "manager", "member", "reader", "service")
IMPLIED = (("admin", "manager"), ("manager", "member"), ("member", "reader"))
# What a bootstrap before "manager" made: admin implied member directly.
SUPERSEDED = (("admin", "member"),)


@dataclasses.dataclass(frozen=True)
class CatalogEntry:
    type: str
    name: str
    path: str
    description: str


# Every service this cloud serves (compute and the others join as they arrive).
CATALOG = (
    CatalogEntry("identity", "keystone", "/identity", "Identity (Keystone v3)"),
    CatalogEntry("image", "glance", "/image", "Image (Glance v2)"),
    CatalogEntry("compute", "nova", "/compute/v2.1", "Compute (Nova v2.1)"),
)


def _get_or_add(session: Session, model, lookup: dict, **values):  # noqa: ANN001, ANN202
    row = session.scalar(select(model).filter_by(**lookup))
    if row is None:
        row = model(**lookup, **values)
        session.add(row)
        session.flush()
    return row


def ensure_user(
    session: Session, name: str, password: str | None, rounds: int, project: Project, role: Role
) -> User:
    user = session.scalar(
        select(User).where(User.domain_id == DEFAULT_DOMAIN_ID, User.name == name)
    )
    if user is None:
        user = User(name=name, domain_id=DEFAULT_DOMAIN_ID, default_project_id=project.id)
        session.add(user)
    if password is not None:
        user.password_hash = passwords.hash_secret(password, rounds)
        user.password_created_at = utcnow()
    session.flush()
    assignments.grant(session, user.id, assignments.PROJECT, project.id, role.id)
    return user


def bootstrap(
    db: Database,
    admin_password: str | None,
    public_url: str,
    region: str,
    rounds: int,
    seeds: Iterable[Callable[[Session], None]] = (),
) -> dict[str, str]:
    """Returns the ids an operator may want printed.

    `seeds` add other parts of the core's first-run data (compute's default flavors)
    in the same transaction, so that identity needs to know nothing of them; each
    must be as safe to repeat as the rest.
    """
    with db.session() as session:
        if session.get(Domain, DEFAULT_DOMAIN_ID) is None:
            session.add(
                Domain(id=DEFAULT_DOMAIN_ID, name="Default", description="The default domain")
            )
            session.flush()
        roles = {
            name: _get_or_add(session, Role, {"name": name, "domain_id": ""}) for name in ROLES
        }
        for prior, implied in IMPLIED:
            key = (roles[prior].id, roles[implied].id)
            if session.get(ImpliedRole, key) is None:
                session.add(ImpliedRole(prior_role_id=key[0], implied_role_id=key[1]))
        for prior, implied in SUPERSEDED:
            old = session.get(ImpliedRole, (roles[prior].id, roles[implied].id))
            if old is not None:
                session.delete(old)
        admin_project = _get_or_add(
            session,
            Project,
            {"name": "admin", "domain_id": DEFAULT_DOMAIN_ID},
            description="Bootstrap project for initializing the cloud.",
        )
        _get_or_add(
            session,
            Project,
            {"name": "service", "domain_id": DEFAULT_DOMAIN_ID},
            description="Project for service users.",
        )
        admin = ensure_user(session, "admin", admin_password, rounds, admin_project, roles["admin"])
        if session.get(Region, region) is None:
            session.add(Region(id=region))
            session.flush()
        for entry in CATALOG:
            service = _get_or_add(
                session,
                Service,
                {"type": entry.type, "name": entry.name},
                description=entry.description,
            )
            for interface in ("public", "internal", "admin"):
                endpoint = session.scalar(
                    select(Endpoint).where(
                        Endpoint.service_id == service.id,
                        Endpoint.interface == interface,
                        Endpoint.region_id == region,
                    )
                )
                url = f"{public_url.rstrip('/')}{entry.path}"
                if endpoint is None:
                    session.add(
                        Endpoint(
                            service_id=service.id, interface=interface, url=url, region_id=region
                        )
                    )
                else:
                    endpoint.url = url
        for seed in seeds:
            seed(session)
        return {"admin_user_id": admin.id, "admin_project_id": admin_project.id}
