"""Configuration: one INI file, overridden by environment variables.

Every setting has a default so that `ciaostack up` runs with no file at all.
The file is `$CIAOSTACK_CONFIG`, else `<home>/ciaostack.conf` when it exists,
where home is `$CIAOSTACK_HOME` (default `~/.ciaostack`). Any setting can be
overridden by `CIAOSTACK_<SECTION>__<KEY>` (upper case, double underscore
between section and key), which is how containers and test harnesses configure
a process without writing a file.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
from pathlib import Path
from typing import Any

ENV_PREFIX = "CIAOSTACK_"


@dataclasses.dataclass(frozen=True)
class Setting:
    """One documented option; the README's configuration table is built from these."""

    section: str
    key: str
    default: Any
    help: str

    @property
    def env_name(self) -> str:
        return f"{ENV_PREFIX}{self.section.upper()}__{self.key.upper()}"


SETTINGS: tuple[Setting, ...] = (
    Setting("database", "url", "", "SQLAlchemy URL; empty means SQLite at <home>/ciaostack.db"),
    Setting("api", "host", "127.0.0.1", "address the API server binds"),
    Setting("api", "port", 5000, "port of the API server (every service on it)"),
    Setting("api", "workers", 2, "gunicorn worker processes"),
    Setting(
        "api", "threads", 4, "threads per gunicorn worker (gthread workers keep connections alive)"
    ),
    Setting("api", "public_url", "", "base URL put in the catalog; empty means http://host:port"),
    Setting("identity", "mode", "builtin", "builtin, or external (trust an external Keystone)"),
    Setting("identity", "token_lifetime", 3600, "seconds a token stays valid"),
    Setting("identity", "key_repository", "", "Fernet key directory; empty means <home>/keys"),
    Setting("identity", "max_active_keys", 3, "keys kept by rotation (staged + primary + old)"),
    Setting("identity", "password_hash_rounds", 12, "bcrypt cost for stored passwords"),
    Setting("identity", "cache_ttl", 300, "seconds a validated token stays in the cache"),
    Setting("identity", "revocation_poll", 5, "seconds between revocation checks in the DB"),
    Setting("identity", "region", "RegionOne", "region of the catalog's endpoints"),
    Setting("policy", "file", "", "operator policy file (YAML or JSON) over the defaults"),
    Setting("log", "level", "INFO", "log level of every ciaostack process"),
    Setting("keystone_authtoken", "auth_url", "", "external mode: Keystone URL for validation"),
    Setting("keystone_authtoken", "www_authenticate_uri", "", "external mode: URL for clients"),
    Setting("keystone_authtoken", "username", "", "external mode: service user"),
    Setting("keystone_authtoken", "password", "", "external mode: service user's password"),
    Setting("keystone_authtoken", "project_name", "service", "external mode: service project"),
    Setting(
        "ssntp", "host", "127.0.0.1", "scheduler address: where it listens, where peers connect"
    ),
    Setting("ssntp", "port", 8888, "scheduler SSNTP port"),
    Setting("ssntp", "ca", "", "cluster CA certificate; empty means <home>/pki/ca.pem"),
    Setting("ssntp", "heartbeat", 5.0, "seconds between heartbeats; 3 missed drop the peer"),
    Setting("ssntp", "max_payload", 1048576, "largest SSNTP payload accepted, in bytes"),
    Setting(
        "scheduler", "cert", "", "scheduler key+certificate; empty means <home>/pki/scheduler.pem"
    ),
    Setting(
        "controller",
        "cert",
        "",
        "controller key+certificate; empty means <home>/pki/controller.pem",
    ),
    Setting("controller", "start_attempts", 3, "nodes tried before an instance goes to ERROR"),
    Setting("controller", "build_timeout", 300, "seconds an instance may stay in BUILD"),
    Setting("controller", "poll_interval", 0.2, "seconds between outbox polls on SQLite"),
    Setting(
        "controller",
        "resend_after",
        15.0,
        "seconds without news before a START or DELETE is sent again",
    ),
    Setting(
        "controller",
        "task_timeout",
        1800,
        "seconds a server action (stop, pause, rebuild, resize, snapshot...) may wait "
        "for its node's answer before it fails with a fault",
    ),
    Setting("keystone_authtoken", "user_domain_name", "Default", "external mode"),
    Setting("keystone_authtoken", "project_domain_name", "Default", "external mode"),
    Setting("keystone_authtoken", "cafile", "", "external mode: CA bundle for Keystone's TLS"),
    Setting(
        "keystone_authtoken",
        "interface",
        "internal",
        "external mode: catalog interface of the identity endpoint used for validation",
    ),
    Setting("keystone_authtoken", "region_name", "", "external mode: region of that endpoint"),
    Setting(
        "keystone_authtoken",
        "token_cache_time",
        300,
        "external mode: seconds a validated token is trusted before asking Keystone again "
        "(a revoked token may work this long)",
    ),
    # --- image (Glance v2) ---
    Setting(
        "image",
        "store",
        "file",
        "where image data lives: file (a directory); other stores implement "
        "ciaostack.core.images.store.Store",
    ),
    Setting("image", "store_path", "", "file store directory; empty means <home>/images"),
    Setting(
        "image",
        "max_image_size",
        1099511627776,
        "largest image accepted, in bytes (413 beyond it, nothing stored)",
    ),
    Setting("image", "quota_images", -1, "images a project may own; -1 means no limit"),
    Setting(
        "image", "quota_total_size", -1, "bytes of image data a project may store; -1: no limit"
    ),
    Setting(
        "image",
        "disk_formats",
        "ami,ari,aki,vhd,vhdx,vmdk,raw,qcow2,vdi,iso,ploop",
        "disk formats images may declare (comma-separated)",
    ),
    Setting(
        "image",
        "container_formats",
        "ami,ari,aki,bare,ovf,ova,docker,compressed",
        "container formats images may declare (comma-separated)",
    ),
    Setting(
        "image",
        "web_download_allow",
        "",
        "URL prefixes the web-download import may fetch (comma-separated, e.g. "
        "https://cloud-images.ubuntu.com/); empty disables web-download",
    ),
    # --- launcher (compute-node agent; agents/launcher.py) ---
    Setting("launcher", "scheduler_host", "", "scheduler to connect to; empty means [ssntp] host"),
    Setting("launcher", "scheduler_port", 0, "scheduler SSNTP port; 0 means [ssntp] port"),
    Setting("launcher", "cert", "", "launcher key+certificate; empty means <home>/pki/agent.pem"),
    Setting("launcher", "ca", "", "cluster CA certificate; empty means [ssntp] ca"),
    Setting(
        "launcher",
        "state_dir",
        "",
        "node UUID and per-instance state (and the fake backend's instances); "
        "empty means <home>/launcher",
    ),
    Setting(
        "launcher",
        "state_fsync",
        True,
        "fsync state files (guards against power loss; a killed launcher loses nothing either way)",
    ),
    Setting("launcher", "backend", "fake", "what runs instances: fake"),
    Setting("launcher", "hostname", "", "node name reported to the cloud; empty means the host's"),
    Setting("launcher", "availability_zone", "nova", "availability zone of this node"),
    Setting("launcher", "reserve_mem_mb", 512, "memory kept back from instances; FULL under it"),
    Setting("launcher", "reserve_disk_mb", 1024, "disk kept back from instances; FULL under it"),
    Setting("launcher", "stats_interval", 10.0, "seconds between STATS reports"),
    Setting("launcher", "fake_boot_delay", 0.05, "fake backend: seconds an instance takes to boot"),
    Setting(
        "launcher", "fake_failure_rate", 0.0, "fake backend: share of creates that fail (0 to 1)"
    ),
    Setting("launcher", "fake_mem_mb", 16384, "fake backend: node memory in MB"),
    Setting("launcher", "fake_disk_mb", 204800, "fake backend: node disk in MB"),
    Setting("launcher", "fake_vcpus", 16, "fake backend: node vCPUs"),
    # --- network (project networks and IPAM; core/network) ---
    Setting(
        "network",
        "pool",
        "172.16.0.0/12",
        "private IPv4 range that project subnets are carved from (a /8 or smaller)",
    ),
    Setting(
        "network",
        "subnet_prefix",
        24,
        "prefix length of each project subnet; a project gets another one when its subnets fill",
    ),
    Setting(
        "network",
        "project_network_name",
        "private",
        "name of the network every project gets (the key of a server's addresses)",
    ),
    Setting("network", "mac_prefix", "fa:16:3e", "first three bytes of generated MAC addresses"),
)


