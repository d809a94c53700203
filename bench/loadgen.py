"""Run wrk with one of the Lua scripts in bench/ and read back its BENCH_RESULT line."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cpu import CpuUsage, sample, usage
from procs import BENCH_DIR

#: One wrk thread: on a 2-core machine the load generator must leave the server a core.
THREADS = 1


class LoadError(RuntimeError):
    """A load run had failed requests: its throughput would not mean anything."""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    non_2xx: int
    socket_errors: int
    accepted: int  # events the answers acknowledged (scripts that read answers only)
    latency_p50_ms: float
    latency_p99_ms: float
    cpu: CpuUsage

    @property
    def ok_requests(self) -> int:
        return self.requests - self.non_2xx

    @property
    def requests_per_s(self) -> float:
        return self.ok_requests / self.duration_s

    @property
    def accepted_per_s(self) -> float:
        return self.accepted / self.duration_s


def run_wrk(
    script: str,
    url: str,
    *,
    connections: int,
    duration_s: float,
    script_args: list[str],
    log_path: Path,
    server_pid: int | None = None,
) -> WrkResult:
    """One wrk run; raises LoadError on any non-2xx answer or socket error."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise LoadError("wrk is not installed (make bench installs it with apt-get)")
    args = [
        wrk, f"-t{THREADS}", f"-c{connections}", f"-d{duration_s:g}s", "--timeout", "30s",
        "-s", script, url, "--", *script_args,
    ]  # fmt: skip
    # Run from bench/ so that the scripts' require("wrk_common") finds the shared module.
    cpu_before, started = sample(server_pid), time.perf_counter()
    done = subprocess.run(args, cwd=BENCH_DIR, capture_output=True, text=True, check=False)
    cpu = usage(cpu_before, sample(server_pid), time.perf_counter() - started)
    with log_path.open("a") as log:
        log.write(f"$ {' '.join(args)}\n{done.stdout}{done.stderr}\n")
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise LoadError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    result = WrkResult(
        requests=raw["requests"],
        duration_s=raw["duration_us"] / 1e6,
        non_2xx=raw["non_2xx"],
        socket_errors=sum(
            raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
        accepted=raw["accepted"],
        latency_p50_ms=raw["latency_p50_us"] / 1000,
        latency_p99_ms=raw["latency_p99_us"] / 1000,
        cpu=cpu,
    )
    if result.non_2xx or result.socket_errors:
        raise LoadError(
            f"{url}: {result.non_2xx} non-2xx answers and {result.socket_errors} socket errors "
            f"in {result.requests} requests; see {log_path}"
        )
    if result.requests == 0:
        raise LoadError(f"{url}: no request completed; see {log_path}")
    return result
