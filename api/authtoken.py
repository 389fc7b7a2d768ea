"""External Keystone mode: keystonemiddleware's auth_token checks tokens for the service APIs.

Requests under the service prefixes pass through `AuthProtocol` with
`delay_auth_decision` on: it strips any identity headers the client sent,
validates X-Auth-Token against the external Keystone (as the configured
service user) and sets X-Identity-Status and the X-User-*/X-Project-*/X-Roles
headers; api.middleware.ExternalAuthenticate then admits or refuses per
resource, so version documents (`public = True`) stay open and refusals come
in the called API's own error format. auth_token adds WWW-Authenticate to
every 401 on the way out.

keystonemiddleware reads its options from a dict (the paste-deploy path).
Options it does not list itself (the service user's, which belong to the
keystoneauth `password` plugin) would each be logged as "not known", so they
go into a private oslo.config object passed in the dict as
`oslo_config_config`; nothing touches the process-wide `cfg.CONF`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from keystoneauth1 import loading
from keystonemiddleware import auth_token
from oslo_config import cfg

from ciaostack.core.config import Config

PROTECTED_PREFIXES = ("/compute", "/volume", "/image", "/network")
GROUP = "keystone_authtoken"
AUTH_TYPE = "password"
SERVICE_USER_OPTIONS = (
    "auth_url",
    "username",
    "password",
    "project_name",
    "user_domain_name",
    "project_domain_name",
)
# Only the status header gates ExternalAuthenticate: without "Confirmed" the
# other identity headers are never read.
STATUS_HEADERS = ("HTTP_X_IDENTITY_STATUS", "HTTP_X_SERVICE_IDENTITY_STATUS")

# Fernet (gAAAA...) and JWS (eyJ...) tokens: long base64url runs, possibly dotted.
_TOKENISH = re.compile(r"[A-Za-z0-9_\-]{40,}(?:\.[A-Za-z0-9_\-]+)*={0,2}")


class RedactTokens(logging.Filter):
    """auth_token logs Keystone's error bodies at INFO/WARNING, and Keystone's
    "Could not find token: <id>" carries the token itself: blank such runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _TOKENISH.sub("***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _quiet_logs() -> None:
    """Even at DEBUG, keep these libraries at INFO: keystoneauth's DEBUG lines carry
    request and response bodies, and auth_token's put a full traceback in the log for
    every bad token a client sends. ciaostack's access log already has each request."""
    middleware = logging.getLogger(auth_token.__name__)
    if not any(isinstance(f, RedactTokens) for f in middleware.filters):
        middleware.addFilter(RedactTokens())
    for logger in (middleware, logging.getLogger("keystoneauth")):
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


def middleware_options(conf: Config) -> dict[str, Any]:
    """The dict AuthProtocol takes, from ciaostack's [keystone_authtoken] settings."""
    settings = conf.section(GROUP)
    missing = [k for k in ("auth_url", "username", "password") if not settings[k]]
    if missing:
        raise ValueError(
            "[identity] mode = external needs [keystone_authtoken] " + ", ".join(missing)
        )
    service_user = cfg.ConfigOpts()
    service_user.register_opts(loading.get_auth_plugin_conf_options(AUTH_TYPE), group=GROUP)
    for key in SERVICE_USER_OPTIONS:
        service_user.set_override(key, settings[key], group=GROUP)
    return {
        "oslo_config_config": service_user,
        "auth_type": AUTH_TYPE,
        "www_authenticate_uri": settings["www_authenticate_uri"] or settings["auth_url"],
        "cafile": settings["cafile"] or None,
        "interface": settings["interface"],
        "region_name": settings["region_name"] or None,
        "token_cache_time": settings["token_cache_time"],
        # ExternalAuthenticate decides, so public resources work without a token.
        "delay_auth_decision": True,
        # Nothing reads X-Service-Catalog; it would only swell every request.
        "include_service_catalog": False,
        "service_token_roles_required": True,
    }


class ProtectPrefixes:
    """Routes requests under PROTECTED_PREFIXES through auth_token, others straight on."""

    def __init__(self, app, protected) -> None:  # noqa: ANN001 - WSGI callables
        self._app = app
        self._protected = protected

    def __call__(self, environ: dict[str, Any], start_response):  # noqa: ANN001, ANN204
        path = environ.get("PATH_INFO", "")
        if any(path == p or path.startswith(p + "/") for p in PROTECTED_PREFIXES):
            return self._protected(environ, start_response)
        # No token is checked here, so no identity status may come from the client.
        for key in STATUS_HEADERS:
            environ.pop(key, None)
        return self._app(environ, start_response)


def protect(app, conf: Config):  # noqa: ANN001, ANN201 - WSGI callables
    """Wrap the falcon app for external Keystone mode."""
    _quiet_logs()
    return ProtectPrefixes(app, auth_token.AuthProtocol(app, middleware_options(conf)))
