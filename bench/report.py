"""The benchmark's table, ratios, error banner and JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.measure import Figures, Scenario

SERVERS = ("ciaostack", "keystone")


def ratio(figures: Figures, key: str) -> float | None:
    """ciaostack / Keystone requests per second."""
    ours, theirs = figures[(key, "ciaostack")].result, figures[(key, "keystone")].result
    return ours.rps / theirs.rps if theirs.rps else None


def cpu_ratio(figures: Figures, key: str) -> float | None:
    """Keystone / ciaostack CPU per request: the throughput ratio the servers' own
    work implies, much less moved than requests/s by other load on the machine."""
    ours, theirs = figures[(key, "ciaostack")], figures[(key, "keystone")]
    if not (ours.cpu_s and ours.result.requests and theirs.result.requests):
        return None
    return theirs.cpu_ms_per_request / ours.cpu_ms_per_request


def print_table(figures: Figures, scenarios: list[Scenario]) -> None:
    head = (
        f"{'measurement':<24}{'server':<11}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'CPU ms/req':>11}{'requests':>9}{'non-2xx':>8}{'sock err':>9}"
    )
    print(head)
    print("-" * len(head))
    for scen in scenarios:
        for name in SERVERS:
            m = figures[(scen.key, name)]
            r = m.result
            label = f"({scen.key}) {scen.title}" if name == SERVERS[0] else ""
            print(
                f"{label:<24}{name:<11}{r.rps:>9.1f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
                f"{m.cpu_ms_per_request:>11.2f}{r.requests:>9}{r.bad_status:>8}"
                f"{r.socket_errors:>9}"
            )
    print()
    print("ratios, ciaostack / keystone:   requests/s   (CPU per request, keystone / ciaostack)")
    for scen in scenarios:
        x, c = ratio(figures, scen.key), cpu_ratio(figures, scen.key)
        cpu = f"({c:.2f}x)" if c is not None else "(n/a)"
        if x is None:
            print(f"  ({scen.key}) {scen.title:<20}      n/a  {cpu:>9}  Keystone completed nothing")
            continue
        verdict = ""
        if scen.target is not None:
            verdict = f"  target >= {scen.target:.0f}x: {'met' if x >= scen.target else 'MISSED'}"
        print(f"  ({scen.key}) {scen.title:<20} {x:7.2f}x  {cpu:>9}{verdict}")


def loud_errors(figures: Figures) -> bool:
    """Print a banner for every failed request or server traceback while measuring."""
    problems: list[str] = []
    for (key, name), m in figures.items():
        r = m.result
        if r.errors:
            problems.append(
                f"({key}) {name}: {r.bad_status} responses >= 400, {r.socket_errors} socket errors"
            )
        if not r.requests:
            problems.append(f"({key}) {name}: no request completed")
        if m.tracebacks:
            problems.append(f"({key}) {name}: {m.tracebacks} tracebacks in the server log")
    if problems:
        bar = "!" * 72
        print(f"\n{bar}\n!!! THIS RUN HAD ERRORS: its figures do not measure what they claim")
        for line in problems:
            print(f"!!! {line}")
        print(bar)
    return bool(problems)


def write_json(
    path: Path, setup: dict[str, Any], figures: Figures, scenarios: list[Scenario], failed: bool
) -> None:
    results = {
        f"{key}/{name}": {
            "rps": m.result.rps,
            "p50_ms": m.result.p50_ms,
            "p99_ms": m.result.p99_ms,
            "cpu_ms_per_request": m.cpu_ms_per_request,
            "requests": m.result.requests,
            "seconds": m.result.seconds,
            "bad_status": m.result.bad_status,
            "socket_errors": m.result.socket_errors,
            "tracebacks": m.tracebacks,
            "runs_rps": list(m.runs_rps),
            "response_bytes": m.response_bytes,
        }
        for (key, name), m in figures.items()
    }
    payload = {
        "setup": setup,
        "results": results,
        "ratios": {s.key: ratio(figures, s.key) for s in scenarios},
        "cpu_ratios": {s.key: cpu_ratio(figures, s.key) for s in scenarios},
        "errors": failed,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
