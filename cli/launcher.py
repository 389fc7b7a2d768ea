"""`ciaostack launcher`: the agent on a compute node.

Settings come from the [launcher] section (see the README's table); the
options here override the most common ones for a quick run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
from pathlib import Path

from ciaostack.core import config
from ciaostack.core.config import Config
from ciaostack.core.logsetup import setup_logging

LOG = logging.getLogger("ciaostack.launcher")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("launcher", help="run the compute-node agent (SSNTP role AGENT)")
    p.add_argument("--scheduler", help="HOST:PORT of the scheduler (default from config)")
    p.add_argument("--state-dir", help="state directory (default from config)")
    p.add_argument("--backend", help="fake (default from config)")
    p.add_argument("--hostname", help="node name reported to the cloud")
    p.set_defaults(func=run)


def _scheduler_address(conf: Config, override: str | None) -> tuple[str, int]:
    if override:
        host, _, port = override.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--scheduler must be HOST:PORT, not {override!r}")
        return host.strip("[]"), int(port)
    host = conf.get("launcher", "scheduler_host") or conf.get("ssntp", "host")
    return host, conf.get("launcher", "scheduler_port") or conf.get("ssntp", "port")


async def _serve(conf: Config, args: argparse.Namespace) -> int:
    from ciaostack.agents import backends
    from ciaostack.agents.launcher import Launcher, LauncherOptions, make_client
    from ciaostack.agents.state import StateStore
    from ciaostack.core.ssntp.transport import HandshakeRefused, client_context

    state_dir = Path(
        args.state_dir or conf.get("launcher", "state_dir") or conf.home / "launcher"
    ).expanduser()
    host, port = _scheduler_address(conf, args.scheduler)
    cert = conf.pki_file("launcher", "cert", "agent.pem")
    ca = Path(conf.get("launcher", "ca") or conf.pki_file("ssntp", "ca", "ca.pem"))
    context = client_context(cert, ca)
    store = StateStore(state_dir, fsync=conf.get("launcher", "state_fsync"))
    backend = backends.load(args.backend or conf.get("launcher", "backend"), conf, state_dir)
    options = LauncherOptions(
        hostname=args.hostname or conf.get("launcher", "hostname") or socket.gethostname(),
        availability_zone=conf.get("launcher", "availability_zone"),
        reserve_mem_mb=conf.get("launcher", "reserve_mem_mb"),
        reserve_disk_mb=conf.get("launcher", "reserve_disk_mb"),
        stats_interval=conf.get("launcher", "stats_interval"),
    )
    launcher = Launcher(backend, store, options)
    LOG.info(
        "launcher node=%s host=%s backend=%s scheduler=%s:%d state=%s",
        launcher.uuid,
        options.hostname,
        backend.name,
        host,
        port,
        state_dir,
    )
    running = asyncio.create_task(launcher.run(make_client(launcher, host, port, context)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    await launcher.close()
    if not running.done():
        running.cancel()
    try:
        await running
    except asyncio.CancelledError:
        pass
    except HandshakeRefused as exc:
        LOG.error("launcher refused by the scheduler: %s", exc)
        return 1
    LOG.info("launcher node=%s stopped; its instances keep running", launcher.uuid)
    return 0


def run(args: argparse.Namespace) -> int:
    conf = config.load(Path(args.config) if args.config else None)
    setup_logging(conf.get("log", "level"))
    return asyncio.run(_serve(conf, args))