def home_dir() -> Path:
    return Path(os.environ.get("CIAOSTACK_HOME", Path.home() / ".ciaostack")).expanduser()


class Config:
    """Resolved settings; values are typed like their defaults."""

    def __init__(self, values: dict[tuple[str, str], Any], home: Path) -> None:
        self._values = values
        self.home = home

    def get(self, section: str, key: str) -> Any:
        return self._values[(section, key)]

    def section(self, section: str) -> dict[str, Any]:
        return {k: v for (s, k), v in self._values.items() if s == section}

    @property
    def database_url(self) -> str:
        return self.get("database", "url") or f"sqlite:///{self.home / 'ciaostack.db'}"

    @property
    def key_repository(self) -> Path:
        return Path(self.get("identity", "key_repository") or self.home / "keys")

    def pki_file(self, section: str, key: str, default_name: str) -> Path:
        """A certificate or CA setting, or its default file in <home>/pki."""
        configured = self.get(section, key)
        return Path(configured) if configured else self.home / "pki" / default_name

    @property
    def public_url(self) -> str:
        url = self.get("api", "public_url")
        if not url:
            url = f"http://{self.get('api', 'host')}:{self.get('api', 'port')}"
        return url.rstrip("/")


def _coerce(setting: Setting, raw: str) -> Any:
    if isinstance(setting.default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(setting.default, int):
        try:
            return int(raw)
        except ValueError as exc:
            raise ValueError(f"[{setting.section}] {setting.key} must be an integer") from exc
    if isinstance(setting.default, float):
        try:
            return float(raw)
        except ValueError as exc:
            raise ValueError(f"[{setting.section}] {setting.key} must be a number") from exc
    return raw


def config_path(home: Path) -> Path:
    return Path(os.environ.get("CIAOSTACK_CONFIG", home / "ciaostack.conf"))


def load(path: Path | None = None) -> Config:
    home = home_dir()
    path = path or config_path(home)
    parser = configparser.ConfigParser(interpolation=None)
    if path.exists():
        parser.read(path)
    known = {(s.section, s.key) for s in SETTINGS}
    for section in parser.sections():
        for key in parser[section]:
            if (section, key) not in known:
                raise ValueError(f"{path}: unknown setting [{section}] {key}")
    values: dict[tuple[str, str], Any] = {}
    for setting in SETTINGS:
        value: Any = setting.default
        if parser.has_option(setting.section, setting.key):
            value = _coerce(setting, parser.get(setting.section, setting.key))
        env = os.environ.get(setting.env_name)
        if env is not None:
            value = _coerce(setting, env)
        values[(setting.section, setting.key)] = value
    return Config(values, home)
