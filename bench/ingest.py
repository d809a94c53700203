"""(a) single-event ingestion against its ceiling, and (b) batch ingestion, over HTTP with wrk.

Every server runs on a fresh temporary store and is stopped before the next one starts, so
that the two never share the machine's two cores.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from loadgen import LoadError, WrkResult, run_wrk
from procs import Server

LOG_CLICK = "/analytics/log-click"
EVENTS = "/analytics/events"
BATCH_EVENTS = 1000


@dataclass(frozen=True)
class LoadPlan:
    rounds: int
    duration_s: float
    warmup_s: float
    connections: int


@dataclass
class IngestResult:
    """(a): requests/s of each round; the ratio is median(real) / median(bare), both servers
    with `workers` HTTP processes."""

    plan: LoadPlan
    workers: int = 1
    bare: list[WrkResult] = field(default_factory=list)
    real: list[WrkResult] = field(default_factory=list)
    #: the real servers' largest memory (every process of one server, summed)
    peak_rss_bytes: int = 0

    @property
    def bare_rps(self) -> float:
        return statistics.median(r.requests_per_s for r in self.bare)

    @property
    def real_rps(self) -> float:
        return statistics.median(r.requests_per_s for r in self.real)

    @property
    def ratio(self) -> float:
        return self.real_rps / self.bare_rps

    @property
    def round_ratios(self) -> list[float]:
        """Per round (adjacent runs): a check that the ratio of medians is not a fluke."""
        return [
            r.requests_per_s / b.requests_per_s for r, b in zip(self.real, self.bare, strict=True)
        ]


@dataclass
class BatchResult:
    """(b): acknowledged events per second of each round."""

    plan: LoadPlan
    rounds: list[WrkResult] = field(default_factory=list)
    peak_rss_bytes: int = 0

    @property
    def events_per_s(self) -> float:
        return statistics.median(r.accepted_per_s for r in self.rounds)


def stored_events(server: Server) -> tuple[int, int]:
    """(clicks, impressions) the server reports for the last day."""
    report = httpx.get(f"{server.url}/analytics/ctr", params={"days": 1}, timeout=60).json()
    return report["total_clicks"], report["total_impressions"]


def settled_events(server: Server) -> tuple[int, int]:
    """stored_events() once the server has finished the requests still in flight when wrk
    stopped (they are committed a moment later), so that counts before and after a run
    are comparable."""
    last = stored_events(server)
    while True:
        time.sleep(0.5)
        now = stored_events(server)
        if now == last:
            return now
        last = now


def check_stored(name: str, acknowledged: int, stored: int, in_flight_max: int) -> None:
    """Every acknowledged event must be stored. A few more may be: wrk stops counting at the
    deadline while its last requests (at most one per connection) are still being served."""
    if not acknowledged <= stored <= acknowledged + in_flight_max:
        raise LoadError(
            f"{name}: the server acknowledged {acknowledged} events but stores {stored} "
            f"(expected up to {in_flight_max} more, from requests in flight at the end)"
        )


def measure_ingest(plan: LoadPlan, work_dir: Path, log: Path, workers: int = 1) -> IngestResult:
    """(a): bare and real servers in alternating order (bare-real, real-bare, ...), so that
    a slow drift of the machine's speed weighs on both alike; each with `workers` HTTP
    processes."""
    result = IngestResult(plan, workers)
    label = "(a)" if workers == 1 else f"(a, {workers} workers)"
    for round_no in range(plan.rounds):
        order = ("bare", "real") if round_no % 2 == 0 else ("real", "bare")
        for kind in order:
            run, peak = _log_click_round(kind, round_no, plan, work_dir, log, workers)
            (result.bare if kind == "bare" else result.real).append(run)
            if kind == "real":
                result.peak_rss_bytes = max(result.peak_rss_bytes, peak)
            print(
                f"  {label} round {round_no + 1}/{plan.rounds} {kind:4}: "
                f"{run.requests_per_s:8,.0f} req/s  (p50 {run.latency_p50_ms:.1f} ms, "
                f"p99 {run.latency_p99_ms:.1f} ms); {run.cpu.describe()}",
                flush=True,
            )
    return result


def _log_click_round(
    kind: str, round_no: int, plan: LoadPlan, work_dir: Path, log: Path, workers: int
) -> tuple[WrkResult, int]:
    """One round's wrk result, and the server's peak memory."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"a{round_no}-{kind}-w{workers}-", dir=work_dir))
    store = run_dir / "events.duckdb"
    server = (
        Server.real(store, log, run_dir, workers)
        if kind == "real"
        else Server.bare(log, run_dir, workers)
    )
    with server:
        # Warm-up: first requests pay for imports, pydantic/FastAPI caches, the store's start.
        _load("log_click.lua", server, LOG_CLICK, plan, plan.warmup_s, ["0"], log)
        before = settled_events(server)[0] if kind == "real" else 0
        run = _load(
            "log_click.lua", server, LOG_CLICK, plan, plan.duration_s, [str(round_no + 1)], log
        )
        if kind == "real":
            stored = settled_events(server)[0] - before
            check_stored(f"(a) round {round_no + 1}", run.ok_requests, stored, plan.connections)
    return run, server.peak_rss_bytes


