"""Prepared statements write and read exactly what SQLAlchemy's own execution does, on
SQLite and PostgreSQL (the PostgreSQL pass runs these against a real server)."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    bindparam,
    exc,
    insert,
    select,
    update,
)
from sqlalchemy.orm import registry

from ciaostack.core.db import prepared
from ciaostack.core.db.models import utcnow
from ciaostack.core.db.session import Database

META = MetaData()
THINGS = Table(
    "prepared_things",
    META,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(32), unique=True, nullable=False),
    Column("count", Integer, nullable=False, default=0),
    Column("spec", JSON),
    Column("on", Boolean, nullable=False, default=False),
    Column("ratio", Float, nullable=False, default=1.5),
    Column("updated_at", DateTime, nullable=False, default=utcnow, onupdate=utcnow),
)
INSERT = insert(THINGS)
BY_NAME = select(THINGS).where(THINGS.c.name == bindparam("name"))
BUMP = (
    update(THINGS)
    .where(THINGS.c.name == bindparam("who"))
    .values(count=THINGS.c.count + 5)
    .returning(THINGS.c.count, THINGS.c.updated_at, THINGS.c.spec)
)


class Thing:
    """Mapped only to show that pending objects are flushed before a statement."""

    name: str


registry().map_imperatively(Thing, THINGS)


@pytest.fixture
def db(database_url_factory) -> Iterator[Database]:
    database = Database(database_url_factory())
    META.create_all(database.engine)
    yield database
    database.dispose()


def _as_sqlalchemy_reads(db: Database, name: str) -> tuple:
    with db.session(readonly=True) as session:
        return tuple(session.execute(BY_NAME, {"name": name}).one())


def test_insert_gives_the_key_and_stores_what_sqlalchemy_would(db: Database) -> None:
    before = utcnow()
    with db.session() as session:
        first = prepared.run(session, INSERT, {"name": "a", "spec": {"k": [1, "x"]}, "on": True})
        second = prepared.run(session, INSERT, {"name": "b", "spec": None})
        session.execute(INSERT, {"name": "c", "spec": None})  # SQLAlchemy's own, to compare
    a = _as_sqlalchemy_reads(db, "a")
    b = _as_sqlalchemy_reads(db, "b")
    c = _as_sqlalchemy_reads(db, "c")
    assert (first.lastrowid, second.lastrowid) == (a[0], b[0])
    assert (first.rows, second.rows) == ([], [])  # a dialect's own RETURNING is not theirs
    assert a[1:6] == ("a", 0, {"k": [1, "x"]}, True, 1.5)
    # The column defaults (count, on, ratio, updated_at) were filled in as SQLAlchemy does.
    assert b[1:6] == ("b", 0, c[3], False, 1.5)
    assert before <= a[6] <= utcnow() and isinstance(a[6], dt.datetime)
    with db.engine.connect() as conn:
        stored = conn.execute(
            select(THINGS.c.spec.is_(None)).where(THINGS.c.name.in_(["b", "c"]))
        ).scalars()
        assert len(set(stored)) == 1  # a None is stored the same way by both


def test_rows_come_back_converted_and_named(db: Database) -> None:
    with db.session() as session:
        prepared.run(
            session,
            INSERT,
            [{"name": f"n{i}", "spec": {"i": i}, "on": i % 2 == 0} for i in range(3)],
        )
    with db.session(readonly=True) as session:
        row = prepared.run(session, BY_NAME, {"name": "n2"}).first()
        missing = prepared.run(session, BY_NAME, {"name": "nobody"})
    assert row is not None
    assert tuple(row) == _as_sqlalchemy_reads(db, "n2")
    assert (row.name, row.spec, row.on, row.ratio) == ("n2", {"i": 2}, True, 1.5)
    assert isinstance(row.updated_at, dt.datetime) and isinstance(row.ratio, float)
    assert (missing.first(), missing.scalar(), missing.scalars()) == (None, None, [])
    assert missing.lastrowid is None  # only an INSERT has one


def test_update_runs_its_own_expressions_and_on_update_values(db: Database) -> None:
    with db.session() as session:
        prepared.run(session, INSERT, {"name": "u", "count": 1, "spec": [1]})
    written = _as_sqlalchemy_reads(db, "u")[6]
    with db.session() as session:
        just_before = utcnow()
        result = prepared.run(session, BUMP, {"who": "u"})
        nothing = prepared.run(session, BUMP, {"who": "nobody"})
    assert result.rowcount == 1 and nothing.rowcount == 0 and nothing.rows == []
    count, updated_at, spec = result.first()
    assert (count, spec) == (6, [1]) and updated_at >= just_before >= written
    assert result.lastrowid is None
    assert result.scalars() == [6]
    assert _as_sqlalchemy_reads(db, "u")[2:4] == (6, [1])


def test_driver_errors_are_sqlalchemys_and_roll_back(db: Database) -> None:
    with db.session() as session:
        prepared.run(session, INSERT, {"name": "dup"})
    with pytest.raises(exc.IntegrityError), db.session() as session:
        prepared.run(session, INSERT, {"name": "other"})
        prepared.run(session, INSERT, {"name": "dup"})
    with db.session(readonly=True) as session:
        names = session.execute(select(THINGS.c.name)).scalars().all()
    assert names == ["dup"]


def test_what_cannot_be_prepared_is_refused(db: Database) -> None:
    stmt = select(THINGS.c.id).where(THINGS.c.name.in_(bindparam("names", expanding=True)))
    with pytest.raises(ValueError, match="expand"), db.session(readonly=True) as session:
        prepared.run(session, stmt, {"names": ["a"]})
    with pytest.raises(ValueError, match="returns no rows"), db.session() as session:
        prepared.run(session, BUMP, [{"who": "a"}, {"who": "b"}])


def test_a_list_of_any_length_is_read_with_few_statement_forms(db: Database) -> None:
    """`run_in` finds the rows of lists of every length (past one IN list's limit, and
    with repeats), with a statement form per power of two up to `IN_CHUNK`."""
    names = [f"n{i}" for i in range(prepared.IN_CHUNK * 2 + 100)]
    with db.session() as session:
        prepared.run(session, INSERT, [{"name": n} for n in names])
    sizes: list[int] = []

    @functools.cache
    def by_names(size: int) -> Select:
        sizes.append(size)
        return select(THINGS.c.name).where(THINGS.c.name.in_(prepared.in_list(size)))

    with db.session(readonly=True) as session:
        for length in (1, 2, 3, 5, 100, 513, len(names)):
            wanted = names[:length]
            found = prepared.run_in(session, by_names, [*wanted, *wanted[:2]])
            assert sorted(row.name for row in found) == sorted(wanted)
        assert prepared.run_in(session, by_names, []) == []
        assert prepared.run_in(session, by_names, ["nobody"]) == []
    assert sorted(sizes) == [1, 2, 4, 8, 128, 512]


def test_pending_objects_are_flushed_first_unless_the_session_says_not(db: Database) -> None:
    with db.session() as session:
        session.add(Thing(name="pending"))
        found = prepared.run(session, BY_NAME, {"name": "pending"}).first()
        with session.no_autoflush:
            session.add(Thing(name="held"))
            held = prepared.run(session, BY_NAME, {"name": "held"}).first()
    assert found is not None and found.name == "pending"
    assert held is None
    assert _as_sqlalchemy_reads(db, "held")[1] == "held"  # flushed at commit


def test_statements_built_per_call_are_not_kept(db: Database) -> None:
    """Compiled forms live as long as their statement: a statement built for one call
    (not the way to use this module, but possible) leaves nothing behind."""
    import gc

    with db.session(readonly=True) as session:
        for i in range(20):
            prepared.run(session, select(THINGS.c.id).where(THINGS.c.count == i))
    gc.collect()
    assert not any(
        isinstance(s, type(BY_NAME)) and s is not BY_NAME and THINGS in s.froms
        for s in list(prepared._CACHE.keys())
    )
