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
