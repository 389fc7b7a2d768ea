"""One SQLite writer at a time across this machine's processes, handed over at once.

SQLite lets one transaction write at a time; a writer that finds the lock taken
waits in SQLite's busy handler, which sleeps for up to 100 ms between tries and is
not woken when the lock is released. Under many concurrent writers (API workers,
the controller) the lock then sits idle while they sleep, and the processes use a
fraction of the CPU. Writers that first take this lock — a thread lock in each
process, then an advisory lock on a file beside the database — queue for the
database in this process and poll the other processes' hold every few hundred
microseconds, so the database lock is taken by the next writer almost as soon as
it is released. SQLite's own lock still guards the data: a writer that does not
take this lock (a migration, another tool) is waited for as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

# Longest pause between two tries for another process's hold, in seconds: small
# beside a write transaction (milliseconds), cheap to repeat. bench/compute (a), the
# time the lock sat free while a writer waited for it: 2.4 s of 14 at 2 ms, 1.4-1.9 s
# at 0.5 ms (median hand-over 0.39 -> 0.27 ms), with no more CPU spent.
_POLL_MAX = 0.0005


class WriterBusy(Exception):
    """Another writer held the database for the whole wait."""


class WriterLock:
    """Re-entrant within a thread (a unit of work opened inside another waits on SQLite
    itself, as it did before this lock existed)."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._thread_lock = threading.RLock()
        self._fd: int | None = None
        self._pid = 0
        self._depth = 0
        self._deadline: float | None = None

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """This process's turn to write, without the database yet: `held` inside it
        takes the database; the process's other writers wait until the turn ends. The
        wait for both together is the timeout, counted from the outermost turn."""
        deadline = time.monotonic() + self.timeout
        if not self._thread_lock.acquire(timeout=self.timeout):
            raise WriterBusy(f"no write access to the database within {self.timeout} s")
        outermost = self._deadline is None  # set and read only by the thread holding the turn
        if outermost:
            self._deadline = deadline
        try:
            yield
        finally:
            if outermost:
                self._deadline = None
            self._thread_lock.release()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self.turn():
            if self._depth == 0:
                self._lock_file(self._deadline or time.monotonic())
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._file(), fcntl.LOCK_UN)

    def _file(self) -> int:
        # Opened lazily and once per process: gunicorn forks its workers after the
        # application is loaded, and an inherited descriptor would share its lock.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    def _lock_file(self, deadline: float) -> None:
        fd, pause = self._file(), 0.0001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WriterBusy(
                        f"no write access to the database within {self.timeout} s"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, _POLL_MAX)
