"""SQLite writers queue on one lock across processes: the next one gets the database as
soon as the holder lets go, and a writer kept out for the whole wait fails as busy (the
API's 503), not with a hang."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from ciaostack.core.db import session as session_module
from ciaostack.core.db.session import Database, is_busy
from ciaostack.core.db.writer_lock import WriterBusy, WriterLock

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ciaostack.core.db.writer_lock import WriterLock
    lock = WriterLock(Path(sys.argv[1]), 5)
    with lock.held():
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def hold_in_another_process(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_another_process_hold_is_waited_for_then_handed_over(tmp_path: Path) -> None:
    path = tmp_path / "db-writer.lock"
    holder = hold_in_another_process(path, 0.5)
    started = time.monotonic()
    with WriterLock(path, 5).held():
        waited = time.monotonic() - started
    holder.wait(5)
    # Handed over within a few milliseconds of the holder's exit, not SQLite's 100 ms naps.
    assert 0.3 < waited < 0.5 + 0.25


def test_a_writer_kept_out_for_the_whole_wait_is_busy(tmp_path: Path) -> None:
    path = tmp_path / "db-writer.lock"
    holder = hold_in_another_process(path, 3)
    try:
        with pytest.raises(WriterBusy) as busy, WriterLock(path, 0.3).held():
            pass
        assert is_busy(busy.value)
    finally:
        holder.kill()
        holder.wait()


def test_threads_of_one_process_take_turns_and_a_thread_may_nest(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "db-writer.lock", 5)
    inside, overlaps = [0], []

    def work() -> None:
        for _ in range(50):
            with lock.held():
                inside[0] += 1
                overlaps.append(inside[0])
                with lock.held():  # a unit of work opened inside another
                    pass
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(overlaps) == 200 and max(overlaps) == 1


def test_a_turn_keeps_this_process_writers_out_but_not_other_processes(tmp_path: Path) -> None:
    """A thread's turn makes the process's other writers wait until it ends; another
    process still takes the database meanwhile, and the holder of the turn takes it
    when it writes."""
    path = tmp_path / "db-writer.lock"
    lock = WriterLock(path, 5)
    order: list[str] = []
    in_turn, leave = threading.Event(), threading.Event()

    def turn() -> None:
        with lock.turn():
            in_turn.set()
            leave.wait(5)
            with lock.held():
                order.append("turn writes")

    def other_writer() -> None:
        with lock.held():
            order.append("other writes")

    first = threading.Thread(target=turn)
    first.start()
    assert in_turn.wait(5)
    second = threading.Thread(target=other_writer)
    second.start()
    holder = hold_in_another_process(path, 0.2)  # not kept out by the turn
    holder.wait(5)
    time.sleep(0.1)
    assert order == []
    leave.set()
    first.join(5)
    second.join(5)
    assert order == ["turn writes", "other writes"]


def test_a_database_write_turn_holds_back_its_process_writers(tmp_path: Path) -> None:
    """Inside a write turn the database is this thread's to write next: a writer of
    another thread waits until the turn ends. In memory there is nothing to wait for."""
    db = Database(f"sqlite:///{tmp_path / 't.db'}")
    with db.session() as session:
        session.connection().exec_driver_sql("CREATE TABLE t (x INTEGER)")

    def insert(value: int) -> None:
        with db.session() as session:
            session.connection().exec_driver_sql("INSERT INTO t VALUES (?)", (value,))

    with db.write_turn():
        other = threading.Thread(target=insert, args=(1,))
        other.start()
        other.join(0.3)
        assert other.is_alive()  # waiting for the turn
        insert(0)
    other.join(5)
    with db.session(readonly=True) as session:
        rows = session.connection().exec_driver_sql("SELECT x FROM t ORDER BY rowid").all()
    assert [x for (x,) in rows] == [0, 1]
    db.dispose()
    memory = Database("sqlite://")
    with memory.write_turn(), memory.session() as session:
        session.connection().exec_driver_sql("CREATE TABLE t (x INTEGER)")
    memory.dispose()


def test_a_turn_and_its_write_wait_the_timeout_in_all(tmp_path: Path) -> None:
    path = tmp_path / "db-writer.lock"
    holder = hold_in_another_process(path, 3)
    lock = WriterLock(path, 0.5)
    started = time.monotonic()
    try:
        with pytest.raises(WriterBusy), lock.turn():
            time.sleep(0.3)  # the request's reads
            with lock.held():
                pass
        assert time.monotonic() - started < 0.5 + 0.15
    finally:
        holder.kill()
        holder.wait()


def test_a_checkpoint_due_in_a_write_turn_waits_for_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The WAL's checkpoint, due after a write, runs once the process's writers may go
    on: after the turn when the write was in one, at once otherwise."""
    monkeypatch.setattr(session_module, "CHECKPOINT_EVERY", 1)
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    in_turn = [False]
    checkpoints: list[bool] = []
    monkeypatch.setattr(db, "_checkpoint", lambda: checkpoints.append(in_turn[0]))
    with db.write_turn():
        in_turn[0] = True
        with db.session() as session:
            session.connection().exec_driver_sql("CREATE TABLE t (x INTEGER)")
        assert checkpoints == []
        in_turn[0] = False
    assert checkpoints == [False]
    with db.session() as session:
        session.connection().exec_driver_sql("INSERT INTO t VALUES (1)")
    assert checkpoints == [False, False]
    db.dispose()


def test_a_file_database_queues_writers_beside_it_and_memory_needs_no_file(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    with db.session() as session:
        session.connection().exec_driver_sql("CREATE TABLE t (x INTEGER)")
    assert (tmp_path / "c.db-writer.lock").exists()
    db.dispose()
    memory = Database("sqlite://")
    with memory.session() as session:
        session.connection().exec_driver_sql("CREATE TABLE t (x INTEGER)")
    memory.dispose()
