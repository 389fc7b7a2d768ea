"""Authentication, token issue and validation: the identity core's hot path.

Validation is cached per process (token -> AuthContext); a cache hit costs a
dictionary lookup, an expiry check and a revocation-index check, no database
round trip. Anything that should end a token early (revocation, password
change, user or project disabled, role removed) records a revocation event.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from ciaostack.core import errors
from ciaostack.core.config import Config
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
from ciaostack.core.identity.cache import TTLCache
from ciaostack.core.identity.catalog import build_catalog
from ciaostack.core.identity.context import AuthContext
from ciaostack.core.identity.keys import KeyRepository
from ciaostack.core.identity.revocation import Revocations
from ciaostack.core.identity.tokens import TokenCodec, TokenPayload

AUTH_FAILED = "The request you have made requires authentication."
# One answer for a scope that does not exist and one the user holds no role on, so a
# user cannot learn which project and domain ids or names exist elsewhere.
SCOPE_REFUSED = "The user has no role on the requested scope."
CATALOG_TTL = 2.0
# Names and roles of a scope, shared by every token issued or validated for it.
# An identity write on this host drops them at once (see _announce_identity_writes);
# a write on another host shows within this many seconds.
SCOPE_TTL = 2.0
# Rows whose change alters what a token for a scope says.
_SCOPE_MODELS = (ApplicationCredential, Domain, ImpliedRole, Project, Role, RoleAssignment, User)
_CHANGED = "ciaostack.identity.changed"


@dataclasses.dataclass(frozen=True)
class NamedRef:
    """An object named by id, or by name within a domain given by id or name."""

    id: str | None = None
    name: str | None = None
    domain_id: str | None = None
    domain_name: str | None = None


@dataclasses.dataclass(frozen=True)
class Scope:
    project: NamedRef | None = None
    domain: NamedRef | None = None
    unscoped: bool = False


def new_audit_id() -> str:
    return secrets.token_urlsafe(16)[:22]


class Identity:
    def __init__(self, conf: Config, db: Database) -> None:
        self.db = db
        self.lifetime = dt.timedelta(seconds=conf.get("identity", "token_lifetime"))
        self.hash_rounds = conf.get("identity", "password_hash_rounds")
        self.keys = KeyRepository(conf.key_repository, conf.get("identity", "max_active_keys"))
        self.codec = TokenCodec(self.keys)
        self.revocations = Revocations(
            db,
            conf.home / "revocation.stamp",
            poll=conf.get("identity", "revocation_poll"),
            keep=self.lifetime + dt.timedelta(days=1),
        )
        self._tokens: TTLCache[AuthContext] = TTLCache(conf.get("identity", "cache_ttl"))
        self._catalog: TTLCache[list[dict[str, Any]]] = TTLCache(CATALOG_TTL, maxsize=1)
        self._scope_ids: TTLCache[tuple[str | None, str | None]] = TTLCache(SCOPE_TTL)
        self._scopes: TTLCache[AuthContext] = TTLCache(SCOPE_TTL)
        passwords.set_dummy_rounds(self.hash_rounds)
        self._announce_identity_writes()

    def _announce_identity_writes(self) -> None:
        """Any committed write to identity rows through this process's database
        touches the revocation stamp, so every worker's scope caches start afresh."""

        def flushed(session: Session, _flush: UOWTransaction) -> None:
            rows = (*session.new, *session.dirty, *session.deleted)
            if any(isinstance(row, _SCOPE_MODELS) for row in rows):
                session.info[_CHANGED] = True

        def executed(state: ORMExecuteState) -> None:
            if (state.is_update or state.is_delete) and any(
                m.class_ in _SCOPE_MODELS for m in state.all_mappers
            ):
                state.session.info[_CHANGED] = True

        def committed(session: Session) -> None:
            if session.info.pop(_CHANGED, False):
                self.revocations.notify()

        factory = self.db.sessions
        event.listen(factory, "after_flush", flushed)
        event.listen(factory, "do_orm_execute", executed)
        event.listen(factory, "after_commit", committed)

    # -- authentication methods: each returns the authenticated user's id --------

    def check_password(self, user: NamedRef, password: str) -> str:
        """The same 401 for an unknown user, a wrong password or a disabled user."""
        with self.db.session(readonly=True) as session:
            row = _find_user(session, user)
            hashed = row.password_hash if row is not None else None
            ok = passwords.check_secret(password, hashed)
            if not ok or row is None or not row.enabled or not _domain_enabled(session, row):
                raise errors.Unauthorized(AUTH_FAILED)
            return row.id

    def check_app_cred(
        self, secret: str, cred_id: str | None, name: str | None, user: NamedRef | None
    ) -> ApplicationCredential:
        with self.db.session(readonly=True) as session:
            cred: ApplicationCredential | None = None
            if cred_id:
                cred = session.get(ApplicationCredential, cred_id)
            elif name and user is not None:
                owner = _find_user(session, user)
                if owner is not None:
                    cred = session.scalar(
                        select(ApplicationCredential).where(
                            ApplicationCredential.user_id == owner.id,
                            ApplicationCredential.name == name,
                        )
                    )
            ok = passwords.check_secret(secret, cred.secret_hash if cred else None)
            if not ok or cred is None:
                raise errors.Unauthorized(AUTH_FAILED)
            if cred.expires_at is not None and cred.expires_at <= utcnow():
                raise errors.Unauthorized(AUTH_FAILED)
            session.expunge(cred)
            return cred

    # -- issue ------------------------------------------------------------------

    def issue(
        self,
        user_id: str,
        methods: list[str],
        scope: Scope,
        parent: AuthContext | None = None,
        app_cred: ApplicationCredential | None = None,
    ) -> tuple[str, AuthContext]:
        """Create a token for an authenticated user; returns (token id, context)."""
        now = utcnow()
        expires = now + self.lifetime
        audit_ids = [new_audit_id()]
        if parent is not None:
            if parent.app_cred_id:
                raise errors.Forbidden("A token from an application credential cannot be rescoped.")
            expires = min(expires, parent.expires_at or expires)
            audit_ids.append(parent.audit_ids[-1])
            methods = list(dict.fromkeys(methods + parent.methods))
        project_id, domain_id = self._scope(user_id, scope, app_cred)
        if app_cred is not None and app_cred.expires_at is not None:
            expires = min(expires, app_cred.expires_at)
        payload = TokenPayload(
            user_id=user_id,
            methods=tuple(methods),
            issued_at=now,
            expires_at=expires,
            audit_ids=tuple(audit_ids),
            project_id=project_id,
            domain_id=domain_id,
            app_cred_id=app_cred.id if app_cred else None,
        )
        ctx = self._context(payload)
        token = self.codec.encode(payload)
        self._tokens.put(token, ctx)
        return token, ctx

    def _scope(
        self, user_id: str, scope: Scope, app_cred: ApplicationCredential | None
    ) -> tuple[str | None, str | None]:
        """(project id, domain id) of the requested scope; cached like names and roles."""
        # Scope is frozen, so hashable: a tuple key costs a fifth of formatting its repr.
        key = (user_id, app_cred.id if app_cred else "", scope, self.revocations.generation())
        ids = self._scope_ids.get(key)
        if ids is None:
            with self.db.session(readonly=True) as session:
                ids = self._resolve_scope(session, user_id, scope, app_cred)
            self._scope_ids.put(key, ids)
        return ids

    def _resolve_scope(
        self,
        session: Session,
        user_id: str,
        scope: Scope,
        app_cred: ApplicationCredential | None,
    ) -> tuple[str | None, str | None]:
        if app_cred is not None:
            if scope.domain is not None or scope.unscoped:
                raise errors.Unauthorized("An application credential is scoped to its project.")
            if scope.project is not None:
                project = _find_project(session, scope.project)
                if project is None or project.id != app_cred.project_id:
                    raise errors.Unauthorized("An application credential is scoped to its project.")
            return app_cred.project_id, None
        if scope.unscoped:
            return None, None
        if scope.project is not None:
            project = _find_project(session, scope.project)
            if project is None:
                raise errors.Unauthorized(SCOPE_REFUSED)
            return project.id, None
        if scope.domain is not None:
            domain = _find_domain(session, scope.domain)
            if domain is None:
                raise errors.Unauthorized(SCOPE_REFUSED)
            return None, domain.id
        user = session.get(User, user_id)
        if user is not None and user.default_project_id:
            project = session.get(Project, user.default_project_id)
            if (
                project is not None
                and project.enabled
                and assignments.direct_role_ids(session, user_id, project_id=project.id)
            ):
                return project.id, None
        return None, None

    # -- validation ---------------------------------------------------------------

    def validate(self, token: str) -> AuthContext:
        """The context of a live token; Unauthorized for anything else."""
        ctx = self._tokens.get(token)
        if ctx is None:
            ctx = self._context(self.codec.decode(token))
            self._tokens.put(token, ctx)
        if ctx.expires_at is None or ctx.expires_at <= utcnow():
            raise errors.Unauthorized("The token has expired.")
        if self.revocations.is_revoked(ctx):
            raise errors.Unauthorized("The token has been revoked.")
        return ctx

    def _context(self, payload: TokenPayload) -> AuthContext:
        """Names and roles for the token's scope, from the scope cache or the database."""
        key = "|".join(
            (
                payload.user_id,
                payload.project_id or "",
                payload.domain_id or "",
                payload.app_cred_id or "",
                str(self.revocations.generation()),
            )
        )
        base = self._scopes.get(key)
        if base is None:
            base = self._load_context(payload)
            self._scopes.put(key, base)
        return base.for_token(
            list(payload.methods), list(payload.audit_ids), payload.issued_at, payload.expires_at
        )

    def _load_context(self, payload: TokenPayload) -> AuthContext:
        """Resolve names and roles; Unauthorized if anything the token names is gone."""
        with self.db.session(readonly=True) as session:
            user = session.get(User, payload.user_id)
            if user is None or not user.enabled:
                raise errors.Unauthorized("The user of this token is not active.")
            user_domain = session.get(Domain, user.domain_id)
            if user_domain is None or not user_domain.enabled:
                raise errors.Unauthorized("The user's domain is not active.")
            fields: dict[str, Any] = {}
            roles: list[Role] = []
            if payload.project_id:
                project = session.get(Project, payload.project_id)
                if project is None or not project.enabled:
                    raise errors.Unauthorized("The token's project is not active.")
                project_domain = session.get(Domain, project.domain_id)
                if project_domain is None or not project_domain.enabled:
                    raise errors.Unauthorized("The token's project domain is not active.")
                fields.update(
                    project_id=project.id,
                    project_name=project.name,
                    project_domain_id=project_domain.id,
                    project_domain_name=project_domain.name,
                )
                roles = assignments.token_roles(session, user.id, project_id=project.id)
            elif payload.domain_id:
                domain = session.get(Domain, payload.domain_id)
                if domain is None or not domain.enabled:
                    raise errors.Unauthorized("The token's domain is not active.")
                fields.update(domain_id=domain.id, domain_name=domain.name)
                roles = assignments.token_roles(session, user.id, domain_id=domain.id)
            app_cred = None
            if payload.app_cred_id:
                app_cred = session.get(ApplicationCredential, payload.app_cred_id)
                if app_cred is None:
                    raise errors.Unauthorized("The application credential is gone.")
                allowed = assignments.implied_closure(session, set(app_cred.role_ids))
                roles = [r for r in roles if r.id in allowed]
            if (payload.project_id or payload.domain_id) and not roles:
                raise errors.Unauthorized(SCOPE_REFUSED)
            return AuthContext(
                user_id=user.id,
                user_name=user.name,
                user_domain_id=user_domain.id,
                user_domain_name=user_domain.name,
                roles=[r.name for r in roles],
                role_ids=[r.id for r in roles],
                methods=list(payload.methods),
                audit_ids=list(payload.audit_ids),
                issued_at=payload.issued_at,
                expires_at=payload.expires_at,
                app_cred_id=payload.app_cred_id,
                app_cred_name=app_cred.name if app_cred else None,
                app_cred_unrestricted=bool(app_cred and app_cred.unrestricted),
                **fields,
            )

    # -- revocation and catalog -----------------------------------------------------

    def revoke(self, ctx: AuthContext) -> None:
        with self.db.session() as session:
            self.revocations.add(session, audit_id=ctx.audit_ids[0])
        self.revocations.notify()

    def catalog(self) -> list[dict[str, Any]]:
        cached = self._catalog.get("catalog")
        if cached is None:
            with self.db.session(readonly=True) as session:
                cached = build_catalog(session)
            self._catalog.put("catalog", cached)
        return cached

    def scopable_projects(self, user_id: str) -> list[Project]:
        with self.db.session(readonly=True) as session:
            ids = assignments.user_project_ids(session, user_id)
            if not ids:
                return []
            rows = session.scalars(
                select(Project).where(Project.id.in_(ids), Project.enabled.is_(True))
            ).all()
            return sorted(rows, key=lambda p: p.name)

    def scopable_domains(self, user_id: str) -> list[Domain]:
        with self.db.session(readonly=True) as session:
            ids = assignments.user_domain_ids(session, user_id)
            if not ids:
                return []
            rows = session.scalars(
                select(Domain).where(Domain.id.in_(ids), Domain.enabled.is_(True))
            ).all()
            return sorted(rows, key=lambda d: d.name)


