"""Load generation with wrk: a closed loop of `concurrency` keep-alive connections.

One static Lua script (wrk_request.lua) takes the method, body and headers from
the environment and prints a JSON summary line, so nothing is parsed out of
wrk's human-readable report.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import requests

SCRIPT = Path(__file__).resolve().parent / "wrk_request.lua"
# A password check at bcrypt cost 12 queued behind seven others takes seconds;
# wrk's default 2 s timeout would count those as errors.
TIMEOUT_S = 60
MAX_WRK_THREADS = 2


@dataclasses.dataclass(frozen=True)
class Request:
    """One fixed HTTP request and the status it must get."""

    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    expect: int

    def probe(self) -> int:
        """Send it once on a new connection; raise unless it gets the expected status.
        Returns the body size."""
        resp = requests.request(
            self.method, self.url, headers=self.headers, json=self.body, timeout=TIMEOUT_S
        )
        if resp.status_code != self.expect:
            raise RuntimeError(
                f"{self.method} {self.url} gave {resp.status_code}, "
                f"expected {self.expect}: {resp.text[:500]}"
            )
        return len(resp.content)


QUANTILES = 1000  # wrk_request.lua reports the latency at every 0.1 %


@dataclasses.dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    bad_status: int  # responses with status >= 400 (wrk's "Non-2xx or 3xx")
    socket_errors: int  # connect, read, write errors and timeouts
    quantiles_us: tuple[float, ...]  # latency at 0.1 %, 0.2 %, ... 100 %

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.bad_status + self.socket_errors

    def percentile_ms(self, p: float) -> float:
        if not self.quantiles_us:
            return float("nan")
        index = min(QUANTILES, max(1, round(p * QUANTILES / 100))) - 1
        return self.quantiles_us[index] / 1000

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)

    @classmethod
    def merge(cls, parts: list[Result]) -> Result:
        """One result for several runs: sums, and percentiles of the pooled latencies.

        Each run's quantiles stand for equal shares of its requests, so the pooled
        distribution weighs every run by its request count.
        """
        # Integer weights: a run's quantile counts its requests, the pool counts
        # QUANTILES times every request, so step k of the pool is at requests * k.
        samples = sorted((value, part.requests) for part in parts for value in part.quantiles_us)
        requests = sum(part.requests for part in parts)
        quantiles: list[float] = []
        seen = 0
        it = iter(samples)
        for step in range(1, QUANTILES + 1 if requests else 1):
            while seen < requests * step:
                value, weight = next(it)
                seen += weight
            quantiles.append(value)
        return cls(
            requests=requests,
            seconds=sum(p.seconds for p in parts),
            bad_status=sum(p.bad_status for p in parts),
            socket_errors=sum(p.socket_errors for p in parts),
            quantiles_us=tuple(quantiles),
        )


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (Debian package `wrk`)")
    return path


def run(request: Request, seconds: int, concurrency: int) -> Result:
    """Drive `request` for `seconds` with `concurrency` connections; wrk's own figures."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as body:
        if request.body is not None:
            json.dump(request.body, body, separators=(",", ":"))
    env = {
        **os.environ,
        "BENCH_METHOD": request.method,
        "BENCH_BODY_FILE": body.name if request.body is not None else "",
        "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in request.headers.items()),
    }
    argv = [
        require_wrk(),
        f"--threads={min(MAX_WRK_THREADS, concurrency)}",
        f"--connections={concurrency}",
        f"--duration={seconds}s",
        f"--timeout={TIMEOUT_S}s",
        f"--script={SCRIPT}",
        request.url,
    ]
    try:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    finally:
        os.unlink(body.name)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    data = json.loads(line.removeprefix("BENCH_RESULT "))
    return Result(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        bad_status=data["status"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        quantiles_us=tuple(data["quantiles_us"]),
    )
