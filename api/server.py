"""`ciaostack api`: gunicorn serving the falcon app, configured from ciaostack's config."""

from __future__ import annotations

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

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self):  # noqa: ANN201 - the WSGI app
        from ciaostack.api.app import create_app
        from ciaostack.core.logsetup import setup_logging

        setup_logging(self.conf.get("log", "level"))
        return create_app(self.conf)