def _find_domain(session: Session, ref: NamedRef) -> Domain | None:
    if ref.id is not None:
        return session.get(Domain, ref.id)
    if ref.name is not None:
        return session.scalar(select(Domain).where(Domain.name == ref.name))
    return None


def _domain_id_of(session: Session, ref: NamedRef) -> str | None:
    if ref.domain_id is not None:
        return ref.domain_id
    if ref.domain_name is not None:
        domain = session.scalar(select(Domain).where(Domain.name == ref.domain_name))
        return domain.id if domain else None
    return None


def _find_user(session: Session, ref: NamedRef) -> User | None:
    if ref.id is not None:
        return session.get(User, ref.id)
    domain_id = _domain_id_of(session, ref)
    if ref.name is None or domain_id is None:
        return None
    return session.scalar(select(User).where(User.domain_id == domain_id, User.name == ref.name))


def _find_project(session: Session, ref: NamedRef) -> Project | None:
    if ref.id is not None:
        return session.get(Project, ref.id)
    domain_id = _domain_id_of(session, ref)
    if ref.name is None or domain_id is None:
        return None
    return session.scalar(
        select(Project).where(Project.domain_id == domain_id, Project.name == ref.name)
    )


def _domain_enabled(session: Session, user: User) -> bool:
    domain = session.get(Domain, user.domain_id)
    return domain is not None and domain.enabled
