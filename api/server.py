"""`ciaostack api`: gunicorn serving the falcon app, configured from ciaostack's config."""

from __future__ import annotations

import socket
from typing import Any

from gunicorn.app.base import BaseApplication

from ciaostack.core.config import Config


class APIServer(BaseApplication):
    def __init__(self, conf: Config, overrides: dict[str, Any] | None = None) -> None:
        self.conf = conf
        self.options = {
            "bind": f"{conf.get('api', 'host')}:{conf.get('api', 'port')}",
            "workers": conf.get("api", "workers"),
            "threads": conf.get("api", "threads"),
            "worker_class": "gthread",
            # A listening socket per worker, among which the kernel spreads new
            # connections. With one shared socket, whichever worker wakes first
            # accepts a burst of them: keep-alive clients that connect together could
            # all land on one worker, one core, while the other idled (bench/README.md).
            "reuse_port": True,
            "when_ready": _announce_address,
            "control_socket_disable": True,
            "accesslog": None,  # ciaostack logs one structured line per request itself
            "loglevel": conf.get("log", "level").lower(),
            # Longer than any client poll interval (the CLI's --wait polls every few
            # seconds): a connection closed just as a client reuses it fails the request.
            "keepalive": 75,
            "timeout": 120,
            "proc_name": "ciaostack-api",
            **(overrides or {}),
        }
        super().__init__()

    def run(self) -> None:
        refuse_if_taken(self.options["bind"])
        super().run()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self):  # noqa: ANN201 - the WSGI app
        from ciaostack.api.app import create_app
        from ciaostack.core import collector
        from ciaostack.core.db.session import favour_transactions
        from ciaostack.core.logsetup import setup_logging

        setup_logging(self.conf.get("log", "level"))
        app = create_app(self.conf)
        collector.settle()
        favour_transactions()
        return app


def _announce_address(arbiter) -> None:  # noqa: ANN001 - gunicorn's Arbiter
    """gunicorn's own "Listening at" line is empty when each worker opens its socket."""
    arbiter.log.info("Listening at: %s (a socket in each worker)", ", ".join(arbiter.cfg.bind))


def refuse_if_taken(bind: str) -> None:
    """Exit if something listens on `bind` already. With a socket per worker
    (`reuse_port`), a second server started on the same port by mistake would join
    the first and take a share of its connections instead of failing to bind: a plain
    bind first (no SO_REUSEPORT) fails as it would with one shared socket."""
    if bind.startswith(("unix:", "fd://")):
        return
    host, _, port = bind.rpartition(":")
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]") or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn's own
        try:
            probe.bind(address)
        except OSError as exc:
            raise SystemExit(f"ciaostack api: cannot listen on {bind}: {exc.strerror}") from exc
