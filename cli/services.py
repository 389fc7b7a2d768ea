"""`ciaostack certs` and `ciaostack scheduler`: the PKI and the SSNTP server process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from ciaostack.core import collector, config
from ciaostack.core.config import Config
from ciaostack.core.logsetup import setup_logging
from ciaostack.core.ssntp import certs
from ciaostack.core.ssntp.frames import Role

LOG = logging.getLogger("ciaostack.cli")

# What `ciaostack up` (and `certs init --local`) issues for a one-machine cloud.
LOCAL_CERTS = {
    "scheduler": Role.SCHEDULER | Role.SERVER,
    "controller": Role.CONTROLLER,
    "agent": Role.AGENT,
}


def parse_roles(text: str) -> Role:
    roles = Role(0)
    for name in text.split(","):
        try:
            roles |= certs.ROLE_NAMES[name.strip().lower()]
        except KeyError as exc:
            raise ValueError(f"unknown role {name!r}; use {', '.join(certs.ROLE_NAMES)}") from exc
    return roles


def ensure_ca(conf: Config) -> tuple[Path, Path]:
    ca = conf.pki_file("ssntp", "ca", "ca.pem")
    key = ca.with_name("ca-key.pem")
    if not ca.exists():
        certs.create_ca(ca.parent)
    return ca, key


def ensure_local_certs(conf: Config) -> None:
    """The CA and one certificate per local process; existing files are kept."""
    ca, key = ensure_ca(conf)
    for name, roles in LOCAL_CERTS.items():
        if not (ca.parent / f"{name}.pem").exists():
            certs.issue(ca.parent, ca, key, roles, name, [conf.get("ssntp", "host"), "localhost"])


def _conf(args: argparse.Namespace) -> Config:
    return config.load(Path(args.config) if args.config else None)


def cmd_certs(args: argparse.Namespace) -> int:
    conf = _conf(args)
    if args.action == "init":
        ensure_ca(conf)
        if args.local:
            ensure_local_certs(conf)
        print(f"CA: {conf.pki_file('ssntp', 'ca', 'ca.pem')}")
        return 0
    ca, key = ensure_ca(conf)
    if not key.exists():
        raise ValueError(f"{key} is missing: certificates are issued where the CA key lives")
    out = Path(args.out) if args.out else ca.parent
    path = certs.issue(out, ca, key, parse_roles(args.role), args.name, args.host or None)
    print(path)
    return 0


async def _serve_scheduler(conf: Config) -> None:
    from ciaostack.core.scheduler.service import Scheduler
    from ciaostack.core.ssntp.transport import Server, server_context

    ca = conf.pki_file("ssntp", "ca", "ca.pem")
    cert = conf.pki_file("scheduler", "cert", "scheduler.pem")
    scheduler = Scheduler()
    server = Server(
        scheduler.uuid,
        Role.SCHEDULER | Role.SERVER,
        server_context(cert, ca),
        scheduler.handle,
        scheduler.on_connect,
        scheduler.on_disconnect,
        heartbeat=conf.get("ssntp", "heartbeat"),
        max_payload=conf.get("ssntp", "max_payload"),
    )
    scheduler.attach(server)
    collector.settle()
    port = await server.start(conf.get("ssntp", "host"), conf.get("ssntp", "port"))
    LOG.info("scheduler %s listening on %s:%d", scheduler.uuid, conf.get("ssntp", "host"), port)
    await wait_for_signal()
    await server.close()


async def wait_for_signal() -> None:
    """Returns at SIGINT or SIGTERM: how every long-running command stops cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def cmd_scheduler(args: argparse.Namespace) -> int:
    conf = _conf(args)
    setup_logging(conf.get("log", "level"))
    asyncio.run(_serve_scheduler(conf))
    return 0


async def _serve_controller(conf: Config) -> None:
    from ciaostack.core.controller.service import Controller, client_factory
    from ciaostack.core.db.session import Database, favour_transactions
    from ciaostack.core.images.store import open_store

    db = Database(conf.database_url)
    favour_transactions()
    controller = Controller(
        db,
        client_factory(conf),
        max_attempts=conf.get("controller", "start_attempts"),
        build_timeout=conf.get("controller", "build_timeout"),
        resend_after=conf.get("controller", "resend_after"),
        task_timeout=conf.get("controller", "task_timeout"),
        poll_interval=conf.get("controller", "poll_interval"),
        image_store=open_store(conf),
    )
    collector.settle()
    runner = asyncio.create_task(controller.run())
    stopper = asyncio.create_task(wait_for_signal())
    done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    await controller.stop()
    db.dispose()
    if runner in done and runner.exception() is not None:
        raise runner.exception()  # type: ignore[misc]


def cmd_controller(args: argparse.Namespace) -> int:
    conf = _conf(args)
    setup_logging(conf.get("log", "level"))
    asyncio.run(_serve_controller(conf))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("certs", help="cluster CA and SSNTP role certificates")
    c.add_argument("action", choices=["init", "issue"])
    c.add_argument(
        "--local",
        action="store_true",
        help="init: also issue scheduler, controller and agent certificates",
    )
    c.add_argument(
        "--role",
        default="agent",
        help="issue: comma-separated roles (agent, netagent, controller, ...)",
    )
    c.add_argument("--name", default="agent", help="issue: certificate name (file NAME.pem)")
    c.add_argument("--host", action="append", help="issue: DNS name or IP (repeatable)")
    c.add_argument("--out", help="issue: directory for the certificate (default: the CA's)")
    c.set_defaults(func=cmd_certs)

    s = sub.add_parser("scheduler", help="run the SSNTP scheduler")
    s.set_defaults(func=cmd_scheduler)

    ctl = sub.add_parser("controller", help="run the controller (outbox, reports, reconciliation)")
    ctl.set_defaults(func=cmd_controller)
