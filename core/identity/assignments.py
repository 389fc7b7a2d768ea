"""Role assignments and the roles they confer, implied roles included.

A role on a domain marked `inherited` applies to every project of that
domain, not to the domain itself. Implied roles (admin -> member -> reader)
are followed transitively, so holding `admin` confers all three.
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ciaostack.core.db.models import GLOBAL, ImpliedRole, Project, Role, RoleAssignment

PROJECT = "project"
DOMAIN = "domain"


def implied_closure(session: Session, role_ids: set[str]) -> set[str]:
    closure = set(role_ids)
    frontier = set(role_ids)
    while frontier:
        found = set(
            session.scalars(
                select(ImpliedRole.implied_role_id).where(ImpliedRole.prior_role_id.in_(frontier))
            )
        )
        frontier = found - closure
        closure |= frontier
    return closure


def direct_role_ids(
    session: Session, user_id: str, project_id: str | None = None, domain_id: str | None = None
) -> set[str]:
    """Roles assigned to the user on the target (inheritance applied, no implications)."""
    if project_id is not None:
        project = session.get(Project, project_id)
        if project is None:
            return set()
        condition = or_(
            and_(
                RoleAssignment.target_type == PROJECT,
                RoleAssignment.target_id == project_id,
                RoleAssignment.inherited.is_(False),
            ),
            and_(
                RoleAssignment.target_type == DOMAIN,
                RoleAssignment.target_id == project.domain_id,
                RoleAssignment.inherited.is_(True),
            ),
        )
    elif domain_id is not None:
        condition = and_(
            RoleAssignment.target_type == DOMAIN,
            RoleAssignment.target_id == domain_id,
            RoleAssignment.inherited.is_(False),
        )
    else:
        return set()
    return set(
        session.scalars(
            select(RoleAssignment.role_id).where(RoleAssignment.user_id == user_id, condition)
        )
    )


def effective_roles(
    session: Session, user_id: str, project_id: str | None = None, domain_id: str | None = None
) -> list[Role]:
    ids = implied_closure(session, direct_role_ids(session, user_id, project_id, domain_id))
    if not ids:
        return []
    return list(session.scalars(select(Role).where(Role.id.in_(ids)).order_by(Role.name)))


def token_roles(
    session: Session, user_id: str, project_id: str | None = None, domain_id: str | None = None
) -> list[Role]:
    """The roles a token carries: domain-specific roles only imply others, as in Keystone."""
    return [
        r for r in effective_roles(session, user_id, project_id, domain_id) if r.domain_id == GLOBAL
    ]


def user_project_ids(session: Session, user_id: str) -> set[str]:
    """Projects the user holds any role on, directly or inherited from a domain."""
    direct = set(
        session.scalars(
            select(RoleAssignment.target_id).where(
                RoleAssignment.user_id == user_id,
                RoleAssignment.target_type == PROJECT,
                RoleAssignment.inherited.is_(False),
            )
        )
    )
    inherited_domains = set(
        session.scalars(
            select(RoleAssignment.target_id).where(
                RoleAssignment.user_id == user_id,
                RoleAssignment.target_type == DOMAIN,
                RoleAssignment.inherited.is_(True),
            )
        )
    )
    if inherited_domains:
        direct |= set(
            session.scalars(select(Project.id).where(Project.domain_id.in_(inherited_domains)))
        )
    return direct


def user_domain_ids(session: Session, user_id: str) -> set[str]:
    return set(
        session.scalars(
            select(RoleAssignment.target_id).where(
                RoleAssignment.user_id == user_id,
                RoleAssignment.target_type == DOMAIN,
                RoleAssignment.inherited.is_(False),
            )
        )
    )


def grant(
    session: Session,
    user_id: str,
    target_type: str,
    target_id: str,
    role_id: str,
    inherited: bool = False,
) -> None:
    """Idempotent, as Keystone's PUT grant is."""
    key = (user_id, target_type, target_id, role_id, inherited)
    if session.get(RoleAssignment, key) is None:
        session.add(
            RoleAssignment(
                user_id=user_id,
                target_type=target_type,
                target_id=target_id,
                role_id=role_id,
                inherited=inherited,
            )
        )
        session.flush()
