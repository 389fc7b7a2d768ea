"""Roles, role inference rules, grants and the role-assignment listing.

Global roles are stored with domain_id '' (models.GLOBAL) so that the unique
key (domain_id, name) holds for them too; callers pass and get None. A
domain-specific role only ever infers other roles: it is never placed in a
token nor listed among effective assignments.

Anything that takes a role away from a user (revoking a grant, deleting a
role) records revocation events inside the caller's transaction, so tokens
issued before it stop working everywhere; the caller calls
`revocations.notify()` after the commit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ciaostack.core import errors
from ciaostack.core.db.models import (
    GLOBAL,
    ApplicationCredential,
    Domain,
    ImpliedRole,
    Project,
    Role,
    RoleAssignment,
    User,
)
from ciaostack.core.identity import assignments
from ciaostack.core.identity.assignments import DOMAIN, PROJECT
from ciaostack.core.identity.lookup import found
from ciaostack.core.identity.revocation import Revocations

# Roles no inference rule may imply, as Keystone's default: holding `admin`
# must always come from a grant somebody can see.
PROHIBITED_IMPLIED = frozenset({"admin"})


def _stored_domain(domain_id: str | None) -> str:
    return domain_id or GLOBAL


def public_domain_id(role: Role) -> str | None:
    return role.domain_id or None


# -- roles --------------------------------------------------------------------------


def get_role(session: Session, role_id: str) -> Role:
    return found(session.get(Role, role_id), "role", role_id)


def list_roles(
    session: Session, name: str | None = None, domain_id: str | None = None
) -> list[Role]:
    """Global roles unless a domain is named, as Keystone lists them."""
    query = select(Role).where(Role.domain_id == _stored_domain(domain_id))
    if name is not None:
        query = query.where(Role.name == name)
    return list(session.scalars(query.order_by(Role.name, Role.id)))


def _require_domain(session: Session, domain_id: str) -> Domain:
    return found(session.get(Domain, domain_id), "domain", domain_id)


def _name_taken(session: Session, name: str, domain_id: str, other_than: str | None) -> bool:
    query = select(Role.id).where(Role.domain_id == domain_id, Role.name == name)
    if other_than is not None:
        query = query.where(Role.id != other_than)
    return session.scalar(query) is not None


def _duplicate(name: str) -> errors.Conflict:
    return errors.Conflict(
        f"Conflict occurred attempting to store role - Duplicate entry found with name {name}."
    )


def create_role(
    session: Session,
    name: str,
    domain_id: str | None = None,
    description: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Role:
    if domain_id:
        _require_domain(session, domain_id)
    stored = _stored_domain(domain_id)
    if _name_taken(session, name, stored, None):
        raise _duplicate(name)
    role = Role(name=name, domain_id=stored, description=description or "", extra=extra or {})
    session.add(role)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create won the race
        raise _duplicate(name) from exc
    return role


def update_role(session: Session, role_id: str, changes: dict[str, Any]) -> Role:
    """`changes` holds name, description, domain_id and any extra attributes."""
    role = get_role(session, role_id)
    changes = dict(changes)
    if "domain_id" in changes and _stored_domain(changes.pop("domain_id")) != role.domain_id:
        raise errors.BadRequest("Update of `domain_id` is not allowed.")
    if "name" in changes:
        name = changes.pop("name")
        if name != role.name and _name_taken(session, name, role.domain_id, role.id):
            raise _duplicate(name)
        role.name = name
    if "description" in changes:
        role.description = changes.pop("description") or ""
    if changes:
        role.extra = {**(role.extra or {}), **changes}
    try:
        session.flush()
    except IntegrityError as exc:
        raise _duplicate(role.name) from exc
    return role


def _roles_implying(session: Session, role_id: str) -> set[str]:
    """The role and every role that implies it, directly or through others."""
    found = {role_id}
    frontier = {role_id}
    while frontier:
        priors = set(
            session.scalars(
                select(ImpliedRole.prior_role_id).where(ImpliedRole.implied_role_id.in_(frontier))
            )
        )
        frontier = priors - found
        found |= frontier
    return found


def _revoke_for(revocations: Revocations, session: Session, row: RoleAssignment) -> None:
    """End the tokens a grant's holder has for the grant's scope."""
    if row.target_type == PROJECT:
        revocations.add(session, user_id=row.user_id, project_id=row.target_id)
    else:
        revocations.add(session, user_id=row.user_id, domain_id=row.target_id)


def delete_role(session: Session, revocations: Revocations, role_id: str) -> None:
    """Delete a role with its grants and inference rules.

    Everyone who held it, directly or through a role implying it, loses
    their tokens for the scope concerned; as in Keystone, the application
    credentials of direct holders on a project are deleted as well.
    """
    get_role(session, role_id)
    holders = session.scalars(
        select(RoleAssignment).where(RoleAssignment.role_id.in_(_roles_implying(session, role_id)))
    ).all()
    seen: set[tuple[str, str, str]] = set()
    for row in holders:
        scope = (row.user_id, row.target_type, row.target_id)
        if scope not in seen:
            seen.add(scope)
            _revoke_for(revocations, session, row)
    for row in holders:
        if row.role_id == role_id and row.target_type == PROJECT and not row.inherited:
            session.execute(
                delete(ApplicationCredential).where(
                    ApplicationCredential.user_id == row.user_id,
                    ApplicationCredential.project_id == row.target_id,
                )
            )
    session.execute(delete(RoleAssignment).where(RoleAssignment.role_id == role_id))
    session.execute(
        delete(ImpliedRole).where(
            or_(ImpliedRole.prior_role_id == role_id, ImpliedRole.implied_role_id == role_id)
        )
    )
    session.execute(delete(Role).where(Role.id == role_id))


# -- inference rules ------------------------------------------------------------------


def create_implied_role(session: Session, prior_id: str, implied_id: str) -> tuple[Role, Role]:
    prior = get_role(session, prior_id)
    implied = get_role(session, implied_id)
    if implied.name in PROHIBITED_IMPLIED:
        raise errors.Forbidden(f"{implied_id} cannot be an implied roles.")
    if not prior.domain_id and implied.domain_id:
        raise errors.Forbidden("Global role cannot imply a domain-specific role.")
    if session.get(ImpliedRole, (prior_id, implied_id)) is not None:
        raise errors.Conflict(
            "Conflict occurred attempting to store implied_role - Duplicate entry."
        )
    session.add(ImpliedRole(prior_role_id=prior_id, implied_role_id=implied_id))
    try:
        session.flush()
    except IntegrityError as exc:
        raise errors.Conflict(
            "Conflict occurred attempting to store implied_role - Duplicate entry."
        ) from exc
    return prior, implied


def get_implied_role(session: Session, prior_id: str, implied_id: str) -> tuple[Role, Role]:
    prior = get_role(session, prior_id)
    implied = get_role(session, implied_id)
    if session.get(ImpliedRole, (prior_id, implied_id)) is None:
        raise errors.NotFound(f"{prior_id} does not imply {implied_id}.")
    return prior, implied


def delete_implied_role(session: Session, prior_id: str, implied_id: str) -> None:
    get_implied_role(session, prior_id, implied_id)
    session.execute(
        delete(ImpliedRole).where(
            ImpliedRole.prior_role_id == prior_id, ImpliedRole.implied_role_id == implied_id
        )
    )


def list_implied_roles(session: Session, prior_id: str) -> tuple[Role, list[Role]]:
    """The roles a role implies directly (not transitively), as Keystone lists them."""
    prior = get_role(session, prior_id)
    implied = session.scalars(
        select(Role)
        .join(ImpliedRole, ImpliedRole.implied_role_id == Role.id)
        .where(ImpliedRole.prior_role_id == prior_id)
        .order_by(Role.name, Role.id)
    ).all()
    return prior, list(implied)


def list_inference_rules(session: Session) -> list[tuple[Role, list[Role]]]:
    """Every rule, grouped by prior role."""
    rules = session.scalars(select(ImpliedRole)).all()
    ids = {r.prior_role_id for r in rules} | {r.implied_role_id for r in rules}
    roles = {r.id: r for r in session.scalars(select(Role).where(Role.id.in_(ids)))} if ids else {}
    grouped: dict[str, list[Role]] = {}
    for rule in rules:
        grouped.setdefault(rule.prior_role_id, []).append(roles[rule.implied_role_id])
    ordered = sorted(grouped, key=lambda i: (roles[i].name, i))
    return [(roles[i], sorted(grouped[i], key=lambda r: (r.name, r.id))) for i in ordered]


# -- grants -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    """What a grant is on: a project, a domain, or (inherited) every project of a domain."""

    type: str
    id: str
    inherited: bool = False


def _check_grant_parts(session: Session, user_id: str, target: Target) -> None:
    if target.type == PROJECT:
        if session.get(Project, target.id) is None:
            raise errors.NotFound(f"Could not find project: {target.id}.")
    elif target.type == DOMAIN:
        _require_domain(session, target.id)
    else:
        raise ValueError(f"unknown target type {target.type}")
    if session.get(User, user_id) is None:
        raise errors.NotFound(f"Could not find user: {user_id}.")


def _assignment_key(user_id: str, target: Target, role_id: str) -> tuple[str, str, str, str, bool]:
    return (user_id, target.type, target.id, role_id, target.inherited)


def add_grant(session: Session, user_id: str, target: Target, role_id: str) -> None:
    """Idempotent, as Keystone's PUT is."""
    role = get_role(session, role_id)
    _check_grant_parts(session, user_id, target)
    if target.type == PROJECT and role.domain_id:
        project = session.get(Project, target.id)
        if project is not None and project.domain_id != role.domain_id:
            raise errors.Forbidden(
                f"Project {target.id} must be in the same domain as the role {role_id} "
                "being assigned."
            )
    assignments.grant(session, user_id, target.type, target.id, role_id, target.inherited)


