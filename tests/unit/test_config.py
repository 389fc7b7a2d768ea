"""Settings come from defaults, the INI file and CIAOSTACK_* variables, in that order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ciaostack.core import config
from ciaostack.core.config import SETTINGS, load


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CIAOSTACK_* variable of the caller leaks in; home is a fresh directory."""
    for name in list(os.environ):
        if name.startswith(config.ENV_PREFIX):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("CIAOSTACK_HOME", str(home))
    return home


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_without_a_file(clean_env: Path) -> None:
    conf = load()
    for setting in SETTINGS:
        assert conf.get(setting.section, setting.key) == setting.default
    assert conf.home == clean_env
    assert conf.database_url == f"sqlite:///{clean_env / 'ciaostack.db'}"
    assert conf.key_repository == clean_env / "keys"
    assert conf.public_url == "http://127.0.0.1:5000"


def test_file_values_are_typed_like_their_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.conf",
        "[api]\nhost = 192.0.2.10\nport = 8080\npublic_url = https://cloud.example/\n"
        "[database]\nurl = postgresql://u:p%40ss@db/ciaostack\n",
    )
    conf = load(path)
    assert conf.get("api", "port") == 8080
    assert conf.get("api", "host") == "192.0.2.10"
    # No interpolation: '%' in a password stays as written.
    assert conf.database_url == "postgresql://u:p%40ss@db/ciaostack"
    assert conf.public_url == "https://cloud.example"
    assert conf.section("api")["workers"] == 2


def test_file_found_through_home_and_through_ciaostack_config(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(clean_env / "ciaostack.conf", "[api]\nworkers = 5\n")
    assert load().get("api", "workers") == 5
    other = write(tmp_path / "other.conf", "[api]\nworkers = 7\n")
    monkeypatch.setenv("CIAOSTACK_CONFIG", str(other))
    assert load().get("api", "workers") == 7


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "c.conf", "[api]\nport = 8080\n[log]\nlevel = DEBUG\n")
    monkeypatch.setenv("CIAOSTACK_API__PORT", "9999")
    monkeypatch.setenv("CIAOSTACK_IDENTITY__KEY_REPOSITORY", str(tmp_path / "k"))
    conf = load(path)
    assert conf.get("api", "port") == 9999
    assert conf.get("log", "level") == "DEBUG"
    assert conf.key_repository == tmp_path / "k"
    assert conf.public_url == "http://127.0.0.1:9999"


def test_env_name_of_a_setting() -> None:
    [setting] = [s for s in SETTINGS if (s.section, s.key) == ("keystone_authtoken", "auth_url")]
    assert setting.env_name == "CIAOSTACK_KEYSTONE_AUTHTOKEN__AUTH_URL"


def test_unknown_setting_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.conf", "[api]\nport = 8080\nprot = 1\n")
    with pytest.raises(ValueError, match=r"unknown setting \[api\] prot"):
        load(path)


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.conf", "[apl]\nport = 8080\n")
    with pytest.raises(ValueError, match=r"unknown setting \[apl\] port"):
        load(path)


def test_bad_integer_in_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.conf", "[identity]\ntoken_lifetime = an hour\n")
    with pytest.raises(ValueError, match=r"\[identity\] token_lifetime must be an integer"):
        load(path)


def test_bad_integer_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIAOSTACK_API__WORKERS", "two")
    with pytest.raises(ValueError, match=r"\[api\] workers must be an integer"):
        load()
