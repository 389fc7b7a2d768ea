"""Token throughput of ciaostack against a real OpenStack Keystone, in one run.

    /work/venv/bin/python -m bench.identity [--duration 15] [--concurrency 8] [--rounds 12]

Measures (a) token validation, (b) token issue by the token method (re-scoping
an unscoped token to a project: no password hashing) and (c) token issue by
password (bcrypt at the same cost on both sides), prints requests/s, p50, p99,
server CPU per request and error counts for each server, and the ratios
ciaostack / Keystone. See bench/README.md for what is held equal between the two.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as bench/identity.py rather than -m bench.identity
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import loadgen, report, servers  # noqa: E402
from bench.measure import SCENARIOS, Figures, run_scenario, workload  # noqa: E402

DEFAULT_VENV = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    / "ciaostack-bench"
    / "venv-keystone"
)
# Bounds that keep a full run (3 measurements on 2 servers, warm-ups, setup) near 5 minutes.
MAX_DURATION = 40
MAX_WARMUP = 5
BUSY_LOAD = 1.0  # a load average above this before the start means noisy neighbours


def bounded(low: int, high: int):  # noqa: ANN201 - an argparse type
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.identity", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--duration",
        type=bounded(1, MAX_DURATION),
        default=15,
        help="seconds measured per server and measurement (default 15)",
    )
    parser.add_argument(
        "--warmup",
        type=bounded(0, MAX_WARMUP),
        default=3,
        help="seconds of warm-up load before each (default 3)",
    )
    parser.add_argument(
        "--concurrency", type=bounded(1, 64), default=8, help="wrk connections (default 8)"
    )
    parser.add_argument(
        "--rounds", type=bounded(4, 14), default=12, help="bcrypt cost on both sides (default 12)"
    )
    parser.add_argument(
        "--workers",
        type=bounded(1, 8),
        default=2,
        help="gunicorn workers on both sides (default 2)",
    )
    parser.add_argument(
        "--threads",
        type=bounded(1, 32),
        default=4,
        help="gunicorn gthread threads per worker (default 4)",
    )
    parser.add_argument(
        "--only", default="abc", help="which measurements to run, e.g. ab (default abc)"
    )
    parser.add_argument(
        "--keystone-venv", type=Path, default=DEFAULT_VENV, help=f"default {DEFAULT_VENV}"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    scenarios = [s for s in SCENARIOS if s.key in args.only]
    if not scenarios:
        raise SystemExit("--only names none of a, b, c")
    loadgen.require_wrk()
    keystone_version = servers.ensure_keystone_venv(args.keystone_venv)
    gunicorn = servers.Gunicorn.like_ciaostack(args.workers, args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="ciaostack-bench-"))
    password = secrets.token_urlsafe(16)
    setup = {
        "keystone_version": keystone_version,
        "gunicorn": dataclasses.asdict(gunicorn),
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "bcrypt_rounds": args.rounds,
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg()[0],
    }
    print(
        f"ciaostack vs Keystone {keystone_version}: gunicorn {gunicorn.worker_class} "
        f"workers={gunicorn.workers} threads={gunicorn.threads} keepalive={gunicorn.keepalive}; "
        f"SQLite, Fernet, bcrypt cost {args.rounds}; wrk {args.concurrency} connections; "
        f"{args.warmup} s warm-up, then {args.duration} s in interleaved runs per measurement; "
        f"{os.cpu_count()} CPUs shared by both servers and wrk; work dir {workdir}",
        flush=True,
    )
    if setup["load_average_before"] > BUSY_LOAD:
        print(
            f"note: the machine is busy before the start (load average "
            f"{setup['load_average_before']:.1f}): requests/s will be noisy (interleaved runs "
            "share the noise between both sides; CPU per request is less affected)",
            flush=True,
        )
    started: list[servers.Server] = []
    figures: Figures = {}
    try:
        ours = servers.start_ciaostack(workdir, gunicorn, args.rounds, password)
        started.append(ours)
        peer = servers.start_keystone(workdir, args.keystone_venv, gunicorn, args.rounds, password)
        started.append(peer)
        _, token = ours.issue(ours.password_body(ours.project_scope()))
        servers.copy_catalog(peer, token["catalog"])
        loads = {s.name: workload(s) for s in started}
        for scen in scenarios:
            measured = run_scenario(
                scen, started, loads, args.duration, args.warmup, args.concurrency
            )
            figures.update({(scen.key, name): m for name, m in measured.items()})
    finally:
        for server in started:
            server.stop()
    print()
    report.print_table(figures, scenarios)
    failed = report.loud_errors(figures)
    if args.json:
        report.write_json(args.json, setup, figures, scenarios, failed)
    if args.keep or failed:
        print(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