def check_grant(session: Session, user_id: str, target: Target, role_id: str) -> Role:
    role = get_role(session, role_id)
    _check_grant_parts(session, user_id, target)
    if session.get(RoleAssignment, _assignment_key(user_id, target, role_id)) is None:
        raise errors.NotFound(
            f"Could not find role assignment with role: {role_id}, user or group: {user_id}, "
            f"project, domain, or system: {target.id}."
        )
    return role


def list_grants(session: Session, user_id: str, target: Target) -> list[Role]:
    _check_grant_parts(session, user_id, target)
    return list(
        session.scalars(
            select(Role)
            .join(RoleAssignment, RoleAssignment.role_id == Role.id)
            .where(
                RoleAssignment.user_id == user_id,
                RoleAssignment.target_type == target.type,
                RoleAssignment.target_id == target.id,
                RoleAssignment.inherited.is_(target.inherited),
            )
            .order_by(Role.name, Role.id)
        )
    )


def revoke_grant(
    session: Session, revocations: Revocations, user_id: str, target: Target, role_id: str
) -> None:
    """Remove a grant; the user's tokens for that scope stop working."""
    check_grant(session, user_id, target, role_id)
    row = session.get(RoleAssignment, _assignment_key(user_id, target, role_id))
    _revoke_for(revocations, session, row)
    session.delete(row)
    session.flush()


