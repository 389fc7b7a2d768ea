"""A read-only unit of work sees the database as it was when it began, on both engines:
an API read that takes a row and then its children must not mix two commits (an image
still "importing" beside the property its failed import set a moment later)."""

from __future__ import annotations

from sqlalchemy import text

from ciaostack.core.db.session import Database


def test_a_read_sees_one_snapshot_across_statements(database_url_factory) -> None:
    db = Database(database_url_factory())
    try:
        with db.session() as session:
            session.execute(text("CREATE TABLE snap (id INTEGER PRIMARY KEY, status TEXT)"))
            session.execute(text("INSERT INTO snap VALUES (1, 'importing')"))
        with db.session(readonly=True) as reader:
            first = reader.scalar(text("SELECT status FROM snap WHERE id = 1"))
            with db.session() as writer:
                writer.execute(text("UPDATE snap SET status = 'queued' WHERE id = 1"))
                writer.execute(text("INSERT INTO snap VALUES (2, 'failed')"))
            second = reader.scalar(text("SELECT status FROM snap WHERE id = 1"))
            rows = reader.scalar(text("SELECT count(*) FROM snap"))
        assert (first, second, rows) == ("importing", "importing", 1)
        with db.session(readonly=True) as later:
            assert later.scalar(text("SELECT status FROM snap WHERE id = 1")) == "queued"
    finally:
        db.dispose()
