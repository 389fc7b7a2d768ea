"""The three token measurements and how one of them is run on both servers."""

from __future__ import annotations

import dataclasses

from bench import loadgen, servers

TARGET_RATIO = 10.0


@dataclasses.dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    target: float | None  # minimum ciaostack / Keystone throughput ratio, if any
    # Length of one interleaved run: requests still in flight when a run ends are
    # not counted, which matters only when a request takes a sizeable part of a second.
    slice_s: int
    # Requests sent one by one, each on a new connection, before the warm-up: the
    # workers' lazy first-use set-up then happens without concurrency (Keystone's
    # policy enforcer is not thread-safe on first use).
    probes: int


SCENARIOS = (
    Scenario("a", "validate token", TARGET_RATIO, slice_s=5, probes=20),
    Scenario("b", "issue by token", TARGET_RATIO, slice_s=5, probes=20),
    Scenario("c", "issue by password", None, slice_s=15, probes=2),
)


@dataclasses.dataclass(frozen=True)
class Measured:
    """One server's figures for one scenario."""

    result: loadgen.Result  # all runs merged
    runs_rps: tuple[float, ...]  # each interleaved run on its own, to show the spread
    cpu_s: float  # CPU time the server's processes used during the runs
    tracebacks: int  # logged by the server during the runs
    response_bytes: int

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_s * 1000 / self.result.requests if self.result.requests else float("nan")


Figures = dict[tuple[str, str], Measured]  # (scenario key, server name) -> figures


def workload(server: servers.Server) -> dict[str, loadgen.Request]:
    """The three requests for one server, with tokens it issued itself."""
    scoped = server.password_body(server.project_scope())
    auth_token, token = server.issue(scoped)
    subject_token, _ = server.issue(scoped)
    unscoped_token, _ = server.issue(server.password_body("unscoped"))
    rescope = {
        "auth": {
            "identity": {"methods": ["token"], "token": {"id": unscoped_token}},
            "scope": {"project": {"id": token["project"]["id"]}},
        }
    }
    url = server.tokens_url
    validate = {"X-Auth-Token": auth_token, "X-Subject-Token": subject_token}
    return {
        "a": loadgen.Request("GET", url, validate, None, 200),
        "b": loadgen.Request("POST", url, {}, rescope, 201),
        "c": loadgen.Request("POST", url, {}, scoped, 201),
    }


def slices(duration: int, slice_s: int) -> tuple[int, int]:
    """(count, seconds): a measurement's duration cut into runs of about `slice_s`."""
    count = max(1, round(duration / slice_s))
    return count, max(1, round(duration / count))


def warm_up(
    scen: Scenario, server: servers.Server, request: loadgen.Request, seconds: int, conns: int
) -> None:
    warm = loadgen.run(request, seconds, conns)
    if warm.errors:
        print(
            f"  ({scen.key}) {server.name:<10} warm-up (not counted): "
            f"{warm.bad_status} responses >= 400, {warm.socket_errors} socket errors",
            flush=True,
        )


def run_scenario(
    scen: Scenario,
    started: list[servers.Server],
    loads: dict[str, dict[str, loadgen.Request]],
    duration: int,
    warmup: int,
    concurrency: int,
) -> dict[str, Measured]:
    """Probe and warm up both servers, then alternate short runs between them.

    Interleaving spreads any drift or neighbour load on the machine over both
    sides instead of charging it to whichever ran second; the order flips at
    every round.
    """
    sizes: dict[str, int] = {}
    for server in started:
        request = loads[server.name][scen.key]
        sizes[server.name] = max(request.probe() for _ in range(scen.probes))
        if warmup:
            warm_up(scen, server, request, warmup, concurrency)
    parts: dict[str, list[loadgen.Result]] = {s.name: [] for s in started}
    cpu = dict.fromkeys(parts, 0.0)
    tracebacks = dict.fromkeys(parts, 0)
    count, seconds = slices(duration, scen.slice_s)
    for i in range(count):
        for server in started if i % 2 == 0 else started[::-1]:
            offset, cpu_before = server.log_size(), server.cpu_seconds()
            parts[server.name].append(
                loadgen.run(loads[server.name][scen.key], seconds, concurrency)
            )
            cpu[server.name] += server.cpu_seconds() - cpu_before
            tracebacks[server.name] += server.tracebacks_since(offset)
    measured: dict[str, Measured] = {}
    for server in started:
        loads[server.name][scen.key].probe()  # still answering correctly after the load
        measured[server.name] = m = Measured(
            result=loadgen.Result.merge(parts[server.name]),
            runs_rps=tuple(p.rps for p in parts[server.name]),
            cpu_s=cpu[server.name],
            tracebacks=tracebacks[server.name],
            response_bytes=sizes[server.name],
        )
        print(
            f"  ({scen.key}) {server.name:<10} {m.result.rps:9.1f} req/s "
            f"p50 {m.result.p50_ms:8.2f} ms  p99 {m.result.p99_ms:8.2f} ms  "
            f"CPU {m.cpu_ms_per_request:6.2f} ms/req  errors {m.result.errors}  "
            f"response {m.response_bytes} B  runs: " + " ".join(f"{x:.0f}" for x in m.runs_rps),
            flush=True,
        )
    return measured
