"""Application credentials: a user hands (some of) their roles on one project to a program.

The secret is shown once, in the create response, and stored as a bcrypt
hash. A credential holds at most the roles its creator had on the project
when creating it; a token issued from it gets those roles that the user
still holds (see Identity._context), so revoking a grant also narrows every
credential built on it. A token that came from a restricted credential may
not create or delete credentials, so a leaked credential cannot mint more.
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ciaostack.core import errors
from ciaostack.core.db.models import GLOBAL, ApplicationCredential, Role, utcnow
from ciaostack.core.identity import assignments, passwords
from ciaostack.core.identity.context import AuthContext
from ciaostack.core.identity.revocation import Revocations

# Keystone generates 64 random bytes, URL-safe base64 without padding.
SECRET_BYTES = 64
UNASSIGNED_ROLE = (
    "Invalid application credential: Cannot create an application credential with unassigned role."
)


def new_secret(given: str | None, rounds: int) -> tuple[str, str]:
    """(secret, hash): the caller's secret or a generated one.

    Called before the write transaction opens, so the slow hash does not
    hold the database's write lock.
    """
    secret = given or secrets.token_urlsafe(SECRET_BYTES)
    return secret, passwords.hash_secret(secret, rounds)


def parse_expiry(value: str | None) -> dt.datetime | None:
    """ISO 8601, with or without a zone (none means UTC); naive UTC out; 400 if past."""
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
        if parsed.tzinfo is not None:
            # Year 1 or 9999 with an offset leaves datetime's range: OverflowError.
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    except (ValueError, OverflowError) as exc:
        raise errors.BadRequest("Timestamp not in expected format.") from exc
    if parsed <= utcnow():
        raise errors.BadRequest("The 'expires_at' must not be before now.")
    return parsed


def require_unrestricted(caller: AuthContext) -> None:
    """A token from a restricted credential cannot manage credentials (403 as Keystone)."""
    if caller.app_cred_id and not caller.app_cred_unrestricted:
        raise errors.Forbidden(
            "Using method 'application_credential' is not allowed for managing additional "
            "application credentials."
        )


def require_creator(caller: AuthContext, user_id: str) -> str:
    """Who may create a credential for `user_id`: that user, with a project-scoped token
    that did not come from a restricted credential. Cheap, so callers check it before
    hashing. Returns the project the credential will be for."""
    if caller.user_id != user_id:
        raise errors.Forbidden("Cannot create an application credential for another user.")
    require_unrestricted(caller)
    if not caller.project_id:
        raise errors.BadRequest(
            "Invalid application credential: a project-scoped token is needed to create one."
        )
    return caller.project_id


def _caller_role_ids(session: Session, caller: AuthContext, project_id: str) -> set[str]:
    """What the caller may delegate: their token roles on the project, read afresh."""
    held = {r.id for r in assignments.token_roles(session, caller.user_id, project_id=project_id)}
    if caller.app_cred_id:
        parent = session.get(ApplicationCredential, caller.app_cred_id)
        allowed = assignments.implied_closure(session, set(parent.role_ids)) if parent else set()
        held &= allowed
    return held


def _role_by_name(session: Session, name: str) -> Role:
    found = session.scalars(select(Role).where(Role.name == name)).all()
    if not found:
        raise errors.NotFound(f"Role {name} is not defined.")
    if len(found) > 1:
        raise errors.BadRequest(
            f"There are multiple role entities named '{name}'. Please use ID instead of names "
            "to resolve the ambiguity."
        )
    return found[0]


def _requested_role_ids(session: Session, requested: list[dict[str, str]]) -> set[str]:
    """Roles named by id or name, with the global roles they imply (Keystone adds those too)."""
    ids = {
        ref["id"] if ref.get("id") else _role_by_name(session, ref["name"]).id for ref in requested
    }
    implied = assignments.implied_closure(session, ids) - ids
    if implied:
        ids |= set(
            session.scalars(select(Role.id).where(Role.id.in_(implied), Role.domain_id == GLOBAL))
        )
    return ids


def create(
    session: Session,
    caller: AuthContext,
    user_id: str,
    *,
    name: str,
    secret_hash: str,
    description: str | None = None,
    expires_at: dt.datetime | None = None,
    unrestricted: bool = False,
    roles: list[dict[str, str]] | None = None,
) -> ApplicationCredential:
    """A credential for the caller's own user on the caller's project."""
    project_id = require_creator(caller, user_id)
    held = _caller_role_ids(session, caller, project_id)
    wanted = _requested_role_ids(session, roles) if roles else held
    if not wanted or not wanted <= held:
        raise errors.BadRequest(UNASSIGNED_ROLE)
    if _find_by_name(session, user_id, name) is not None:
        raise _duplicate(name)
    ordered = session.scalars(select(Role).where(Role.id.in_(wanted)).order_by(Role.name)).all()
    cred = ApplicationCredential(
        name=name,
        user_id=user_id,
        project_id=project_id,
        secret_hash=secret_hash,
        description=description or "",
        expires_at=expires_at,
        unrestricted=bool(unrestricted),
        role_ids=[r.id for r in ordered],
    )
    session.add(cred)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create with the same name won
        raise _duplicate(name) from exc
    return cred


def _duplicate(name: str) -> errors.Conflict:
    return errors.Conflict(
        "Conflict occurred attempting to store application_credential - "
        f"Duplicate entry found with name {name}."
    )


def _find_by_name(session: Session, user_id: str, name: str) -> ApplicationCredential | None:
    return session.scalar(
        select(ApplicationCredential).where(
            ApplicationCredential.user_id == user_id, ApplicationCredential.name == name
        )
    )


def find(session: Session, cred_id: str) -> ApplicationCredential | None:
    return session.get(ApplicationCredential, cred_id)


def get(session: Session, user_id: str, cred_id: str) -> ApplicationCredential:
    """The user's credential; 404 for an unknown id or another user's credential."""
    cred = session.get(ApplicationCredential, cred_id)
    if cred is None or cred.user_id != user_id:
        raise errors.NotFound(f"Could not find Application Credential: {cred_id}.")
    return cred


def list_for_user(
    session: Session, user_id: str, name: str | None = None
) -> list[ApplicationCredential]:
    query = select(ApplicationCredential).where(ApplicationCredential.user_id == user_id)
    if name is not None:
        query = query.where(ApplicationCredential.name == name)
    return list(session.scalars(query.order_by(ApplicationCredential.name)))


def roles_of(session: Session, cred: ApplicationCredential) -> list[Role]:
    """The credential's roles that still exist."""
    if not cred.role_ids:
        return []
    return list(session.scalars(select(Role).where(Role.id.in_(cred.role_ids)).order_by(Role.name)))


def delete(
    session: Session, revocations: Revocations, caller: AuthContext, user_id: str, cred_id: str
) -> None:
    """Delete a credential; every token issued from it stops working."""
    require_unrestricted(caller)
    cred = get(session, user_id, cred_id)
    revocations.add(session, app_cred_id=cred.id)
    session.delete(cred)
    session.flush()
