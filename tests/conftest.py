"""Fixtures shared by every suite: the database engine under test and a running cloud.

`--db postgresql` (or CIAOSTACK_TEST_DB=postgresql) runs the same tests against a
real PostgreSQL server started for the test run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from ciaostack.core.db import migrate
from ciaostack.core.db.session import Database
from tests.support.cloud import Cloud, make_cloud


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=["sqlite", "postgresql"],
        default=os.environ.get("CIAOSTACK_TEST_DB", "sqlite"),
        help="datastore engine for the tests",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests written for PostgreSQL alone run in the PostgreSQL pass (tox env `postgres`);
    the SQLite pass deselects them rather than skipping them."""
    if config.getoption("--db") == "postgresql":
        return
    keep = [i for i in items if "[postgresql]" not in i.nodeid]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


@pytest.fixture(scope="session")
def db_engine(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--db")


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory, db_engine: str) -> Iterator[object]:
    if db_engine != "postgresql":
        pytest.fail("this test needs the PostgreSQL pass (--db postgresql)")
    from tests.support.postgres import PostgresServer

    with PostgresServer(tmp_path_factory.mktemp("pg")) as server:
        yield server


@pytest.fixture(scope="session")
def database_url_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, db_engine: str
):
    """Returns a function giving a fresh, empty database URL for the engine under test."""

    def make() -> str:
        if db_engine == "postgresql":
            server = request.getfixturevalue("postgres")
            return server.create_database(f"t_{uuid.uuid4().hex[:12]}")
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'ciaostack.db'}"

    return make


@pytest.fixture(scope="session")
def migrated_database(database_url_factory) -> Iterator[Callable[[], Database]]:
    """Returns a function giving a fresh database at the latest revision (disposed of
    when the run ends)."""
    made: list[Database] = []

    def make() -> Database:
        url = database_url_factory()
        migrate.upgrade(url)
        made.append(Database(url))
        return made[-1]

    yield make
    for database in made:
        database.dispose()


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory, database_url_factory) -> Iterator[Cloud]:
    """One API server for the whole session (2 gunicorn workers)."""
    c = make_cloud(tmp_path_factory.mktemp("cloud") / "home", database_url_factory())
    yield c
    c.stop()
    log = c.log_path.read_text()
    assert "Traceback" not in log, f"the API server logged an unexpected error:\n{log[-5000:]}"