# -- the role-assignment listing ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Assignment:
    """One row of GET /v3/role_assignments.

    In effective mode a row may come from an inherited domain grant
    (`from_domain_id`) or from an inference rule (`prior_role_id` implied
    `role_id`); `granted_role_id` is then the role of the grant behind it.
    """

    user_id: str
    role_id: str
    project_id: str | None = None
    domain_id: str | None = None
    inherited: bool = False
    from_domain_id: str | None = None
    prior_role_id: str | None = None
    granted_role_id: str | None = None

    @property
    def grant_role_id(self) -> str:
        return self.granted_role_id or self.role_id


def _row(a: RoleAssignment) -> Assignment:
    if a.target_type == PROJECT:
        return Assignment(a.user_id, a.role_id, project_id=a.target_id, inherited=a.inherited)
    return Assignment(a.user_id, a.role_id, domain_id=a.target_id, inherited=a.inherited)


def list_assignments(
    session: Session,
    *,
    user_id: str | None = None,
    role_id: str | None = None,
    project_id: str | None = None,
    domain_id: str | None = None,
    inherited: bool | None = None,
    effective: bool = False,
) -> list[Assignment]:
    """Keystone's listing: grants as stored or, when `effective`, the roles a token would get.

    `inherited` None means both inherited and direct grants, True only
    inherited ones, False only direct ones.
    """
    if project_id and domain_id:
        raise errors.BadRequest("Specify a domain or project, not both.")
    if effective and inherited and domain_id:
        raise errors.BadRequest(
            "Combining effective, domain and inherited filters will always result in an empty list."
        )
    base = select(RoleAssignment)
    if user_id is not None:
        base = base.where(RoleAssignment.user_id == user_id)
    if not effective:
        query = base
        if role_id is not None:
            query = query.where(RoleAssignment.role_id == role_id)
        if project_id is not None:
            query = query.where(
                RoleAssignment.target_type == PROJECT, RoleAssignment.target_id == project_id
            )
        if domain_id is not None:
            query = query.where(
                RoleAssignment.target_type == DOMAIN, RoleAssignment.target_id == domain_id
            )
        if inherited is not None:
            query = query.where(RoleAssignment.inherited.is_(inherited))
        return [_row(a) for a in session.scalars(_ordered(query))]
    rows = _effective_grants(session, base, project_id, domain_id, inherited)
    rows = _add_implied(session, rows)
    global_ids = set(session.scalars(select(Role.id).where(Role.domain_id == GLOBAL)))
    return [
        r for r in rows if r.role_id in global_ids and (role_id is None or r.role_id == role_id)
    ]


