"""External Keystone mode's keystonemiddleware set-up: options, and logs without tokens."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from keystonemiddleware import auth_token

from ciaostack.api import authtoken
from ciaostack.core import config

SERVICE = {
    "AUTH_URL": "https://keystone.example/identity",
    "USERNAME": "nova",
    "PASSWORD": "s3cret",
}


@pytest.fixture
def conf_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # noqa: ANN201
    """Returns a loader of the configuration with the given [keystone_authtoken] values."""
    for name in list(os.environ):
        if name.startswith(config.ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CIAOSTACK_HOME", str(tmp_path))

    def load(**values: str) -> config.Config:
        for key, value in values.items():
            monkeypatch.setenv(f"CIAOSTACK_KEYSTONE_AUTHTOKEN__{key}", value)
        return config.load()

    return load


def test_missing_service_user_settings_are_named(conf_env) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="username, password"):
        authtoken.middleware_options(conf_env(AUTH_URL=SERVICE["AUTH_URL"]))


def test_options_reach_the_middleware_without_unknown_option_warnings(
    conf_env,  # noqa: ANN001
    caplog: pytest.LogCaptureFixture,
) -> None:
    options = authtoken.middleware_options(conf_env(**SERVICE, TOKEN_CACHE_TIME="7"))
    assert options["www_authenticate_uri"] == SERVICE["AUTH_URL"]
    assert options["delay_auth_decision"] is True
    with caplog.at_level(logging.WARNING):
        middleware = auth_token.AuthProtocol(lambda env, start: [], options)
    assert "not known" not in caplog.text
    assert middleware._conf.get("token_cache_time") == 7
    plugin = middleware._auth
    assert plugin.auth_url == SERVICE["AUTH_URL"]
    assert (plugin._username, plugin._password) == ("nova", "s3cret")
    assert plugin._project_name == "service"


def test_keystone_error_bodies_lose_the_token(caplog: pytest.LogCaptureFixture) -> None:
    """Keystone answers an unknown token with "Could not find token: <id>", which
    auth_token logs at INFO."""
    authtoken._quiet_logs()
    token = "gAAAAABnX" + "Qz-_9" * 40
    body = json.dumps({"error": {"code": 404, "message": f"Could not find token: {token}."}})
    with caplog.at_level(logging.INFO):
        logging.getLogger(auth_token.__name__).info("Identity response: %s", body)
    assert token not in caplog.text
    assert "Could not find token: ***." in caplog.text
