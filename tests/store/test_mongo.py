"""What only the MongoDB backend has: indexes, write concern, duplicate keys, connection errors.

The backend's answers are checked by the contract suite (tests/store/test_contract.py) and
every HTTP test (tests/api/), which run on mongomock and, with MONGODB_URI set, on a real server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import mongomock
import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ExecutionTimeout,
    ServerSelectionTimeoutError,
)

from clickstats import ClickEvent, SearchImpression, metrics
from clickstats.app import create_app
from clickstats.cli import main
from clickstats.events import event_time_now
from clickstats.metrics import CLICKED, AllOf, Column, Compare, Divide, Metric, Num, Of, When
from clickstats.settings import Settings
from clickstats.store import ReadTimeout, StoreError, open_store
from clickstats.store.base import AppendStatus, ByVariant, Filters, Grouping
from clickstats.store.fields import naive_utc
from clickstats.store.mongo import (
    CLICKS,
    IMPRESSIONS,
    MongoStore,
    _insert,
    _reason,
    interpolate,
    p95_queries,
    redact,
)
from clickstats.store.mongo.pipelines import P95_EDGES, condition, search_totals_pipeline
from clickstats.store.mongo.rollup import facts_pipeline
from tests.conftest import MONGODB_URI, free_port, on_database, store_url
from tests.store.test_contract import EVENTS, MONTH, WEEK

VARIANT: ByVariant = ("variant",)
BYS: tuple[ByVariant, ...] = ((), VARIANT)

real_server_only = pytest.mark.skipif(not MONGODB_URI, reason="needs MONGODB_URI (a real server)")


@pytest.fixture
def mongo(tmp_path: Path) -> Iterator[MongoStore]:
    with store_url("mongomock", tmp_path) as url:
        store = open_store(url)
        assert isinstance(store, MongoStore)
        store.open()
        yield store
        store.close()


# -- schema and write concern ------------------------------------------------------------------


def test_indexes_are_created_on_open(mongo: MongoStore) -> None:
    for collection in mongo._collections.values():
        keys = {name: index["key"] for name, index in collection.index_information().items()}
        assert keys == {
            "_id_": [("_id", 1)],  # holds the event id: the unique index retries hit
            "timestamp": [("timestamp", 1)],
            "user_id_timestamp": [("user_id", 1), ("timestamp", 1)],
            "variant_timestamp": [("variant", 1), ("timestamp", 1)],
            "search_id": [("search_id", 1)],
        }
    assert set(mongo._collections) == {"click_events", "impressions", "conversions", "actions"}
    mongo.close()
    mongo.open()  # a second process (or a restart) finds them and changes nothing


def test_write_concern_is_majority_unless_the_uri_says_otherwise(mongo: MongoStore) -> None:
    majority = {"w": "majority", "wtimeout": 10_000}
    assert mongo.write_concern.document == majority
    for collection in mongo._collections.values():
        assert collection.write_concern.document == majority
    store = MongoStore("mongodb://db1,db2/clicks?replicaSet=rs&W=1&wtimeoutMS=2500&journal=true")
    assert store.write_concern.document == {"w": 1, "wtimeout": 2500, "j": True}
    assert store.database_name == "clicks"
    tagged = MongoStore("mongodb://db/?w=tagged&timeoutMS=3000")  # timeoutMS bounds it all
    assert tagged.write_concern.document == {"w": "tagged"}
    assert MongoStore("mongodb://db").database_name == "clickstats"
    with pytest.raises(ValueError, match="w=0"):
        open_store("mongodb://db/clicks?w=0")  # the CLI turns this into a --store error


def test_the_store_keeps_the_uri_timeouts_and_defaults_to_five_seconds() -> None:
    assert MongoStore("mongodb://db/x").client_options["serverSelectionTimeoutMS"] == 5000
    store = MongoStore("mongodb://db/x?serverSelectionTimeoutMS=800")
    assert "serverSelectionTimeoutMS" not in store.client_options  # the URI's value stands


def test_documents_keep_the_event_fields_and_millisecond_utc_times(mongo: MongoStore) -> None:
    mongo.append_sync(EVENTS[:1] + EVENTS[5:6])
    impression = mongo._collections["impressions"].find_one({"_id": "i1"})
    click = mongo._collections["click_events"].find_one({"_id": "c1"})
    assert impression["timestamp"] == EVENTS[0].timestamp.replace(tzinfo=None)
    assert impression["query"] == "shoes" and impression["response_time_ms"] == 10.0
    assert click["rank"] == 1 and click["source"] == "SEARCH_RESULTS"
    assert click["received_at"] >= click["timestamp"]


# -- duplicate keys ----------------------------------------------------------------------------


class FailingCollection:
    def __init__(self, details: dict[str, Any]) -> None:
        self.details = details

    def insert_many(self, docs: list[dict[str, Any]], ordered: bool) -> None:
        assert ordered is False
        raise BulkWriteError(self.details)


def test_duplicate_keys_are_duplicates_and_any_other_error_raises() -> None:
    docs = [{"_id": f"e{i}"} for i in range(4)]
    duplicates = {"writeErrors": [{"index": 1, "code": 11000}, {"index": 3, "code": 11000}]}
    assert _insert(FailingCollection(duplicates), docs) == {"e0", "e2"}
    other = {"writeErrors": [{"index": 1, "code": 11000}, {"index": 2, "code": 121}]}
    with pytest.raises(BulkWriteError):
        _insert(FailingCollection(other), docs)
    not_majority = {
        "writeErrors": [],
        "writeConcernErrors": [{"code": 64, "errmsg": "waiting for replication timed out"}],
    }
    with pytest.raises(BulkWriteError) as caught:  # stored, but not acknowledged as asked: a 503
        _insert(FailingCollection(not_majority), docs)
    assert _reason(caught.value) == "waiting for replication timed out (code 64)"


def test_duplicates_inside_an_unordered_batch(mongo: MongoStore) -> None:
    mongo.append_sync(EVENTS[5:7])  # c1 and c2
    statuses = mongo.append_sync(EVENTS[::-1])  # the others around them still go in
    duplicates = [i for i, s in enumerate(statuses) if s is AppendStatus.DUPLICATE]
    assert duplicates == [len(EVENTS) - 1 - 6, len(EVENTS) - 1 - 5]
    assert sum(mongo.rank_histogram(MONTH)[()].values()) == 5


# -- reads are server-side pipelines -----------------------------------------------------------


class Recording:
    """A collection that records every call made on it."""

    def __init__(self, inner: Any, calls: list[tuple[str, Any]]) -> None:
        self._inner, self._calls = inner, calls

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append((name, args[0] if args else None))
            return method(*args, **kwargs)

        return call


def test_every_read_is_one_bounded_aggregation_pipeline(mongo: MongoStore) -> None:
    mongo.append_sync(EVENTS)
    calls: list[tuple[str, Any]] = []
    mongo._collections = {n: Recording(c, calls) for n, c in mongo._collections.items()}
    u1 = Filters(since=MONTH.since, user_id="u1", variant="search_v1")
    for f in (WEEK, MONTH, u1):
        for by in BYS:
            mongo.counts(f, by)
            mongo.rank_histogram(f, by)
            mongo.latency(f, by)
        mongo.activity(f)
    assert calls and {name for name, _ in calls} == {"aggregate"}
    for _, pipeline in calls:
        stages = [next(iter(stage)) for stage in pipeline]
        assert stages[0] == "$match" and "timestamp" in pipeline[0]["$match"]
        # Each answer is grouped on the server ($group, or $bucket: the p95's histogram pass),
        # or at most two documents long.
        grouped = "$group" in stages or "$bucket" in stages
        assert grouped or any(stage.get("$limit", 99) <= 2 for stage in pipeline)


# -- the read time limit -----------------------------------------------------------------------


class Options:
    """A collection that records the keyword options of every aggregate and find, or answers
    them with what `fail` raises (as a server that stops a read past maxTimeMS does)."""

    def __init__(self, inner: Any, calls: list[tuple[str, dict[str, Any]]], fail: bool) -> None:
        self._inner, self._calls, self._fail = inner, calls, fail

    def aggregate(self, pipeline: list[Any], **options: Any) -> Any:
        self._calls.append(("aggregate", options))
        if self._fail:
            raise ExecutionTimeout("operation exceeded time limit", 50)
        return self._inner.aggregate(pipeline, **options)

    def find(self, *args: Any, **options: Any) -> Any:
        self._calls.append(("find", options))
        cursor = self._inner.find(*args, **options)
        return StoppedCursor() if self._fail else cursor


class StoppedCursor:
    """A cursor the server stops at its first batch."""

    def sort(self, *args: Any) -> StoppedCursor:
        return self

    def batch_size(self, n: int) -> StoppedCursor:
        return self

    def __iter__(self) -> Iterator[Any]:
        raise ExecutionTimeout("operation exceeded time limit", 50)


def _every_read(store: MongoStore) -> None:
    for f in (WEEK, Filters(MONTH.since, variant="search_v1")):
        for by in BYS:
            store.counts(f, by)
            store.rank_histogram(f, by)
            store.latency(f, by)
        store.activity(f)
        store.search_totals_many(f, [Grouping(), Grouping(by=("variant",))])
        store.search_totals(f, Grouping(by=("query",)))
        store.top_products(f, 3)
        store.latency_histogram(f)
    store.preference_sums(MONTH.since, "duel")
    store.preference_sums(MONTH.since, "duel", top_queries=2)
    store.user_sums(MONTH.since, ["search_v1", "search_v2"], max_searches=10)
    store.searches_per_user(MONTH.since, ["search_v1"])
    list(store.export())


def test_every_read_passes_the_time_limit_as_max_time_ms(tmp_path: Path) -> None:
    with store_url("mongomock", tmp_path) as url:
        store = open_store(url, read_timeout_s=2.5)
        assert isinstance(store, MongoStore) and store.read_timeout_s == 2.5
        store.open()
        try:
            store.append_sync(EVENTS)
            calls: list[tuple[str, dict[str, Any]]] = []
            store._collections = {
                n: Options(c, calls, fail=False) for n, c in store._collections.items()
            }
            _every_read(store)
            assert {name for name, _ in calls} == {"aggregate", "find"}
            for name, options in calls:
                # every aggregate may spill to disk (issue 16: MongoDB at scale)
                expected = (
                    {"maxTimeMS": 2500, "allowDiskUse": True}
                    if name == "aggregate"
                    else {"max_time_ms": 2500}
                )
                assert options == expected, name
            # Without a limit, no time option: the server's own (none by default) stands.
            calls.clear()
            store.read_timeout_s = None
            _every_read(store)
            assert all(
                options in ({"allowDiskUse": True}, {}, {"max_time_ms": None})
                for _, options in calls
            )
            assert any(options == {"allowDiskUse": True} for _, options in calls)
        finally:
            store.close()


def test_a_read_the_server_stops_is_a_read_timeout(tmp_path: Path) -> None:
    with store_url("mongomock", tmp_path) as url:
        store = open_store(url, read_timeout_s=0.25)
        assert isinstance(store, MongoStore)
        store.open()
        try:
            store.append_sync(EVENTS)
            calls: list[tuple[str, dict[str, Any]]] = []
            store._collections = {
                n: Options(c, calls, fail=True) for n, c in store._collections.items()
            }
            with pytest.raises(ReadTimeout) as caught:
                store.counts(WEEK)
            assert caught.value.limit_s == 0.25 and isinstance(caught.value, StoreError)
            assert "0.25 s" in str(caught.value)
            with pytest.raises(ReadTimeout):
                store.user_sums(MONTH.since, ["search_v1"])
            with pytest.raises(ReadTimeout):
                list(store.export())
            assert calls[0] == ("aggregate", {"allowDiskUse": True, "maxTimeMS": 250})
        finally:
            store.close()


# -- the metric registry, compiled -------------------------------------------------------------


def test_a_comparison_of_a_fact_that_is_null_never_holds() -> None:
    """MongoDB orders null below numbers: without the guard, null < 3 would hold."""
    assert condition(Compare(Of("first_rank"), "<", Num(3))) == {
        "$and": [{"$gt": ["$first_rank", None]}, {"$lt": ["$first_rank", 3]}]
    }
    assert condition(CLICKED) == {"$gt": ["$n", 0]}  # clicks are never null


def test_a_metric_added_to_the_registry_is_summed_by_every_read(
    mongo: MongoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_columns = [
        Column("early", When(Compare(Of("first_rank"), "<=", Num(2)), Num(1)), "early"),
        Column("late", Compare(Of("ms_to_first_click"), ">=", Num(10_000)), "late"),
        Column("half_ranks", Divide(Of("rank_sum"), Num(2)), "half", integer=False),
        Column(
            "clicked_fast",
            When(AllOf((CLICKED, Compare(Of("ms_to_first_click"), "<", Num(2_000)))), Num(1)),
            "fast",
        ),
    ]
    for column in new_columns:
        monkeypatch.setitem(metrics.COLUMNS, column.name, column)
    monkeypatch.setitem(
        metrics.METRICS, "early_rate", Metric("early_rate", "e", "early", "searches", True, True)
    )
    monkeypatch.setitem(
        metrics.METRICS, "late_half", Metric("late_half", "l", "late", "half_ranks", True, False)
    )
    monkeypatch.setitem(
        metrics.METRICS, "fast", Metric("fast", "f", "clicked_fast", "clicks", True, True)
    )
    t0 = event_time_now() - timedelta(hours=1)

    def search(n: int, user: str) -> SearchImpression:
        return SearchImpression(
            event_id=f"i{n}", search_id=f"s{n}", user_id=user, variant="v", query="q",
            results_count=5, timestamp=t0,
        )  # fmt: skip

    def click(n: int, rank: int, seconds: int) -> ClickEvent:
        return ClickEvent(
            event_id=f"c{n}-{rank}", search_id=f"s{n}", user_id="x", product_id="p", rank=rank,
            timestamp=t0 + timedelta(seconds=seconds),
        )  # fmt: skip

    mongo.append_sync(
        [
            *(search(n, user) for n, user in ((1, "u1"), (2, "u1"), (3, "u2"), (4, "u2"))),
            click(1, 2, 5), click(1, 1, 20),  # first click: rank 2 after 5 s
            click(3, 4, 30),  # rank 4 after 30 s; search 2 has no click
            click(4, 3, 1), click(4, 1, 1),  # a tie: the lower rank, 1, after 1 s
        ]
    )  # fmt: skip
    per_user = {  # u1, u2
        "early": (1, 1),
        "late": (0, 1),
        "half_ranks": (1.5, 4.0),
        "clicked_fast": (0, 1),
    }
    (sums,) = mongo.user_sums(t0 - timedelta(days=1), ["v"]).values()
    assert sums.users == 2
    for name, (u1, u2) in per_user.items():
        assert sums.sums[name] == u1 + u2
        assert sums.squares[name] == u1 * u1 + u2 * u2
    assert sums.products[("late", "half_ranks")] == 0 * 1.5 + 1 * 4.0
    assert sums.products[("clicked_fast", "clicks")] == 0 * 2 + 1 * 3
    totals = mongo.search_totals(Filters(t0 - timedelta(days=1)), Grouping())[()]
    shown = metrics.columns(dashboard=True)
    assert dict(totals.sums) == {
        **{name: u1 + u2 for name, (u1, u2) in per_user.items()},
        **{name: totals[name] for name in shown if name not in per_user},
    }
    assert list(totals.sums) == shown
    assert type(totals["early"]) is int and type(totals["half_ranks"]) is float
    assert (totals.searches, totals["clicks"]) == (4, 5)
    assert sums.sums["ttfc_ms"] == 36_000  # read by user_sums; not on the dashboard


@pytest.mark.parametrize("n", [1, 2, 3, 20, 21, 997, 5000])
def test_the_p95_sorts_only_the_bucket_of_its_ranks(n: int) -> None:
    """The histogram pass, then the values of the bucket (or two) holding ranks floor(h) and
    ceil(h): quantile_cont's answer, from a sort of a small share of the values."""
    rng = np.random.default_rng(n)
    values = sorted([*rng.lognormal(3, 0.6, size=n - n // 10).tolist(), *[0.0] * (n // 10)])
    edges = P95_EDGES
    counts: dict[float, int] = {}
    for v in values:
        lower = max(e for e in edges[:-1] if e <= v)
        counts[lower] = counts.get(lower, 0) + 1
    count, queries = p95_queries(sorted(counts.items()))
    assert count == n and 1 <= len(queries) <= 2
    picked: list[float] = []
    for q in queries:
        in_bucket = [v for v in values if q.low <= v < q.high]  # what the pipeline sorts
        assert len(in_bucket) <= max(2, n // 20)
        picked += in_bucket[q.skip : q.skip + q.limit]
    assert len(picked) in (1, 2)
    assert interpolate(n, picked) == pytest.approx(np.percentile(values, 95), abs=1e-9)


# -- failures ----------------------------------------------------------------------------------


def test_unreachable_server_is_a_clear_error_without_the_password() -> None:
    port = free_port()  # closed again: nothing listens there
    uri = f"mongodb://app:s3cret@127.0.0.1:{port}/clicks?serverSelectionTimeoutMS=200"
    store = open_store(uri)
    with pytest.raises(StoreError) as caught:
        store.open()
    message = str(caught.value)
    assert message.startswith(f"cannot reach MongoDB at mongodb://app:***@127.0.0.1:{port}/clicks")
    assert "s3cret" not in message and "Topology Description" not in message
    assert redact(uri) in message
    with pytest.raises(StoreError, match="not open"):
        store.counts(WEEK)


def test_serve_refuses_to_start_on_an_unreachable_server() -> None:
    uri = f"mongodb://app:s3cret@127.0.0.1:{free_port()}/clicks?serverSelectionTimeoutMS=200"
    result = CliRunner().invoke(main, ["serve", "--store", uri])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot reach MongoDB at mongodb://app:***@127.0.0.1:")
    assert "s3cret" not in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["serve", "--store", "mongodb://db/x?w=0"])
    assert result.exit_code == 2 and "w=0" in result.output


def test_store_failures_at_request_time_are_503_and_lose_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise ServerSelectionTimeoutError("db1:27017: timed out")

    def dropped(*args: Any, **kwargs: Any) -> Any:
        raise AutoReconnect("db1:27017: connection closed")

    click = {"product_id": "p1", "rank": 2, "event_id": "kept-1"}
    with store_url("mongomock", tmp_path) as url, TestClient(create_app(Settings(store=url))) as c:
        with monkeypatch.context() as patch:
            patch.setattr(mongomock.collection.Collection, "aggregate", unreachable)
            patch.setattr(mongomock.collection.Collection, "insert_many", dropped)
            patch.setattr(mongomock.database.Database, "command", unreachable)
            response = c.get("/analytics/ctr")
            assert response.status_code == 503
            assert response.json()["detail"] == (
                f"store unavailable: query on MongoDB at {url} failed: db1:27017: timed out"
            )
            response = c.post("/analytics/log-click", json=click)
            assert response.status_code == 503
            assert response.json()["detail"] == (
                f"store unavailable: write to {url} failed: db1:27017: connection closed"
            )
            assert c.get("/health").status_code == 503
        # The client retries once the server is back: stored once, counted once.
        response = c.post("/analytics/log-click", json=click)
        assert response.status_code == 200 and response.json()["duplicate"] is False
        assert c.post("/analytics/log-click", json=click).json()["duplicate"] is True
        assert c.get("/analytics/rank-metrics").json()["clicks_by_rank"] == {"2": 1}
        assert c.get("/health").json()["store"] == "mongodb"


# -- the same answers over HTTP ----------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """Equal JSON, floats within 1e-9."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and abs(a - b) <= 1e-9
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b)


def test_switching_the_store_changes_no_http_answer(tmp_path: Path) -> None:
    now = event_time_now()
    rng = np.random.default_rng(7)
    events: list[dict[str, Any]] = []
    for i in range(300):
        when = (now - timedelta(hours=float(rng.uniform(0, 24 * 40)))).isoformat()
        user, variant = f"u{i % 7}", f"v{i % 3}"
        events.append(
            {
                "type": "impression", "event_id": f"i{i}", "search_id": f"s{i}", "query": "q",
                "user_id": user, "variant": variant, "timestamp": when,
                "response_time_ms": None if i % 11 == 0 else float(rng.lognormal(3, 0.7)),
            }
        )  # fmt: skip
        if i % 2 == 0:
            events.append(
                {
                    "type": "click", "event_id": f"c{i}", "search_id": f"s{i}", "product_id": "p",
                    "rank": int(rng.integers(1, 12)), "user_id": user, "variant": variant,
                    "timestamp": when,
                }
            )  # fmt: skip
    paths = [
        f"/analytics/{endpoint}?{query}"
        for endpoint in ("ctr", "rank-metrics", "response-time")
        for query in ("", "days=1", "days=30", "user_id=u3", "variant=v1&days=365")
    ]
    paths += [f"/analytics/user/u{i}?days={d}" for i in (0, 5) for d in (7, 60)]
    paths += ["/analytics/variants-comparison", "/analytics/variants-comparison?days=60"]
    answers: dict[str, list[Any]] = {}
    for backend in ("duckdb", "mongomock"):
        with (
            store_url(backend, tmp_path) as url,
            # events up to 60 days old: the ingestion window (7 days by default) is off here
            TestClient(create_app(Settings(store=url, max_event_age_days=0))) as c,
        ):
            for chunk in range(0, len(events), 200):
                body = {"events": events[chunk : chunk + 200]}
                assert c.post("/analytics/events", json=body).json()["rejected"] == 0
            answers[backend] = [c.get(path).json() for path in paths]
    for path, duck, mongo in zip(paths, answers["duckdb"], answers["mongomock"], strict=True):
        assert _same(duck, mongo), f"{path}\n{json.dumps(duck)}\n{json.dumps(mongo)}"
    assert answers["duckdb"][0]["total_impressions"] > 0


# -- helpers -----------------------------------------------------------------------------------


def test_mongomock_stores_with_one_url_share_their_data(mongo: MongoStore) -> None:
    mongo.append_sync(EVENTS)
    other = MongoStore(mongo.uri, client_factory=mongo._client_factory)
    other.open()
    try:
        assert other.counts(WEEK, VARIANT) == mongo.counts(WEEK, VARIANT)
    finally:
        other.close()


def test_uri_helpers() -> None:
    srv = "mongodb+srv://u:p%40ss@cluster0.example.net/db?tlsCertificateKeyFilePassword=x"
    assert (
        redact(srv)
        == "mongodb+srv://u:***@cluster0.example.net/db?tlsCertificateKeyFilePassword=***"
    )
    assert redact("mongodb://db:27017") == "mongodb://db:27017/"
    assert on_database("mongodb://u:p@h/admin?replicaSet=rs", "t") == (
        "mongodb://u:p@h/t?replicaSet=rs&authSource=admin"
    )
    assert on_database("mongodb://h:27017", "t") == "mongodb://h:27017/t"


@real_server_only
def test_every_pipeline_uses_an_index_on_a_real_server(tmp_path: Path) -> None:
    """No collection scan: each query starts with an index on its time range."""
    with store_url("mongodb", tmp_path) as url:
        store = open_store(url)
        assert isinstance(store, MongoStore)
        store.open()
        try:
            store.append_sync(EVENTS)
            calls: list[tuple[str, Any]] = []
            collections = store._collections
            store._collections = {n: Recording(c, calls) for n, c in collections.items()}
            u1, v = Filters(MONTH.since, user_id="u1"), Filters(MONTH.since, variant="v")
            for f in (WEEK, u1, v):
                for by in BYS:
                    store.rank_histogram(f, by)
                    store.counts(f, by)
                    store.latency(f, by)
                store.activity(f)
            store._collections = collections
            database = store._client.get_database(store.database_name)
            for _, pipeline in calls:
                for name in (CLICKS, IMPRESSIONS):  # every pipeline is valid on both
                    plan = database.command("aggregate", name, pipeline=pipeline, explain=True)
                    assert "COLLSCAN" not in json.dumps(plan, default=str), pipeline
        finally:
            store.close()


@real_server_only
def test_the_rollup_is_read_and_kept_through_indexes_on_a_real_server(tmp_path: Path) -> None:
    """The rollup's reads and upkeep: no collection scan; each search finds its one rollup
    document through `_id` (an indexed loop join where the server names its strategy)."""
    with store_url("mongodb", tmp_path) as url:
        store = open_store(url)
        assert isinstance(store, MongoStore)
        store.open()
        try:
            store.append_sync(EVENTS)
            database = store._client.get_database(store.database_name)
            since = naive_utc(WEEK.since)
            plans = [
                store._rollup_collection()
                .find({"last_ts": {"$gte": since}, "first_ts": {"$lt": since}})
                .explain(),
                database.command(
                    "aggregate",
                    CLICKS,
                    pipeline=facts_pipeline({"search_id": {"$in": ["a", "b"]}}),
                    explain=True,
                ),
            ]
            with store._linked(WEEK.since) as straddle:
                assert straddle is not None
                for pipeline in (
                    search_totals_pipeline(WEEK, [Grouping(by=("variant",))], None, straddle),
                ):
                    plans.append(
                        database.command(
                            "explain",
                            {"aggregate": IMPRESSIONS, "pipeline": pipeline, "cursor": {}},
                            verbosity="executionStats",
                        )
                    )
            for plan in plans:
                text = json.dumps(plan, default=str)
                assert "COLLSCAN" not in text
                if '"strategy"' in text:  # the slot-based engine names its $lookup join
                    assert "IndexedLoopJoin" in text
        finally:
            store.close()
