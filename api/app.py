"""The WSGI application: every compat API on one port under its path prefix."""

from __future__ import annotations

import falcon

from ciaostack.api.faults import Faults
from ciaostack.api.media import BoundedJSONHandler
from ciaostack.api.middleware import Authenticate, ExternalAuthenticate, RequestId
from ciaostack.compat import glance, keystone, nova
from ciaostack.core import config, errors
from ciaostack.core.config import Config
from ciaostack.core.runtime import Runtime

MODES = ("builtin", "external")
# Keystone (Flask) answers HEAD wherever it answers GET, and clients probe with it.
# Only there: elsewhere a GET may open a data stream that a HEAD would never close.
HEAD_AS_GET_PREFIXES = ("/identity",)


class Router(falcon.routing.CompiledRouter):
    """falcon's router, giving GET-only resources under HEAD_AS_GET_PREFIXES a HEAD."""

    def add_route(self, uri_template: str, resource: object, **kwargs) -> None:  # noqa: ANN003
        if (
            uri_template.startswith(HEAD_AS_GET_PREFIXES)
            and hasattr(resource, "on_get")
            and not hasattr(resource, "on_head")
        ):
            resource.on_head = resource.on_get  # type: ignore[attr-defined]
        super().add_route(uri_template, resource, **kwargs)


def create_app(conf: Config | None = None):  # noqa: ANN201 - a WSGI callable
    conf = conf or config.load()
    mode = conf.get("identity", "mode")
    if mode not in MODES:
        raise ValueError(f"[identity] mode must be one of {', '.join(MODES)}, not {mode!r}")
    external = mode == "external"
    rt = Runtime(conf)
    auth = ExternalAuthenticate() if external else Authenticate(rt.identity.validate)
    app = falcon.App(middleware=[RequestId(), auth], router=Router())
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_qs_csv = False
    json_handler = BoundedJSONHandler()
    app.req_options.media_handlers[falcon.MEDIA_JSON] = json_handler
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = json_handler
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
