"""The controller's outbox: it claims the commands nobody holds (or whose claim's lease
ran out), in the order they were written, and drops them once sent, restarting their
instances' clocks (SQLite, or PostgreSQL with --db postgresql)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import select

from ciaostack.core.controller import service
from ciaostack.core.db.models import Instance, Outbox, utcnow
from ciaostack.core.db.session import Database


@pytest.fixture
def db(migrated_database: Callable[[], Database]) -> Database:
    return migrated_database()


def _controller(db: Database) -> service.Controller:
    return service.Controller(db, lambda handler, on_connected: None)


def test_claims_what_nobody_holds_in_order_and_drops_it_once_sent(db: Database) -> None:
    now = utcnow()
    long_ago = now - service.LEASE - dt.timedelta(seconds=1)
    instance = str(uuid.uuid4())
    with db.session() as session:
        fields = {"project_id": "p", "user_id": "u", "mem_mb": 1, "vcpus": 1}
        session.add(Instance(id=instance, updated_at=long_ago, **fields))
        rows = [
            Outbox(instance_id=instance, command="START", payload={"n": 1}),
            Outbox(instance_id=instance, command="STOP", claimed_by="x", claimed_at=now),
            Outbox(instance_id=instance, command="REBOOT", claimed_by="y", claimed_at=long_ago),
            Outbox(instance_id=instance, command="DELETE", payload={"n": [2]}),
        ]
        session.add_all(rows)
        session.flush()
        ids = [row.id for row in rows]
    controller = _controller(db)
    claimed = controller._claim(2)
    assert claimed == [(ids[0], instance, "START", {"n": 1}), (ids[2], instance, "REBOOT", {})]
    assert controller._claim(10) == [(ids[3], instance, "DELETE", {"n": [2]})]
    assert _controller(db)._claim(10) == []  # all held, their leases running
    with db.session(readonly=True) as session:
        holders = dict(session.execute(select(Outbox.id, Outbox.claimed_by)).all())
    mine = controller.name
    assert holders == {ids[0]: mine, ids[1]: "x", ids[2]: mine, ids[3]: mine}
    controller._done([ids[0], ids[2]], [instance, instance])
    with db.session(readonly=True) as session:
        assert sorted(session.scalars(select(Outbox.id))) == [ids[1], ids[3]]
        touched = session.get(Instance, instance)
        assert touched is not None and touched.updated_at > long_ago


def test_sent_rows_and_their_instances_are_written_in_key_order(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As every other writer of these rows: on PostgreSQL no two transactions then wait
    on each other in a circle."""
    written: list[tuple[str, list[object]]] = []

    def run(_session: object, statement: object, params: list[dict[str, object]]) -> None:
        name = "sent" if statement is service._SENT else "touched"
        written.append((name, [next(iter(p.values())) for p in params]))

    monkeypatch.setattr(service.prepared, "run", run)
    _controller(db)._done([7, 3, 5], ["c", "a", "b", "a"])
    assert written == [("sent", [3, 5, 7]), ("touched", ["a", "b", "c"])]
