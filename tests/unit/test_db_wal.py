"""SQLite's WAL is checkpointed by the writers after they let go of the write lock, and
stays small (PostgreSQL has no WAL file to watch: SQLite only)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text

from ciaostack.core.db.session import BACKSTOP_CHECKPOINT_PAGES, CHECKPOINT_EVERY, Database

PAGE = 4096


def test_writers_keep_the_wal_small(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    try:
        with db.session() as session:
            session.execute(text("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)"))
        units = 20 * CHECKPOINT_EVERY
        for _ in range(units):
            with db.session() as session:
                session.execute(
                    text("INSERT INTO blobs (data) VALUES (:d)"), {"d": os.urandom(3 * PAGE)}
                )
        # Each unit adds at least three pages: kept, that is over 7 MB; SQLite's own
        # automatic checkpoint (every 1,000 pages by default) would let it reach 4 MB.
        wal = (tmp_path / "wal.db-wal").stat().st_size
        assert wal < 2 * CHECKPOINT_EVERY * 4 * PAGE, wal
        with db.engine.connect() as conn:
            backstop = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
            assert backstop == BACKSTOP_CHECKPOINT_PAGES > 3 * units
            assert conn.exec_driver_sql("SELECT count(*) FROM blobs").scalar() == units
    finally:
        db.dispose()


class _NoSpareConnection:
    def __init__(self, engine: object) -> None:
        self._engine = engine

    def raw_connection(self) -> None:
        raise OSError("no connection to spare")

    def __getattr__(self, name: str) -> object:
        return getattr(self._engine, name)


def test_a_failed_checkpoint_leaves_the_committed_work_alone(tmp_path: Path, caplog) -> None:
    db = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    try:
        with db.session() as session:
            session.execute(text("CREATE TABLE rows (id INTEGER PRIMARY KEY)"))

        # The units' sessions keep the real engine; the checkpoint's connection fails.
        db.engine = _NoSpareConnection(db.engine)  # type: ignore[assignment]
        for _ in range(CHECKPOINT_EVERY):
            with db.session() as session:
                session.execute(text("INSERT INTO rows DEFAULT VALUES"))
        assert "checkpointing the database's WAL failed" in caplog.text
        with db.session(readonly=True) as session:
            assert session.execute(text("SELECT count(*) FROM rows")).scalar() == CHECKPOINT_EVERY
    finally:
        db.dispose()
