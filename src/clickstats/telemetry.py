"""Prometheus metrics of one app, scraped at `GET /metrics` (docs/OPERATIONS.md lists them).

Each app has its own registry (tests build many apps in one process), made by create_app.
On the ingestion path nothing is measured: counters are added to once per batch and outcome.
What costs more to know (the store's size, the writer's queue) is read when scraped.

Under `serve --workers N` (prometheus_client's multiprocess mode: PROMETHEUS_MULTIPROC_DIR
is set) every process writes its figures to files and a scrape, whichever worker answers it,
adds up every process's: the workers' requests and events, and the owner's writer.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clickstats.store.base import EVENT_TYPES, AnyEvent, AppendStatus, EventStore
from clickstats.store.remote import RemoteStore
from clickstats.store.writer import GroupWritten

log = logging.getLogger(__name__)

#: An event's outcome: stored, already stored, refused for its content, a crawler's (dropped).
OUTCOMES = ("accepted", "duplicate", "rejected", "dropped_bot")
#: The type of a rejected event whose type could not be read.
UNKNOWN = "unknown"
#: The single-event routes: a 422 from one of them is one rejected event of that type.
SINGLE_EVENT = {
    "/analytics/log-click": "click",
    "/analytics/log-impression": "impression",
    "/analytics/log-conversion": "conversion",
    "/analytics/log-action": "action",
}
#: Methods counted by name; any other is "other" (a client may send any word as a method).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The route of a request no route answered (404, or answered before routing: 429, preflight).
UNROUTED = "unrouted"
#: Events per group write: from one event to the writer's row cap (50,000).
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000)
#: Commit latency: a commit takes a few milliseconds; a full disk's, seconds.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: Request latency: from a cached read (well under a millisecond) to a read near its limit.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def _writer_metrics(registry: CollectorRegistry | None) -> tuple[Histogram, Histogram]:
    batch_events = Histogram(
        "clickstats_writer_batch_events",
        "Events per group write of the store's writer (repeats included)",
        buckets=BATCH_BUCKETS,
        registry=registry,
    )
    commit_seconds = Histogram(
        "clickstats_writer_commit_seconds",
        "Seconds per group write of the store's writer (its commit or bulk insert)",
        buckets=COMMIT_BUCKETS,
        registry=registry,
    )
    return batch_events, commit_seconds


def observe_writer(store: EventStore) -> None:
    """Measure the writes of a store this process owns for its workers (`serve --workers`):
    the figures go to the multiprocess files, where the workers' scrapes find them."""
    if not isinstance(store, GroupWritten):
        return
    from prometheus_client import values

    if values.ValueClass is values.MutexValue:  # imported before PROMETHEUS_MULTIPROC_DIR was set
        log.warning("the writer's metrics stay in the owner process: /metrics will lack them")
        return
    batch_events, commit_seconds = _writer_metrics(None)

    def written(events: int, seconds: float) -> None:
        batch_events.observe(events)
        commit_seconds.observe(seconds)

    store.observe_writes(written)