def _load(
    script: str,
    server: Server,
    path: str,
    plan: LoadPlan,
    duration_s: float,
    args: list[str],
    log: Path,
) -> WrkResult:
    assert server.proc is not None
    return run_wrk(
        script,
        server.url + path,
        server_pid=server.proc.pid,
        connections=plan.connections,
        duration_s=duration_s,
        script_args=args,
        log_path=log,
    )


def measure_batches(plan: LoadPlan, work_dir: Path, log: Path) -> BatchResult:
    """(b): batches of 1,000 events; events/s counts the events answers call accepted."""
    template = work_dir / "batch-template.json"
    template.write_text(batch_template(BATCH_EVENTS, seed=7))
    result = BatchResult(plan)
    for round_no in range(plan.rounds):
        run_dir = Path(tempfile.mkdtemp(prefix=f"b{round_no}-", dir=work_dir))
        server = Server.real(run_dir / "events.duckdb", log, run_dir)
        with server:
            _load("events.lua", server, EVENTS, plan, plan.warmup_s, ["0", str(template)], log)
            before = sum(settled_events(server))
            run = _load(
                "events.lua",
                server,
                EVENTS,
                plan,
                plan.duration_s,
                [str(round_no + 1), str(template)],
                log,
            )
            if run.accepted != run.ok_requests * BATCH_EVENTS:
                raise LoadError(
                    f"(b) round {round_no + 1}: {run.ok_requests} batches answered but only "
                    f"{run.accepted} of their {run.ok_requests * BATCH_EVENTS} events accepted"
                )
            stored = sum(settled_events(server)) - before
            check_stored(
                f"(b) round {round_no + 1}", run.accepted, stored, plan.connections * BATCH_EVENTS
            )
        result.rounds.append(run)
        result.peak_rss_bytes = max(result.peak_rss_bytes, server.peak_rss_bytes)
        print(
            f"  (b) round {round_no + 1}/{plan.rounds}: {run.accepted_per_s:10,.0f} events/s "
            f"({run.requests_per_s:.0f} batches/s, p50 {run.latency_p50_ms:.0f} ms); "
            f"{run.cpu.describe()}",
            flush=True,
        )
    return result


def batch_template(size: int, seed: int) -> str:
    """A realistic /analytics/events body: searches, and clicks on some of their results.

    About 23 clicks per 100 searches (the ratio of the (c) store), 10 results shown per
    search, client timestamps of the last few minutes. Every id starts with @ID@, which
    events.lua replaces with an id unique to the request ("@ID@-i17" becomes
    "3f2a9c01-0100-0000002a-i17"), so that no event is ever a duplicate.
    """
    rng = random.Random(seed)
    now = datetime.now(UTC)
    events: list[dict[str, Any]] = []
    search = 0
    while len(events) < size:
        search += 1
        user = rng.randrange(100_000)
        variant = "search_v1" if user % 2 == 0 else "search_v2"
        query = f"query {int(5000 * rng.random() ** 3)}"
        results = [f"sku-{rng.randrange(200_000)}" for _ in range(10)]
        ts = now - timedelta(seconds=rng.uniform(30, 240))
        common = {
            "user_id": f"user-{user:06d}",
            "session_id": f"sess-{user}-{search % 7}",
            "variant": variant,
            "search_id": f"@ID@-s{search}",
        }
        events.append(
            {
                "type": "impression",
                "event_id": f"@ID@-i{search}",
                **common,
                "query": query,
                "results_count": rng.randrange(10, 500),
                "response_time_ms": round(rng.lognormvariate(3.7, 0.6), 1),
                "results": results,
                "timestamp": _iso(ts),
            }
        )
        if rng.random() < 0.23 and len(events) < size:
            rank = min(1 + int(rng.expovariate(0.35)), 10)
            events.append(
                {
                    "type": "click",
                    "event_id": f"@ID@-c{search}",
                    **common,
                    "product_id": results[rank - 1],
                    "rank": rank,
                    "search_query": query,
                    "timestamp": _iso(ts + timedelta(seconds=rng.uniform(1, 20))),
                }
            )
    return json.dumps({"events": events}, separators=(",", ":"))


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
