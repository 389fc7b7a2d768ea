"""`ciaostack launcher`: the agent on a compute node.

Settings come from the [launcher] section (see the README's table); the
options here override the most common ones for a quick run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
from pathlib import Path

from ciaostack.cli.services import wait_for_signal
from ciaostack.core import collector, config
from ciaostack.core.config import Config
from ciaostack.core.logsetup import setup_logging

LOG = logging.getLogger("ciaostack.launcher")
WAVE = 50
WAVE_TIMEOUT = 30.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("launcher", help="run the compute-node agent (SSNTP role AGENT)")
    p.add_argument("--scheduler", help="HOST:PORT of the scheduler (default from config)")
    p.add_argument("--state-dir", help="state directory (default from config)")
    p.add_argument("--backend", help="fake (default from config)")
    p.add_argument("--hostname", help="node name reported to the cloud")
    p.add_argument(
        "--simulate",
        type=int,
        default=1,
        metavar="N",
        help="fake backend only: run N simulated nodes in this process, each with its own "
        "node UUID, certificate session and state directory (scale tests, benchmarks)",
    )
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
    from ciaostack.agents.launcher import Launcher, LauncherOptions
    from ciaostack.agents.state import StateStore
    from ciaostack.core.ssntp.transport import HandshakeRefused, client_context

    state_dir = Path(
        args.state_dir or conf.get("launcher", "state_dir") or conf.home / "launcher"
    ).expanduser()
    host, port = _scheduler_address(conf, args.scheduler)
    cert = conf.pki_file("launcher", "cert", "agent.pem")
    ca = Path(conf.get("launcher", "ca") or conf.pki_file("ssntp", "ca", "ca.pem"))
    context = client_context(cert, ca)
    backend_name = args.backend or conf.get("launcher", "backend")
    count = max(1, args.simulate)
    if count > 1 and backend_name != "fake":
        raise ValueError("--simulate runs simulated nodes: it needs the fake backend")
    hostname = args.hostname or conf.get("launcher", "hostname") or socket.gethostname()
    launchers = []
    for index in range(count):
        node_dir = state_dir if count == 1 else state_dir / f"node-{index:05d}"
        store = StateStore(node_dir, fsync=conf.get("launcher", "state_fsync"))
        backend = backends.load(backend_name, conf, node_dir)
        options = LauncherOptions(
            hostname=hostname if count == 1 else f"{hostname}-{index:05d}",
            availability_zone=conf.get("launcher", "availability_zone"),
            reserve_mem_mb=conf.get("launcher", "reserve_mem_mb"),
            reserve_disk_mb=conf.get("launcher", "reserve_disk_mb"),
            stats_interval=conf.get("launcher", "stats_interval"),
            ca_file=ca,
        )
        launchers.append(Launcher(backend, store, options))
    collector.settle()
    launcher = launchers[0]
    LOG.info(
        "launcher node=%s host=%s backend=%s scheduler=%s:%d state=%s nodes=%d",
        launcher.uuid,
        launcher.options.hostname,
        backend_name,
        host,
        port,
        state_dir,
        count,
    )
    running = asyncio.create_task(_run_all(launchers, host, port, context))
    stopping = asyncio.create_task(wait_for_signal())
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    await asyncio.gather(*(each.close() for each in launchers), return_exceptions=True)
    if not running.done():
        running.cancel()
    try:
        await running
    except asyncio.CancelledError:
        pass
    except HandshakeRefused as exc:
        LOG.error("launcher refused by the scheduler: %s", exc)
        return 1
    LOG.info("launcher stopped (%d nodes); their instances keep running", count)
    return 0


async def _run_all(launchers: list, host: str, port: int, context) -> None:  # noqa: ANN001
    """Run every launcher; simulated nodes connect in waves so the scheduler's TLS
    handshakes don't all land at once."""
    from ciaostack.agents.launcher import make_client

    tasks = []
    for start in range(0, len(launchers), WAVE):
        wave = launchers[start : start + WAVE]
        clients = [make_client(each, host, port, context) for each in wave]
        tasks += [asyncio.create_task(each.run(c)) for each, c in zip(wave, clients, strict=True)]
        if len(launchers) > WAVE:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(c.connected.wait() for c in clients)), WAVE_TIMEOUT
                )
    await asyncio.gather(*tasks)


def run(args: argparse.Namespace) -> int:
    conf = config.load(Path(args.config) if args.config else None)
    setup_logging(conf.get("log", "level"))
    return asyncio.run(_serve(conf, args))
