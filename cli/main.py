"""The `ciaostack` console script."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ciaostack.cli import launcher, services
from ciaostack.core import config


def _load(args: argparse.Namespace) -> config.Config:
    return config.load(Path(args.config) if args.config else None)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from ciaostack.core.db import migrate

    conf = _load(args)
    conf.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    migrate.upgrade(conf.database_url, args.revision)
    return 0


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from ciaostack.core.compute import BOOTSTRAP_SEEDS
    from ciaostack.core.db.session import Database
    from ciaostack.core.identity.bootstrap import bootstrap

    conf = _load(args)
    password = args.admin_password or os.environ.get("CIAOSTACK_BOOTSTRAP_PASSWORD")
    db = Database(conf.database_url)
    ids = bootstrap(
        db,
        password,
        public_url=args.public_url or conf.public_url,
        region=conf.get("identity", "region"),
        rounds=conf.get("identity", "password_hash_rounds"),
        seeds=BOOTSTRAP_SEEDS,
    )
    db.dispose()
    for key, value in ids.items():
        print(f"{key}={value}")
    return 0


def cmd_token_keys(args: argparse.Namespace) -> int:
    from ciaostack.core.identity.keys import KeyRepository

    conf = _load(args)
    repo = KeyRepository(conf.key_repository, conf.get("identity", "max_active_keys"))
    if args.action == "setup":
        created = repo.setup()
        print(f"key repository {'created' if created else 'already present'} at {repo.path}")
    else:
        print(f"rotated: key {repo.rotate()} is now primary in {repo.path}")
    return 0


def cmd_policy_defaults(args: argparse.Namespace) -> int:
    from ciaostack.core.policy import defaults_yaml

    sys.stdout.write(defaults_yaml())
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from ciaostack.api.server import APIServer

    conf = _load(args)
    overrides = {}
    if args.bind:
        overrides["bind"] = args.bind
    if args.workers:
        overrides["workers"] = args.workers
    APIServer(conf, overrides).run()
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from ciaostack.cli import up

    return up.cmd_up(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ciaostack", description=__doc__)
    parser.add_argument("--config", help="configuration file (default $CIAOSTACK_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="datastore schema").add_subparsers(dest="db_cmd", required=True)
    up = db.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="heads")
    up.set_defaults(func=cmd_db_upgrade)

    boot = sub.add_parser("bootstrap", help="create the admin, roles and catalog (idempotent)")
    boot.add_argument("--admin-password", help="or $CIAOSTACK_BOOTSTRAP_PASSWORD")
    boot.add_argument("--public-url", help="base URL for the catalog (default from config)")
    boot.set_defaults(func=cmd_bootstrap)

    keys = sub.add_parser("token-keys", help="Fernet key repository")
    keys.add_argument("action", choices=["setup", "rotate"])
    keys.set_defaults(func=cmd_token_keys)

    pol = sub.add_parser("policy", help="policy rules")
    pol.add_argument("action", choices=["defaults"])
    pol.set_defaults(func=cmd_policy_defaults)

    api = sub.add_parser("api", help="serve every API with gunicorn")
    api.add_argument("--bind", help="host:port (default from config)")
    api.add_argument("--workers", type=int)
    api.set_defaults(func=cmd_api)

    services.add_parsers(sub)
    launcher.add_parser(sub)  # `ciaostack launcher` (cli/launcher.py)

    allinone = sub.add_parser("up", help="the whole cloud on this machine, no configuration")
    allinone.set_defaults(func=cmd_up)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"ciaostack: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
