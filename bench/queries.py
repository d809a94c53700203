"""(c) latency of every GET endpoint over the large store, one request at a time.

A live store takes writes all the time, and the service may reuse an aggregate for as long
as the store has taken no write (clickstats.results caches the experiment aggregates of
/analytics/variants-comparison that way). On an idle benchmark store such a cache would
answer every request after the first, which says nothing about production. So each timed
GET follows one click logged through the API (not timed): every request sees a store that
has just been written to, as it would under ingestion. A short second pass without the
writes, each request repeated back to back (the best case for a cache), shows what caching
can add; it is reported, but it is not the headline figure.
"""

from __future__ import annotations

import itertools
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from cpu import CpuUsage, sample, usage
from dataset import Dataset
from procs import Server

#: Rounds of the pass without writes: enough for a median, short because it is secondary.
IDLE_ROUNDS = 5


@dataclass(frozen=True)
class QueryResult:
    path: str  # "path?query", as requested
    median_ms: float
    min_ms: float
    max_ms: float
    idle_median_ms: float  # the same request repeated back to back, no write in between


@dataclass(frozen=True)
class QueryRun:
    results: list[QueryResult]
    startup_s: float  # the server's start-up on the large store, until /health answers
    cpu: CpuUsage  # over the timed pass ("wrk" is 0: the client is this process)
    peak_rss_bytes: int = 0  # the server's largest memory, from start to stop


def endpoints(user: str) -> list[str]:
    """Every GET endpoint that reads the store, with the default window (7 days) and 30."""
    per_window = [
        "/analytics/ctr",
        "/analytics/ctr?variant=search_v1",
        f"/analytics/ctr?user_id={user}",
        "/analytics/rank-metrics",
        "/analytics/response-time",
        f"/analytics/user/{user}",
        "/analytics/variants-comparison",
    ]
    with_30 = [f"{p}{'&' if '?' in p else '?'}days=30" for p in per_window]
    # issue 5: the experiment analysis (its default window is 30 days)
    experiment = ["/experiments/search_ranking/results?days=7", EXPERIMENT_RESULTS]
    # issue 7: the dashboard's endpoints, for 7 and 30 days
    dashboard = [
        f"/analytics/{name}{days}" for name in ("overview", "queries") for days in ("", "?days=30")
    ]
    return [*per_window, *with_30, "/health", *experiment, *dashboard]


EXPERIMENT_RESULTS = "/experiments/search_ranking/results"


def measure_queries(
    dataset: Dataset, work_dir: Path, log: Path, *, requests: int, warmups: int
) -> QueryRun:
    """Median latency per endpoint, one request at a time, each after a write.

    Rounds go over every endpoint in turn (rather than 20 requests to one, then the next),
    so that a noisy moment of the machine is shared out instead of landing on one endpoint.
    """
    paths = endpoints(dataset.sample_user)
    timings: dict[str, list[float]] = {p: [] for p in paths}
    idle: dict[str, list[float]] = {p: [] for p in paths}
    clicks = itertools.count()
    # The server writes (those clicks, and a checkpoint when it stops): it gets a copy, so
    # that the cached file stays exactly as generated.
    store = work_dir / "large.duckdb"
    shutil.copyfile(dataset.path, store)
    with (
        Server.real(store, log, work_dir) as server,
        httpx.Client(base_url=server.url, timeout=120) as client,
    ):
        _check_store(client, dataset)
        assert server.proc is not None

        def after_write(path: str) -> float:
            _log_click(client, next(clicks))
            return _timed_get(client, path)

        for _ in range(warmups):
            for path in paths:
                after_write(path)
        cpu_before, timed_from = sample(server.proc.pid), time.perf_counter()
        for _ in range(requests):
            for path in paths:
                timings[path].append(after_write(path))
        cpu = usage(cpu_before, sample(server.proc.pid), time.perf_counter() - timed_from)
        # Back to back, the same request again and again: the best case for a cache.
        for path in paths:
            for _ in range(IDLE_ROUNDS):
                idle[path].append(_timed_get(client, path))
    results = [
        QueryResult(
            p, statistics.median(t), min(t), max(t), idle_median_ms=statistics.median(idle[p])
        )
        for p, t in timings.items()
    ]
    return QueryRun(results, server.startup_s, cpu, server.peak_rss_bytes)


def _log_click(client: httpx.Client, n: int) -> None:
    body = {
        "event_id": f"bench-query-{time.time_ns():x}-{n}",
        "user_id": "bench-writer",
        "variant": "search_v1",
        "product_id": "sku-1",
        "rank": 1,
        "search_query": "bench",
    }
    client.post("/analytics/log-click", json=body).raise_for_status()


def _timed_get(client: httpx.Client, path: str) -> float:
    """Milliseconds from sending the request to having read the whole answer."""
    started = time.perf_counter()
    response = client.get(path)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {path}: {response.status_code} {response.text}")
    return elapsed_ms


def _check_store(client: httpx.Client, dataset: Dataset) -> None:
    """The server must see the generated events: nearly all of them in the last 30 days
    (the oldest drift out of the window as the cached file ages)."""
    report = client.get("/analytics/ctr", params={"days": 30}).raise_for_status().json()
    if report["total_impressions"] < 0.95 * dataset.impressions:
        raise RuntimeError(
            f"the server sees {report['total_impressions']:,} impressions in 30 days, "
            f"expected about {dataset.impressions:,}: is it on {dataset.path}?"
        )
