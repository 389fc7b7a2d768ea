"""A request that waited out SQLite's lock timeout is answered 503 with Retry-After, in
the format of the API that was called, not as a 500: clients retry a 503 (the
database was busy, nothing is broken)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import falcon
import falcon.testing
import pytest
from sqlalchemy import create_engine, text

from ciaostack.api.faults import BUSY_RETRY_AFTER, Faults
from ciaostack.compat.nova.views import fault_body
from ciaostack.core.db.session import is_busy


class Write:
    """Tries to take the write lock of a database another connection holds, without
    waiting (the real API waits for the busy timeout first, then fails the same way)."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, connect_args={"timeout": 0})

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
            conn.commit()


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[str]:
    """A SQLite database whose write lock another connection holds."""
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("BEGIN IMMEDIATE")
    yield f"sqlite:///{path}"
    holder.execute("ROLLBACK")
    holder.close()


@pytest.fixture
def client(locked: str) -> falcon.testing.TestClient:
    app = falcon.App()
    faults = Faults()
    faults.register("/compute", fault_body)
    app.add_error_handler(Exception, faults.handle)
    resource = Write(locked)
    app.add_route("/compute/v2.1/servers", resource)
    app.add_route("/identity/v3/things", resource)
    return falcon.testing.TestClient(app)


def test_busy_database_is_503_with_retry_after(client: falcon.testing.TestClient) -> None:
    resp = client.simulate_post("/compute/v2.1/servers")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == str(BUSY_RETRY_AFTER)
    fault = resp.json["serviceUnavailable"]
    assert fault["code"] == 503 and "try again" in fault["message"]

    resp = client.simulate_post("/identity/v3/things")
    assert resp.status_code == 503 and resp.headers["Retry-After"]
    assert resp.json["error"]["code"] == 503
    assert resp.json["error"]["title"] == "Service Unavailable"


def test_only_a_lock_timeout_counts_as_busy(locked: str, tmp_path: Path) -> None:
    with pytest.raises(Exception) as busy:
        Write(locked).on_post(None, None)  # type: ignore[arg-type]
    assert is_busy(busy.value)
    engine = create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(Exception) as other, engine.connect() as conn:
        conn.execute(text("SELECT * FROM missing"))
    assert not is_busy(other.value)
    assert not is_busy(ValueError("database is locked"))
