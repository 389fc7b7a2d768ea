"""Engines and units of work.

SQLite runs in WAL mode with a busy timeout so that several gunicorn workers
and the other processes can share one file; PostgreSQL goes through psycopg 3.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ciaostack.core import jsontext
from ciaostack.core.db.writer_lock import WriterBusy, WriterLock

LOG = logging.getLogger("ciaostack.db")

# Seconds SQLite waits for another writer's lock before giving up.
BUSY_TIMEOUT = 30
# Write units of one process between two checkpoints of SQLite's WAL (a create writes
# about 25 pages; SQLite's own automatic checkpoint comes every 1,000 by default).
CHECKPOINT_EVERY = 32
# WAL pages after which a commit checkpoints anyway (when readers kept the passive
# checkpoints from finishing, or a writer went round Database.session; SQLite: 1,000).
BACKSTOP_CHECKPOINT_PAGES = 10_000
# Seconds a thread may keep the GIL while another waits for it (CPython's default: 0.005).
GIL_SWITCH_INTERVAL = 0.0005


def favour_transactions() -> None:
    """Let a thread inside a transaction get the GIL back soon after each statement.

    Why: the database driver lets go of the GIL for every statement, and a thread
    busy with Python meanwhile (another request of the API worker; the controller's
    TLS and frame decoding) keeps it until the switch interval runs out. A write
    transaction of a dozen statements then holds SQLite's single write lock (or
    PostgreSQL's row locks) for several such intervals, doing nothing, while every
    other writer waits. Measured with 14 statements in one SQLite transaction beside
    one thread running Python: p50 0.4 ms alone, 37 ms beside it at CPython's 5 ms,
    4 ms at 0.5 ms (at 0.1 ms, 1.4 ms: each forced switch costs the busy threads a
    little, so not lower). bench/compute (a), 2,000 servers, five interleaved pairs:
    154 servers/s on average against 144 without it, on a machine whose speed moved
    by a fifth between runs; on PostgreSQL, where no single lock serializes writers,
    no change either way.
    """
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API types
    # Transactions are begun by _sqlite_begin, not by the driver.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT * 1000}")
    # SQLite's automatic checkpoint runs inside the commit that crosses its threshold,
    # while that writer still holds the write lock: Database.session checkpoints after
    # letting go of it, and this one is left as a backstop only.
    cur.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_CHECKPOINT_PAGES}")
    cur.close()


def _sqlite_begin(conn) -> None:  # noqa: ANN001
    """Writers take the write lock up front (BEGIN IMMEDIATE): a deferred
    transaction that reads and then writes can fail at once with "database is
    locked" when another writer got there first, whatever the busy timeout."""
    if conn.get_execution_options().get("readonly"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_busy(exc: BaseException) -> bool:
    """Whether `exc` says the database was too busy to serve the work in time (SQLite:
    it waited out the busy timeout for another writer's lock); the same work may well
    succeed when tried again."""
    if isinstance(exc, WriterBusy):
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def normalize_url(url: str) -> str:
    """Let operators write postgresql:// and still get psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# The JSON columns: every create writes several (its start payload among them).
_JSON = {"json_serializer": jsontext.dumps, "json_deserializer": jsontext.loads}


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": BUSY_TIMEOUT, "check_same_thread": False}, **_JSON
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, **_JSON)


def _writer_lock(url: str) -> WriterLock | None:
    """The lock SQLite writers of a file database queue on (none in memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return WriterLock(Path(f"{parsed.database}-writer.lock"), BUSY_TIMEOUT)


class Database:
    """One engine per process; `session()` is one unit of work that commits or rolls back."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        self._writers = _writer_lock(self.url)
        self._writes = itertools.count(1)
        # This thread's write turn, and whether a checkpoint waits for its end.
        self._turn = threading.local()

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The session factory, for event listeners that watch every unit of work."""
        return self._factory

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @contextlib.contextmanager
    def session(self, readonly: bool = False) -> Iterator[Session]:
        """A unit of work; `readonly` lets SQLite readers run beside a writer."""
        if readonly or self._writers is None:
            with self._unit(readonly) as session:
                yield session
            return
        with self._writers.held(), self._unit(readonly) as session:
            yield session
        if next(self._writes) % CHECKPOINT_EVERY == 0:
            if getattr(self._turn, "held", False):
                self._turn.checkpoint = True  # once the turn ends: its process waits meanwhile
            else:
                self._checkpoint()

    @contextlib.contextmanager
    def write_turn(self) -> Iterator[None]:
        """Wait for this process's turn to write before reading what the write needs.

        Why: on SQLite the threads of a process queue for the single writer anyway, and
        a thread reading for its write meanwhile takes the GIL from the one that holds
        the write lock at each of its statements (the driver lets go of the GIL for
        every statement), so the lock is held longer for everyone. A request that
        reads, then writes, takes its turn before its reads; `session()` inside it
        takes the database as usual. Other processes are not kept out: the file lock
        is taken only for the write. bench/compute (a), server creates in a turn:
        five interleaved pairs, 217 servers/s on average against 197, each pair won.
        PostgreSQL, SQLite in memory: nothing to wait for."""
        if self._writers is None or getattr(self._turn, "held", False):
            yield
            return
        self._turn.held, self._turn.checkpoint = True, False
        try:
            with self._writers.turn():
                yield
        finally:
            self._turn.held = False
            if self._turn.checkpoint:
                self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy what the WAL holds into the database file, so the WAL stays small.

        Why here: SQLite's automatic checkpoint runs in the commit that fills the WAL
        past its threshold, inside that writer's hold of the write lock, and every other
        writer waits for it (in process, 2 % of commits, two thirds of all commit time,
        up to 19 ms each). A passive checkpoint waits for no one and lets writers go on."""
        try:
            conn = self.engine.raw_connection()
            try:
                conn.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                conn.close()
        except Exception:  # the work it follows is committed: never fail it
            LOG.warning("checkpointing the database's WAL failed", exc_info=True)

    @contextlib.contextmanager
    def _unit(self, readonly: bool) -> Iterator[Session]:
        with self._factory() as session:
            # Procuring the connection begins the transaction with these options.
            session.connection(execution_options=self._options(readonly))
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def _options(self, readonly: bool) -> dict[str, object]:
        """A read on PostgreSQL sees one snapshot: under READ COMMITTED each statement
        sees its own, so a row and its children read by two statements could come
        from either side of another transaction's commit (an image still importing
        with the property its failed import set). Read-only REPEATABLE READ never
        fails to serialize; SQLite's deferred BEGIN already reads from one snapshot."""
        if readonly and not self.is_sqlite:
            return {
                "readonly": True,
                "isolation_level": "REPEATABLE READ",
                "postgresql_readonly": True,
            }
        return {"readonly": readonly}

    def dispose(self) -> None:
        self.engine.dispose()
