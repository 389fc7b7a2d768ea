"""Real ciao-core processes (scheduler, controller, launchers) for tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

CIAOSTACK = str(Path(sys.executable).with_name("ciaostack"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def core_env(home: Path, database_url: str, ssntp_port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIAOSTACK_")}
    env.update(
        {
            "CIAOSTACK_HOME": str(home),
            "CIAOSTACK_CONFIG": str(home / "ciaostack.conf"),
            "CIAOSTACK_DATABASE__URL": database_url,
            "CIAOSTACK_SSNTP__PORT": str(ssntp_port),
            "CIAOSTACK_SSNTP__HEARTBEAT": "1",
            "CIAOSTACK_LOG__LEVEL": "INFO",
            **extra,
        }
    )
    return env


def prepare(env: dict[str, str]) -> None:
    subprocess.run([CIAOSTACK, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run(
        [CIAOSTACK, "certs", "init", "--local"], env=env, check=True, capture_output=True
    )


class Process:
    """A ciaostack subcommand running in the background, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        out = open(self.log, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [CIAOSTACK, *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "") -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


@contextlib.contextmanager
def processes(*procs: Process) -> Iterator[tuple[Process, ...]]:
    try:
        for p in procs:
            p.start()
        yield procs
    finally:
        for p in reversed(procs):
            p.stop()
