"""The alembic migrations build exactly the schema the models describe.

`ciaostack db upgrade` creates the schema from migrations/versions while the
code reads and writes through core/db/models.py; if the two drift apart, a
fresh install works differently from the tests' idea of it. Autogenerate's own
comparison (as `ciaostack` uses it to write revisions) must find nothing to
change, on SQLite and on PostgreSQL, and the migrations must run down to an
empty database and back up again.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, select

from ciaostack.core.db.migrate import alembic_config, upgrade
from ciaostack.core.db.models import Base, Instance, QuotaUsage
from ciaostack.core.db.session import Database, make_engine

VERSION_TABLE = "alembic_version"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL; the PostgreSQL variant skips unless run with --db postgresql."""
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres")
        return server.create_database(f"m_{uuid.uuid4().hex[:12]}")
    return f"sqlite:///{tmp_path / 'migrations.db'}"


def schema_differences(url: str) -> list[str]:
    """What autogenerate would put in a new revision for this database, one line a step
    (e.g. "add_column users email"): a readable failure rather than reprs of tables."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    steps = [step for item in diff for step in (item if isinstance(item, list) else [item])]
    return [describe(step) for step in steps]


def describe(step: tuple) -> str:
    op, *args = step
    names = [a if isinstance(a, str) else getattr(a, "name", None) for a in args[:4]]
    return " ".join([op, *(n for n in names if n)])


def assert_schema_matches_models(url: str) -> None:
    differences = schema_differences(url)
    assert not differences, "models and migrations differ:\n" + "\n".join(differences)


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_revision_ids_are_distinct_and_parents_exist() -> None:
    """Revisions written in parallel may be separate heads (upgrades go to every
    head) but must not reuse an id: alembic would silently load only one of them."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    files = [p for p in Path(script.versions).glob("*.py") if p.name != "__init__.py"]
    revisions = list(script.walk_revisions())  # raises on loops and missing parents
    assert len(revisions) == len(files), "two revision files share a revision id"


def test_migrations_match_models(empty_database: str) -> None:
    upgrade(empty_database)
    assert_schema_matches_models(empty_database)
    assert table_names(empty_database) == {*Base.metadata.tables, VERSION_TABLE}


def test_downgrade_to_base_and_upgrade_again(empty_database: str) -> None:
    upgrade(empty_database)
    command.downgrade(alembic_config(empty_database), "base")
    assert table_names(empty_database) <= {VERSION_TABLE}
    upgrade(empty_database)
    assert_schema_matches_models(empty_database)


def test_servers_in_error_take_their_quota_back(empty_database: str) -> None:
    """0011: servers already in error had released their quota; the counters take it
    again (and give it back on downgrade), so deleting them later leaves them right."""
    cfg = alembic_config(empty_database)
    command.upgrade(cfg, "0010")
    db = Database(empty_database)
    try:
        with db.session() as session:
            # Written as rows of the table as it was then (the model has later columns).
            session.execute(
                insert(Instance.__table__),
                [
                    {
                        "id": str(uuid.uuid4()),
                        "project_id": "p1",
                        "user_id": "u1",
                        "mem_mb": 512,
                        "vcpus": 2,
                        "vm_state": vm_state,
                        "deleted": deleted,
                    }
                    for vm_state, deleted in (("active", False), ("error", False), ("error", True))
                ],
            )
            # What the counters said before: the active server only.
            session.add_all(
                QuotaUsage(project_id="p1", resource=r, in_use=n)
                for r, n in (("instances", 1), ("cores", 2), ("ram", 512), ("key_pairs", 3))
            )

        def counters() -> dict[str, int]:
            with db.session(readonly=True) as session:
                return {u.resource: u.in_use for u in session.scalars(select(QuotaUsage))}

        upgrade(empty_database)
        assert counters() == {"instances": 2, "cores": 4, "ram": 1024, "key_pairs": 3}
        command.downgrade(cfg, "0010")
        assert counters() == {"instances": 1, "cores": 2, "ram": 512, "key_pairs": 3}
    finally:
        db.dispose()
