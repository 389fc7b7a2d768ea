"""The WSGI application: every compat API on one port under its path prefix."""

from __future__ import annotations

import falcon

from ciaostack.api.faults import Faults
from ciaostack.api.middleware import Authenticate, ExternalAuthenticate, RequestId
from ciaostack.compat import keystone
from ciaostack.core import config, errors
from ciaostack.core.config import Config
from ciaostack.core.runtime import Runtime


def create_app(conf: Config | None = None):  # noqa: ANN201 - a WSGI callable
    conf = conf or config.load()
    rt = Runtime(conf)
    external = conf.get("identity", "mode") == "external"
    auth = ExternalAuthenticate() if external else Authenticate(rt.identity.validate)
    app = falcon.App(middleware=[RequestId(), auth])
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_qs_csv = False
    faults = Faults()
    for exc in (Exception, falcon.HTTPError, errors.CoreError):
        app.add_error_handler(exc, faults.handle)
    if not external:
        keystone.register(app, rt, faults)
    return app
