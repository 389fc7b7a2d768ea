"""Domains, projects and users: the rules of the identity directory.

Plain functions over a SQLAlchemy session, as Keystone behaves:

- names are unique per domain (domains: globally) and a clash is a Conflict;
- a project hangs under a parent in its own domain, the whole branch above it
  enabled, at most MAX_PROJECT_DEPTH levels below the domain; a project is
  disabled only after its subtree and deleted only when it is a leaf;
- a domain is deleted only once disabled (so nobody deletes the domain their
  own token lives in by accident), and deleting it removes everything in it;
- whatever ends a user's, a project's or a domain's standing (disabling,
  deleting, a new password) records a revocation event in the same
  transaction, and nothing is left pointing at a deleted row: role
  assignments, application credentials and default projects go with it.

Callers that change the directory use `unit_of_work`, which tells every
process about new revocation events once the transaction has committed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ciaostack.core import errors
from ciaostack.core.db.models import (
    ApplicationCredential,
    Domain,
    ImpliedRole,
    Project,
    Role,
    RoleAssignment,
    User,
    utcnow,
)
from ciaostack.core.db.session import Database
from ciaostack.core.identity import assignments, passwords
from ciaostack.core.identity.bootstrap import DEFAULT_DOMAIN_ID
from ciaostack.core.identity.lookup import found
from ciaostack.core.identity.revocation import Revocations

# Keystone's default max_project_tree_depth: levels of projects below the domain.
MAX_PROJECT_DEPTH = 5
_REVOKED = "ciaostack.identity.revoked"


# -- unit of work ---------------------------------------------------------------


@contextlib.contextmanager
def unit_of_work(db: Database, revocations: Revocations) -> Iterator[Session]:
    """A write transaction; revocations recorded in it are announced after commit.

    Announcing before the commit would let another process reload its index
    without the new event and keep accepting the revoked tokens until its
    next poll.
    """
    with db.session() as session:
        yield session
        revoked = bool(session.info.get(_REVOKED))
    if revoked:
        revocations.notify()


def _revoke(session: Session, revocations: Revocations, **match: str) -> None:
    revocations.add(session, **match)
    session.info[_REVOKED] = True


def _flush(session: Session, conflict: str) -> None:
    """Flush; a unique key hit by a concurrent writer is the same Conflict as ours."""
    try:
        session.flush()
    except IntegrityError as exc:
        raise errors.Conflict(conflict) from exc


# -- domains ----------------------------------------------------------------------


def get_domain(session: Session, domain_id: str) -> Domain:
    return found(session.get(Domain, domain_id), "domain", domain_id)


def list_domains(
    session: Session, name: str | None = None, enabled: bool | None = None
) -> list[Domain]:
    query = select(Domain).order_by(Domain.name)
    if name is not None:
        query = query.where(Domain.name == name)
    if enabled is not None:
        query = query.where(Domain.enabled.is_(enabled))
    return list(session.scalars(query))


def _domain_conflict(name: str) -> str:
    return f"Conflict occurred attempting to store domain - a domain named {name} exists."


def create_domain(
    session: Session,
    name: str,
    description: str = "",
    enabled: bool = True,
    extra: dict[str, Any] | None = None,
    domain_id: str | None = None,
) -> Domain:
    name = name.strip()
    if domain_id is not None and session.get(Domain, domain_id) is not None:
        raise errors.Conflict(
            f"Conflict occurred attempting to store domain - the id {domain_id} is taken."
        )
    if session.scalar(select(Domain.id).where(Domain.name == name)) is not None:
        raise errors.Conflict(_domain_conflict(name))
    domain = Domain(name=name, description=description, enabled=enabled, extra=extra or {})
    if domain_id is not None:
        domain.id = domain_id
    session.add(domain)
    _flush(session, _domain_conflict(name))
    return domain


def update_domain(
    session: Session, revocations: Revocations, domain_id: str, **changes: Any
) -> Domain:
    """`changes`: name, description, enabled, extra (merged into the old extra)."""
    domain = get_domain(session, domain_id)
    name = changes.get("name")
    if name is not None:
        name = name.strip()
        clash = session.scalar(select(Domain.id).where(Domain.name == name, Domain.id != domain_id))
        if clash is not None:
            raise errors.Conflict(_domain_conflict(name))
        domain.name = name
    if "description" in changes:
        domain.description = changes["description"] or ""
    if "extra" in changes:
        domain.extra = {**domain.extra, **changes["extra"]}
    if changes.get("enabled") is not None:
        if domain.enabled and not changes["enabled"]:
            # Every token of its users and of its projects ends now.
            _revoke(session, revocations, domain_id=domain_id)
        domain.enabled = changes["enabled"]
    _flush(session, _domain_conflict(domain.name))
    return domain


def delete_domain(session: Session, revocations: Revocations, domain_id: str) -> None:
    """Delete a disabled domain and everything in it."""
    domain = get_domain(session, domain_id)
    if domain.enabled:
        raise errors.Forbidden("Cannot delete a domain that is enabled: disable it first.")
    project_ids = list(session.scalars(select(Project.id).where(Project.domain_id == domain_id)))
    user_ids = list(session.scalars(select(User.id).where(User.domain_id == domain_id)))
    role_ids = list(session.scalars(select(Role.id).where(Role.domain_id == domain_id)))
    session.execute(
        delete(RoleAssignment).where(
            or_(
                RoleAssignment.user_id.in_(user_ids),
                RoleAssignment.role_id.in_(role_ids),
                (RoleAssignment.target_type == assignments.DOMAIN)
                & (RoleAssignment.target_id == domain_id),
                (RoleAssignment.target_type == assignments.PROJECT)
                & RoleAssignment.target_id.in_(project_ids),
            )
        )
    )
    session.execute(
        delete(ImpliedRole).where(
            or_(ImpliedRole.prior_role_id.in_(role_ids), ImpliedRole.implied_role_id.in_(role_ids))
        )
    )
    session.execute(delete(Role).where(Role.id.in_(role_ids)))
    _forget_projects(session, project_ids)
    session.execute(
        delete(ApplicationCredential).where(ApplicationCredential.user_id.in_(user_ids))
    )
    session.execute(delete(User).where(User.domain_id == domain_id))
    # One statement: parent/child links inside the domain are checked at its end.
    session.execute(delete(Project).where(Project.domain_id == domain_id))
    session.delete(domain)
    _revoke(session, revocations, domain_id=domain_id)
    session.flush()


# -- projects ---------------------------------------------------------------------


def get_project(session: Session, project_id: str) -> Project:
    return found(session.get(Project, project_id), "project", project_id)


def _matches_tags(
    tags: Iterable[str],
    all_of: list[str] | None,
    any_of: list[str] | None,
    not_all_of: list[str] | None,
    not_any_of: list[str] | None,
) -> bool:
    have = set(tags)
    return (
        (all_of is None or set(all_of) <= have)
        and (any_of is None or bool(set(any_of) & have))
        and (not_all_of is None or not set(not_all_of) <= have)
        and (not_any_of is None or not set(not_any_of) & have)
    )


def list_projects(
    session: Session,
    name: str | None = None,
    domain_id: str | None = None,
    enabled: bool | None = None,
    parent_id: str | None = None,
    ids: Iterable[str] | None = None,
    tags: list[str] | None = None,
    tags_any: list[str] | None = None,
    not_tags: list[str] | None = None,
    not_tags_any: list[str] | None = None,
) -> list[Project]:
    """Projects matching every filter given; a domain's id as `parent_id` means
    its top-level projects, as Keystone shows the domain as their parent."""
    query = select(Project).order_by(Project.name, Project.id)
    if name is not None:
        query = query.where(Project.name == name)
    if domain_id is not None:
        query = query.where(Project.domain_id == domain_id)
    if enabled is not None:
        query = query.where(Project.enabled.is_(enabled))
    if parent_id is not None:
        query = query.where(
            or_(
                Project.parent_id == parent_id,
                Project.parent_id.is_(None) & (Project.domain_id == parent_id),
            )
        )
    if ids is not None:
        query = query.where(Project.id.in_(list(ids)))
    rows = session.scalars(query)
    return [p for p in rows if _matches_tags(p.tags, tags, tags_any, not_tags, not_tags_any)]


def _project_conflict(name: str, domain_id: str) -> str:
    return (
        "Conflict occurred attempting to store project - a project named "
        f"{name} exists in domain {domain_id}."
    )


def _ancestors(session: Session, project: Project) -> list[Project]:
    """The project's parents, nearest first, up to its top-level project."""
    chain: list[Project] = []
    seen = {project.id}
    parent_id = project.parent_id
    while parent_id is not None and parent_id not in seen:
        parent = session.get(Project, parent_id)
        if parent is None:
            break
        chain.append(parent)
        seen.add(parent.id)
        parent_id = parent.parent_id
    return chain