def _ordered(query):  # noqa: ANN001, ANN202 - a Select of RoleAssignment
    return query.order_by(
        RoleAssignment.user_id,
        RoleAssignment.target_type,
        RoleAssignment.target_id,
        RoleAssignment.role_id,
    )


def _effective_grants(
    session: Session,
    base,  # noqa: ANN001 - a Select of RoleAssignment
    project_id: str | None,
    domain_id: str | None,
    inherited: bool | None,
) -> list[Assignment]:
    """Direct grants on the target, plus inherited domain grants spread over their projects."""
    rows: list[Assignment] = []
    if inherited is not True:
        query = base.where(RoleAssignment.inherited.is_(False))
        if project_id is not None:
            query = query.where(
                RoleAssignment.target_type == PROJECT, RoleAssignment.target_id == project_id
            )
        elif domain_id is not None:
            query = query.where(
                RoleAssignment.target_type == DOMAIN, RoleAssignment.target_id == domain_id
            )
        rows.extend(_row(a) for a in session.scalars(_ordered(query)))
    if inherited is False or domain_id is not None:
        return rows
    query = base.where(RoleAssignment.inherited.is_(True), RoleAssignment.target_type == DOMAIN)
    if project_id is not None:
        project = session.get(Project, project_id)
        if project is None:
            return rows
        query = query.where(RoleAssignment.target_id == project.domain_id)
    for grant in session.scalars(_ordered(query)):
        if project_id is not None:
            projects: Iterable[str] = [project_id]
        else:
            projects = session.scalars(
                select(Project.id).where(Project.domain_id == grant.target_id).order_by(Project.id)
            )
        rows.extend(
            Assignment(grant.user_id, grant.role_id, project_id=p, from_domain_id=grant.target_id)
            for p in projects
        )
    return rows


def _add_implied(session: Session, rows: list[Assignment]) -> list[Assignment]:
    """Follow inference rules from every row; each implied row names the role that implied it."""
    rules: dict[str, list[str]] = {}
    for rule in session.scalars(select(ImpliedRole)):
        rules.setdefault(rule.prior_role_id, []).append(rule.implied_role_id)
    result = list(rows)
    seen = set(rows)
    pending = list(rows)
    while pending:
        row = pending.pop(0)
        for implied in sorted(rules.get(row.role_id, ())):
            derived = dataclasses.replace(
                row, role_id=implied, prior_role_id=row.role_id, granted_role_id=row.grant_role_id
            )
            if derived not in seen:
                seen.add(derived)
                result.append(derived)
                pending.append(derived)
    return result


@dataclasses.dataclass(frozen=True)
class Names:
    """What include_names needs, looked up once for a whole listing."""

    roles: dict[str, Role]
    users: dict[str, User]
    projects: dict[str, Project]
    domains: dict[str, Domain]


def names_for(session: Session, rows: list[Assignment]) -> Names:
    def load(model, ids: set[str]) -> dict:  # noqa: ANN001
        if not ids:
            return {}
        return {o.id: o for o in session.scalars(select(model).where(model.id.in_(ids)))}

    roles = load(Role, {r.role_id for r in rows})
    users = load(User, {r.user_id for r in rows})
    projects = load(Project, {r.project_id for r in rows if r.project_id})
    domain_ids = {r.domain_id for r in rows if r.domain_id}
    domain_ids |= {u.domain_id for u in users.values()}
    domain_ids |= {p.domain_id for p in projects.values()}
    domain_ids |= {r.domain_id for r in roles.values() if r.domain_id}
    return Names(roles=roles, users=users, projects=projects, domains=load(Domain, domain_ids))