class Telemetry:
    """The metrics of one app, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "clickstats_events",
            "Events received at the ingestion endpoints, by route, event type and outcome "
            "(accepted, duplicate, rejected, dropped_bot)",
            ["route", "type", "outcome"],
            registry=self.registry,
        )
        self.batch_events, self.commit_seconds = _writer_metrics(self.registry)
        self.requests = Histogram(
            "clickstats_http_request_duration_seconds",
            "Seconds from a request's arrival to the end of its answer, by route template, "
            "method and status class",
            ["route", "method", "status"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.store: EventStore | None = None
        #: What a scrape answers: this registry, or in multiprocess mode every process's
        #: files (the metrics above write there) and the gauges read at scrape time.
        self.exposition = self.registry
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            self.exposition = CollectorRegistry()
            MultiProcessCollector(self.exposition)  # type: ignore[no-untyped-call]
            self.exposition.register(_ReadWhenScraped(self))
        else:
            self.registry.register(_ReadWhenScraped(self))
        # The labelled children, looked up once: labels() takes a lock and checks its values.
        self._events: dict[tuple[str, str, str], Counter] = {}
        self._requests: dict[tuple[str, str, str], Histogram] = {}

    def watch(self, store: EventStore) -> None:
        """Measure this (open) store's writes, queue and size."""
        self.store = store
        if isinstance(store, GroupWritten):
            store.observe_writes(self._written)

    def _written(self, events: int, seconds: float) -> None:
        self.batch_events.observe(events)
        self.commit_seconds.observe(seconds)

    def count(self, route: str, kind: str, outcome: str, events: int = 1) -> None:
        key = (route, kind, outcome)
        child = self._events.get(key)
        if child is None:
            child = self._events[key] = self.events.labels(*key)
        child.inc(events)

    def request(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template: str = getattr(route, "path_format", None) or UNROUTED
        method: str = scope["method"] if scope["method"] in METHODS else "other"
        key = (template, method, f"{status // 100}xx")
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self.requests.labels(*key)
        child.observe(seconds)
        if status == 422 and method == "POST" and template in SINGLE_EVENT:
            self.count(template, SINGLE_EVENT[template], "rejected")


def _telemetry(request: Request) -> Telemetry | None:
    telemetry: Telemetry | None = getattr(request.app.state, "telemetry", None)
    return telemetry


def _route(request: Request) -> str:
    route = request.scope.get("route")
    template: str = getattr(route, "path_format", None) or request.url.path
    return template


def count_events(
    request: Request, events: Sequence[AnyEvent], statuses: Sequence[AppendStatus | None]
) -> None:
    """Count a request's stored events by type and outcome (a status None: dropped, a
    known crawler's)."""
    telemetry = _telemetry(request)
    if telemetry is None:
        return
    tally: dict[tuple[str, str], int] = {}
    for event, status in zip(events, statuses, strict=True):
        key = (event.type, status.value if status is not None else "dropped_bot")
        tally[key] = tally.get(key, 0) + 1
    route = _route(request)
    for (kind, outcome), n in tally.items():
        telemetry.count(route, kind, outcome, n)


def count_rejected(request: Request, kinds: Iterable[str]) -> None:
    """Count a request's events refused for their content, by type (UNKNOWN when unread)."""
    telemetry = _telemetry(request)
    if telemetry is None:
        return
    tally: dict[str, int] = {}
    for kind in kinds:
        kind = kind if kind in EVENT_TYPES else UNKNOWN
        tally[kind] = tally.get(kind, 0) + 1
    route = _route(request)
    for kind, n in tally.items():
        telemetry.count(route, kind, "rejected", n)


def type_of(item: Any) -> str:
    """The type a raw batch item names, or UNKNOWN."""
    kind = item.get("type") if isinstance(item, dict) else None
    return kind if isinstance(kind, str) and kind in EVENT_TYPES else UNKNOWN


class RequestTimer:
    """ASGI middleware: each request's latency, labelled by its route's template (never the
    raw path: the labels stay few), its method and its status class."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless an answer starts: an exception on its way out is a 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.telemetry.request(scope, status, time.perf_counter() - started)


def store_size(store: EventStore) -> int | None:
    """The store's size in bytes, or None where it cannot be told cheaply.

    DuckDB: its file and its write-ahead log. MongoDB: the data size of its collections
    (`$collStats` storage stats, summed over shards). mongomock has no storage statistics."""
    path = getattr(store, "path", None)
    if store.kind == "duckdb" and isinstance(path, str):
        if path == ":memory:":
            return None
        files = (Path(path), Path(f"{path}.wal"))
        return sum(f.stat().st_size for f in files if f.is_file())
    # The store's open collections: private to it, read here rather than adding a size read
    # to the EventStore interface for one gauge.
    collections: dict[str, Any] = getattr(store, "_collections", {})
    if store.kind != "mongodb" or not collections:
        return None
    total = 0
    try:
        for collection in collections.values():
            for shard in collection.aggregate([{"$collStats": {"storageStats": {}}}]):
                total += int(shard["storageStats"]["size"])
    except Exception as exc:  # mongomock has no $collStats; a failing server answers later
        log.debug("no store size: %s", exc)
        return None
    return total


class _ReadWhenScraped(Collector):
    """The gauges read at each scrape: the writer's queue, the store's size."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    def collect(self) -> Iterator[Metric]:
        store = self.telemetry.store
        if store is None:  # the app has not started
            return
        if isinstance(store, GroupWritten | RemoteStore):
            yield GaugeMetricFamily(
                "clickstats_writer_queue_depth",
                "Writes (requests' batches, deletions) waiting for the store's writer thread",
                value=store.writes_queued(),
            )
        size = store_size(store)
        if size is not None:
            yield GaugeMetricFamily(
                "clickstats_store_size_bytes",
                "The store's size: DuckDB's file and write-ahead log, MongoDB's data size",
                value=size,
            )