def _children_ids(session: Session, project_id: str) -> list[str]:
    return list(session.scalars(select(Project.id).where(Project.parent_id == project_id)))


def _subtree(session: Session, project_id: str) -> list[Project]:
    """Every project below this one."""
    found: list[Project] = []
    frontier = [project_id]
    seen = {project_id}
    while frontier:
        rows = session.scalars(select(Project).where(Project.parent_id.in_(frontier))).all()
        frontier = [p.id for p in rows if p.id not in seen]
        seen.update(frontier)
        found.extend(p for p in rows if p.id in frontier)
    return found


def create_project(
    session: Session,
    name: str,
    domain_id: str | None = None,
    parent_id: str | None = None,
    description: str = "",
    enabled: bool = True,
    tags: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Project:
    """Without a domain the project joins its parent's domain, else `default`.

    A parent given as the domain's own id means a top-level project. Unknown
    domains or parents and a disabled branch are bad input (400), as in Keystone.
    """
    name = name.strip()
    parent: Project | None = None
    if parent_id is not None and parent_id != domain_id:
        parent = session.get(Project, parent_id)
        if parent is None:
            if session.get(Domain, parent_id) is None:
                raise errors.BadRequest(f"Could not find parent project: {parent_id}.")
            # The parent is a domain: a top-level project of that domain.
            domain_id = domain_id or parent_id
            if domain_id != parent_id:
                raise errors.BadRequest("The parent is a domain other than the project's domain.")
        elif domain_id is not None and parent.domain_id != domain_id:
            raise errors.BadRequest(
                f"The parent {parent_id} is in domain {parent.domain_id}, not in {domain_id}."
            )
    domain_id = domain_id or (parent.domain_id if parent else DEFAULT_DOMAIN_ID)
    domain = session.get(Domain, domain_id)
    if domain is None:
        raise errors.BadRequest(f"Could not find domain: {domain_id}.")
    if not domain.enabled:
        raise errors.BadRequest(f"Cannot create a project in the disabled domain {domain_id}.")
    if parent is not None:
        branch = [parent, *_ancestors(session, parent)]
        disabled = [p.id for p in branch if not p.enabled]
        if disabled:
            raise errors.BadRequest(
                f"Cannot create a project below the disabled project {disabled[0]}."
            )
        if len(branch) + 1 > MAX_PROJECT_DEPTH:
            raise errors.Forbidden(
                f"Projects nest at most {MAX_PROJECT_DEPTH} levels below their domain."
            )
    clash = session.scalar(
        select(Project.id).where(Project.domain_id == domain_id, Project.name == name)
    )
    if clash is not None:
        raise errors.Conflict(_project_conflict(name, domain_id))
    project = Project(
        name=name,
        domain_id=domain_id,
        parent_id=parent.id if parent else None,
        description=description,
        enabled=enabled,
        tags=list(tags or []),
        extra=extra or {},
    )
    session.add(project)
    _flush(session, _project_conflict(name, domain_id))
    return project


def update_project(
    session: Session, revocations: Revocations, project_id: str, **changes: Any
) -> Project:
    """`changes`: name, description, enabled, tags, extra (merged), and domain_id
    or parent_id, which may only repeat the current value."""
    project = get_project(session, project_id)
    if "domain_id" in changes and changes["domain_id"] != project.domain_id:
        raise errors.BadRequest("A project's domain cannot change.")
    if "parent_id" in changes and changes["parent_id"] not in (
        project.parent_id or project.domain_id,
        project.parent_id,
    ):
        raise errors.Forbidden("A project's parent cannot change.")
    name = changes.get("name")
    if name is not None:
        name = name.strip()
        clash = session.scalar(
            select(Project.id).where(
                Project.domain_id == project.domain_id,
                Project.name == name,
                Project.id != project_id,
            )
        )
        if clash is not None:
            raise errors.Conflict(_project_conflict(name, project.domain_id))
        project.name = name
    if "description" in changes:
        project.description = changes["description"] or ""
    if changes.get("tags") is not None:
        project.tags = list(changes["tags"])
    if "extra" in changes:
        project.extra = {**project.extra, **changes["extra"]}
    enabled = changes.get("enabled")
    if enabled is True and not project.enabled:
        disabled = [p.id for p in _ancestors(session, project) if not p.enabled]
        if disabled:
            raise errors.Forbidden(
                f"Cannot enable project {project_id}: its parent {disabled[0]} is disabled."
            )
    if enabled is False and project.enabled:
        if any(p.enabled for p in _subtree(session, project_id)):
            raise errors.Forbidden(
                f"Cannot disable project {project_id}: projects below it are enabled."
            )
        _revoke(session, revocations, project_id=project_id)
    if enabled is not None:
        project.enabled = enabled
    _flush(session, _project_conflict(project.name, project.domain_id))
    return project


def _forget_projects(session: Session, project_ids: list[str]) -> None:
    """Remove what points at projects about to be deleted."""
    if not project_ids:
        return
    session.execute(
        delete(RoleAssignment).where(
            RoleAssignment.target_type == assignments.PROJECT,
            RoleAssignment.target_id.in_(project_ids),
        )
    )
    session.execute(
        delete(ApplicationCredential).where(ApplicationCredential.project_id.in_(project_ids))
    )
    session.execute(
        update(User).where(User.default_project_id.in_(project_ids)).values(default_project_id=None)
    )


def delete_project(session: Session, revocations: Revocations, project_id: str) -> None:
    project = get_project(session, project_id)
    if _children_ids(session, project_id):
        raise errors.Forbidden(
            f"Cannot delete project {project_id}: it has projects below it; delete them first."
        )
    _forget_projects(session, [project_id])
    session.delete(project)
    _revoke(session, revocations, project_id=project_id)
    session.flush()


def set_project_tags(session: Session, project_id: str, tags: list[str]) -> Project:
    project = get_project(session, project_id)
    project.tags = list(dict.fromkeys(tags))
    session.flush()
    return project


def add_project_tag(session: Session, project_id: str, tag: str) -> Project:
    project = get_project(session, project_id)
    if tag not in project.tags:
        project.tags = [*project.tags, tag]
    session.flush()
    return project


def remove_project_tag(session: Session, project_id: str, tag: str) -> Project:
    project = get_project(session, project_id)
    if tag not in project.tags:
        raise errors.NotFound(f"Could not find project tag: {tag}.")
    project.tags = [t for t in project.tags if t != tag]
    session.flush()
    return project


# -- users ------------------------------------------------------------------------


def get_user(session: Session, user_id: str) -> User:
    return found(session.get(User, user_id), "user", user_id)


def list_users(
    session: Session,
    name: str | None = None,
    domain_id: str | None = None,
    enabled: bool | None = None,
) -> list[User]:
    query = select(User).order_by(User.name, User.id)
    if name is not None:
        query = query.where(User.name == name)
    if domain_id is not None:
        query = query.where(User.domain_id == domain_id)
    if enabled is not None:
        query = query.where(User.enabled.is_(enabled))
    return list(session.scalars(query))


def user_projects(session: Session, user_id: str) -> set[str]:
    """Ids of the projects the user holds a role on (404 for an unknown user)."""
    get_user(session, user_id)
    return assignments.user_project_ids(session, user_id)


def _user_conflict(name: str, domain_id: str) -> str:
    return (
        f"Conflict occurred attempting to store user - a user named {name} "
        f"exists in domain {domain_id}."
    )


def _check_default_project(session: Session, project_id: str | None) -> None:
    """A default project may be missing (Keystone ignores it then), but not a domain."""
    if project_id and session.get(Domain, project_id) is not None:
        raise errors.BadRequest(f"A user's default project cannot be a domain: {project_id}.")


def create_user(
    session: Session,
    name: str,
    domain_id: str,
    hash_rounds: int,
    password: str | None = None,
    enabled: bool = True,
    default_project_id: str | None = None,
    description: str = "",
    extra: dict[str, Any] | None = None,
) -> User:
    name = name.strip()
    get_domain(session, domain_id)
    _check_default_project(session, default_project_id)
    clash = session.scalar(select(User.id).where(User.domain_id == domain_id, User.name == name))
    if clash is not None:
        raise errors.Conflict(_user_conflict(name, domain_id))
    user = User(
        name=name,
        domain_id=domain_id,
        enabled=enabled,
        default_project_id=default_project_id or None,
        description=description,
        extra=extra or {},
    )
    if password is not None:
        user.password_hash = passwords.hash_secret(password, hash_rounds)
        user.password_created_at = utcnow()
    session.add(user)
    _flush(session, _user_conflict(name, domain_id))
    return user


def update_user(
    session: Session,
    revocations: Revocations,
    user_id: str,
    hash_rounds: int,
    **changes: Any,
) -> User:
    """`changes`: name, enabled, password (None removes it), default_project_id,
    description, extra (merged), and domain_id, which may only repeat the current value.

    Disabling the user or setting a password ends every token the user holds.
    """
    user = get_user(session, user_id)
    if "domain_id" in changes and changes["domain_id"] != user.domain_id:
        raise errors.BadRequest("A user's domain cannot change.")
    name = changes.get("name")
    if name is not None:
        name = name.strip()
        clash = session.scalar(
            select(User.id).where(
                User.domain_id == user.domain_id, User.name == name, User.id != user_id
            )
        )
        if clash is not None:
            raise errors.Conflict(_user_conflict(name, user.domain_id))
        user.name = name
    if "default_project_id" in changes:
        _check_default_project(session, changes["default_project_id"])
        user.default_project_id = changes["default_project_id"] or None
    if "description" in changes:
        user.description = changes["description"] or ""
    if "extra" in changes:
        user.extra = {**user.extra, **changes["extra"]}
    revoke = False
    if "password" in changes:
        _set_password(user, changes["password"], hash_rounds)
        revoke = True
    if changes.get("enabled") is not None:
        revoke = revoke or (user.enabled and not changes["enabled"])
        user.enabled = changes["enabled"]
    if revoke:
        _revoke(session, revocations, user_id=user_id)
    _flush(session, _user_conflict(user.name, user.domain_id))
    return user


def _set_password(user: User, password: str | None, hash_rounds: int) -> None:
    if password is None:
        user.password_hash = None
        user.password_created_at = None
    else:
        user.password_hash = passwords.hash_secret(password, hash_rounds)
        user.password_created_at = utcnow()


def change_password(
    session: Session,
    revocations: Revocations,
    user_id: str,
    original_password: str,
    new_password: str,
    hash_rounds: int,
) -> None:
    """The user's own change: the original password is the proof, so an unknown
    user, a wrong password and a disabled user all get the same 401."""
    user = session.get(User, user_id)
    ok = passwords.check_secret(original_password, user.password_hash if user else None)
    if not ok or user is None or not user.enabled:
        raise errors.Unauthorized("Could not change the password: the original is not valid.")
    domain = session.get(Domain, user.domain_id)
    if domain is None or not domain.enabled:
        raise errors.Unauthorized("Could not change the password: the original is not valid.")
    _set_password(user, new_password, hash_rounds)
    _revoke(session, revocations, user_id=user_id)
    session.flush()


def delete_user(session: Session, revocations: Revocations, user_id: str) -> None:
    user = get_user(session, user_id)
    session.execute(delete(RoleAssignment).where(RoleAssignment.user_id == user_id))
    session.execute(delete(ApplicationCredential).where(ApplicationCredential.user_id == user_id))
    session.delete(user)
    _revoke(session, revocations, user_id=user_id)
    session.flush()
