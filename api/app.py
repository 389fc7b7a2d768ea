"""The WSGI application: every compat API on one port under its path prefix."""

from __future__ import annotations

import falcon

from ciaostack.api.faults import Faults
from ciaostack.api.middleware import Authenticate, ExternalAuthenticate, RequestId
from ciaostack.compat import glance, keystone, nova
from ciaostack.core import config, errors
from ciaostack.core.config import Config
from ciaostack.core.runtime import Runtime

MODES = ("builtin", "external")


def create_app(conf: Config | None = None):  # noqa: ANN201 - a WSGI callable
    conf = conf or config.load()
    mode = conf.get("identity", "mode")
    if mode not in MODES:
        raise ValueError(f"[identity] mode must be one of {', '.join(MODES)}, not {mode!r}")
    external = mode == "external"
    rt = Runtime(conf)
    auth = ExternalAuthenticate() if external else Authenticate(rt.identity.validate)
    app = falcon.App(middleware=[RequestId(), auth])
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_qs_csv = False
    faults = Faults()
    for exc in (Exception, falcon.HTTPError, errors.CoreError):
        app.add_error_handler(exc, faults.handle)
    glance.register(app, rt, faults)
    nova.register(app, rt, faults)
    if external:
        # keystonemiddleware and its oslo stack take most of a second to import: only
        # when used.
        from ciaostack.api import authtoken

        return authtoken.protect(app, conf)
    keystone.register(app, rt, faults)
    return app
