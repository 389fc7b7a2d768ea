"""Token revocation: events in the datastore, an index in each process.

Tokens are not stored, so revoking one records what it matched (its audit id,
or a user, project, domain or application credential and a time). Each
process keeps an index of the events and refreshes it when the stamp in the
home directory changes (every worker on the host sees a revocation at once) or,
for workers on other hosts, after `poll` seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import mmap
import os
import secrets
import threading
import time
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ciaostack.core.db.models import RevocationEvent, utcnow
from ciaostack.core.db.session import Database
from ciaostack.core.identity.context import AuthContext

LOG = logging.getLogger("ciaostack.identity")

_FIELDS = ("audit_id", "user_id", "project_id", "domain_id", "app_cred_id")


def _key(event: RevocationEvent) -> tuple[tuple[str, str], ...]:
    return tuple((f, getattr(event, f)) for f in _FIELDS if getattr(event, f) is not None)


def _candidate_keys(ctx: AuthContext) -> list[tuple[tuple[str, str], ...]]:
    keys: list[tuple[tuple[str, str], ...]] = [(("audit_id", a),) for a in ctx.audit_ids]
    keys.append((("user_id", ctx.user_id),))
    for project in (ctx.project_id,):
        if project:
            keys.append((("project_id", project),))
            keys.append((("user_id", ctx.user_id), ("project_id", project)))
    for domain in {ctx.domain_id, ctx.project_domain_id, ctx.user_domain_id} - {None, ""}:
        keys.append((("domain_id", domain),))
        # A revoked domain grant (direct or inherited to the domain's projects).
        keys.append((("user_id", ctx.user_id), ("domain_id", domain)))
    if ctx.app_cred_id:
        keys.append((("app_cred_id", ctx.app_cred_id),))
    return keys


class Stamp:
    """Eight bytes in a file that every process on the host maps into memory.

    Every request reads it (twice or three times for a token issue), so reading
    must cost no system call, which a file's mtime did. A change writes a new
    random value: any value other than the one a reader saw before means "look
    again", and two changes within one clock tick stay two changes (an mtime
    has the kernel's coarse clock and could hide the second).

    The file is opened on first use, not when the process starts: a process that
    never validates a token (external Keystone mode) never needs it. If it cannot
    be used (a read-only home), the process says so once and its workers see one
    another's identity changes only at `revocation_poll`, as other hosts do.
    """

    SIZE = 8

    def __init__(self, path: Path) -> None:
        self._path = path
        self._map: mmap.mmap | None = None
        self._unusable = False
        self._lock = threading.Lock()

    def _mapped(self) -> mmap.mmap | None:
        if self._map is None and not self._unusable:
            with self._lock:
                if self._map is None and not self._unusable:
                    try:
                        self._map = self._open()
                    except OSError as exc:
                        self._unusable = True
                        LOG.warning(
                            "revocation stamp %s unusable (%s): this host's workers see "
                            "identity changes only after [identity] revocation_poll",
                            self._path,
                            exc,
                        )
        return self._map

    def _open(self) -> mmap.mmap:
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < self.SIZE:  # new, or an mtime stamp of an older release
                os.ftruncate(fd, self.SIZE)
            return mmap.mmap(fd, self.SIZE)
        finally:
            os.close(fd)

    def read(self) -> bytes:
        mapped = self._mapped()
        return mapped[: self.SIZE] if mapped is not None else b""

    def change(self) -> None:
        mapped = self._mapped()
        if mapped is not None:
            mapped[: self.SIZE] = secrets.token_bytes(self.SIZE)


class Revocations:
    def __init__(self, db: Database, stamp: Path, poll: float, keep: dt.timedelta) -> None:
        self._db = db
        self._stamp = Stamp(stamp)
        self._poll = poll
        self._keep = keep
        self._lock = threading.Lock()
        self._index: dict[tuple[tuple[str, str], ...], dt.datetime] = {}
        self._stamp_seen = b""
        self._refreshed_at = float("-inf")
        self._generation = 0

    def add(self, session: Session, issued_before: dt.datetime | None = None, **match: str) -> None:
        """Record an event inside the caller's transaction; call `notify` after commit."""
        unknown = set(match) - set(_FIELDS)
        if unknown or not match:
            raise ValueError(f"bad revocation fields: {sorted(match)}")
        now = utcnow()
        session.add(RevocationEvent(issued_before=issued_before or now, revoked_at=now, **match))
        session.execute(
            delete(RevocationEvent).where(RevocationEvent.revoked_at < now - self._keep)
        )

    def notify(self) -> None:
        self._stamp.change()
        with self._lock:
            self._refreshed_at = float("-inf")

    def _refresh_if_stale(self) -> None:
        stamp = self._stamp.read()
        now = time.monotonic()
        if stamp == self._stamp_seen and now - self._refreshed_at < self._poll:
            return
        with self._db.session(readonly=True) as session:
            events = session.scalars(select(RevocationEvent)).all()
        index: dict[tuple[tuple[str, str], ...], dt.datetime] = {}
        for event in events:
            key = _key(event)
            if key not in index or index[key] < event.issued_before:
                index[key] = event.issued_before
        with self._lock:
            if stamp != self._stamp_seen or index != self._index:
                self._generation += 1
            self._index = index
            self._stamp_seen = stamp
            self._refreshed_at = now

    def generation(self) -> int:
        """A number that changes whenever this host announced an identity change
        (`notify`) or the events changed: caches of identity data key on it."""
        self._refresh_if_stale()
        return self._generation

    def is_revoked(self, ctx: AuthContext) -> bool:
        self._refresh_if_stale()
        issued = ctx.issued_at
        index = self._index
        for key in _candidate_keys(ctx):
            before = index.get(key)
            if before is not None and issued is not None and issued <= before:
                return True
        return False
