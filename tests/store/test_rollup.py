"""The per-search click rollup equals its recomputation from the clicks, on every backend.

Events arrive in random orders and batches, with duplicates, clicks before their search, late
clicks, clicks that straddle a window's start, clicks of unknown searches; then users are
deleted and old events pruned. After each step the rollup's rows equal the clicks aggregated
afresh, and every read built on it (search totals, per-user sums) equals the same read
recomputed from the events (`use_rollup` off).
"""

from __future__ import annotations

import dataclasses
import random
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from clickstats import ClickEvent, SearchImpression
from clickstats.events import AnyEvent, ConversionEvent, event_time_now
from clickstats.store import EventStore, open_store
from clickstats.store.base import Cap, Filters, Grouping, SearchTotals, SumOptions
from clickstats.store.duckdb import DuckDBStore
from clickstats.store.duckdb import rollup as duckdb_rollup
from clickstats.store.fields import naive_utc
from clickstats.store.mongo import MongoStore
from clickstats.store.mongo import rollup as mongo_rollup

NOW = event_time_now()
DAY, HOUR, MINUTE = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
VARIANTS = ["search_v1", "search_v2"]
GROUPINGS = [
    Grouping(),
    Grouping(by=("variant",)),
    Grouping(by=("day", "variant"), tz="Asia/Kathmandu"),
    Grouping(by=("query",), order="searches", top=5),
]
OPTIONS = [
    SumOptions(),
    SumOptions(currency="EUR", caps=(("clicks", Cap(percentile=0.9)),)),
    SumOptions(currency="EUR", pre_days=7, pre_columns=("revenue",)),
]


def scenario(seed: int) -> tuple[list[AnyEvent], list[timedelta]]:
    """Events of 12 users over 40 days, and ages at which windows start so that some searches'
    clicks straddle them (a click a minute before, another a minute after)."""
    rng = random.Random(seed)
    events: list[AnyEvent] = []
    starts: list[timedelta] = [7 * DAY, 30 * DAY]
    for n in range(150):
        age = timedelta(seconds=rng.uniform(0, 40 * 86_400))
        user = f"u{rng.randrange(12)}"
        search = SearchImpression(
            event_id=f"i{seed}-{n}",
            user_id=user,
            variant=rng.choice(VARIANTS),
            query=rng.choice(["tent", "boots", "stove"]),
            results_count=rng.choice([0, 5, 10]),
            response_time_ms=rng.uniform(1, 90),
            timestamp=NOW - age,
        )
        events.append(search)
        for k in range(rng.choice([0, 0, 1, 2, 3])):
            # mostly after the search; sometimes before it (a skewed clock), sometimes days late
            delay = rng.choice([MINUTE * rng.uniform(0, 30), -MINUTE * 5, DAY * rng.uniform(1, 3)])
            clicked = min(NOW, NOW - age + delay)
            events.append(
                ClickEvent(
                    event_id=f"c{seed}-{n}-{k}",
                    user_id=rng.choice([user, user, "u-other"]),
                    search_id=search.search_id,
                    product_id=f"p{rng.randrange(5)}",
                    rank=rng.randrange(1, 6),
                    timestamp=clicked,
                )
            )
        if n % 10 == 0:  # a search in a window whose start its clicks straddle (a clock
            start = age + 2 * MINUTE  # skewed by minutes puts clicks before their search)
            starts.append(start)
            for k, offset in enumerate((MINUTE, -MINUTE, -2 * MINUTE, 10 * MINUTE)):
                events.append(
                    ClickEvent(
                        event_id=f"s{seed}-{n}-{k}",
                        user_id=user,
                        search_id=search.search_id,
                        product_id="p9",
                        rank=k + 1,
                        timestamp=NOW - start + offset,
                    )
                )
        if n % 15 == 0:  # a purchase of the search's clicked product
            events.append(
                ConversionEvent(
                    event_id=f"v{seed}-{n}",
                    user_id=user,
                    subtype="purchase",
                    product_ids=["p9"],
                    value=round(rng.uniform(5, 200), 2),
                    currency="EUR",
                    search_id=search.search_id,
                    timestamp=min(NOW, NOW - age + HOUR),
                )
            )
    for n in range(10):  # clicks of searches never stored, and clicks without a search
        events.append(
            ClickEvent(
                event_id=f"o{seed}-{n}",
                user_id="u-other",
                search_id=f"unknown-{n % 3}" if n % 2 else None,
                product_id="p1",
                rank=1 + n % 4,
                timestamp=NOW - DAY * n,
            )
        )
    return events, starts


def store_in_batches(store: EventStore, events: list[AnyEvent], rng: random.Random) -> None:
    """Every event in a random order and random batches, a fifth of them sent twice."""
    order = events + rng.sample(events, len(events) // 5)
    rng.shuffle(order)
    while order:
        size = rng.choice([1, 2, 7, 40, 300])
        store.append_sync(order[:size])
        order = order[size:]


FIELDS = ("_id", "n", "rank_sum", "first_ts", "first_rank", "last_ts")


def rollup_rows(store: EventStore) -> list[tuple[Any, ...]]:
    return both_rows(store)[0]


def both_rows(store: EventStore) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rollup's rows, and the same recomputed from the clicks it covers: on DuckDB those
    received up to its watermark (the later ones are its tail, which the reads add), both
    read in one transaction so that the writer's merge cannot fall between the two."""
    if isinstance(store, DuckDBStore):
        covered = f"(SELECT * FROM click_events WHERE received_at <= {duckdb_rollup.WATERMARK})"
        sql = duckdb_rollup.AGGREGATE.format(source=covered)
        con = store._cursor()
        con.begin()
        try:
            rows = con.execute("SELECT * FROM search_clicks ORDER BY search_id").fetchall()
            again = con.execute(f"SELECT * FROM ({sql}) ORDER BY search_id").fetchall()
        finally:
            con.commit()
        return rows, again
    assert isinstance(store, MongoStore)
    docs = store._rollup_collection().find({}, sort=[("_id", 1)])
    clicks = store._collection("click_events")
    fresh = sorted(clicks.aggregate(mongo_rollup.facts_pipeline({})), key=lambda d: d["_id"])
    return [tuple(d[k] for k in FIELDS) for d in docs], [tuple(d[k] for k in FIELDS) for d in fresh]


def settled(store: EventStore) -> EventStore:
    """`store` once the DuckDB writer has merged the rollup's tail (it does when idle)."""
    if isinstance(store, DuckDBStore):
        deadline = time.monotonic() + 10
        while store._query(duckdb_rollup.TAIL_ROWS, {})[0][0]:
            assert time.monotonic() < deadline, "the writer never merged the rollup's tail"
            time.sleep(0.01)
    return store


def reads(store: EventStore, starts: list[timedelta]) -> list[Any]:
    out: list[Any] = []
    for start in starts[:5]:  # the 7- and 30-day windows, and three that cut a search's clicks
        f = Filters(since=NOW - start, currency="EUR")
        out.append(store.search_totals_many(f, GROUPINGS))
        out.append(store.search_totals_many(Filters(since=NOW - start, user_id="u1"), GROUPINGS))
        for options in OPTIONS:
            out.append(store.user_sums(NOW - start, VARIANTS, None, options))
        out.append(store.user_sums(NOW - start, VARIANTS, 8, SumOptions()))
    return out


def assert_rollup_exact(store: EventStore, starts: list[timedelta]) -> None:
    rows, again = both_rows(store)
    assert rows == again
    assert store.use_rollup
    with_rollup = reads(store, starts)
    store.use_rollup = False
    try:
        recomputed = reads(store, starts)
    finally:
        store.use_rollup = True
    if isinstance(store, MongoStore) and store.uri.startswith("mongomock:"):
        # mongomock adds doubles in document order (Python's sum), which the rollup's lookup
        # changes; MongoDB's $sum adds them in double-double precision, and DuckDB by Kahan's
        # fsum: there the answers are equal to the bit. Counts are equal everywhere.
        with_rollup, recomputed = rounded(with_rollup), rounded(recomputed)
    for got, expected in zip(with_rollup, recomputed, strict=True):
        assert got == expected


def rounded(value: Any) -> Any:
    """`value` with every float rounded to 9 significant digits (dataclasses, dicts, lists)."""
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(rounded(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: rounded(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


@pytest.mark.parametrize("seed", [1])
def test_the_rollup_equals_its_recomputation_through_writes_and_deletions(
    store: EventStore, seed: int
) -> None:
    events, starts = scenario(seed)
    rng = random.Random(seed)
    store_in_batches(store, events, rng)
    rows = rollup_rows(settled(store))  # DuckDB: the tail merged, reads from the rollup alone
    assert len(rows) > 50  # searches with clicks, and clicks of unknown searches
    start = naive_utc(NOW - starts[2])
    assert any(row[3] < start <= row[5] for row in rows)  # a straddling search
    assert_rollup_exact(store, starts)

    if isinstance(store, DuckDBStore):  # reads with a tail of unmerged clicks
        store.merge_when_idle = False
    store.delete_user("u1")  # their clicks on others' searches go; others' clicks stay
    assert_rollup_exact(store, starts)
    store_in_batches(store, events, rng)  # everything again: the deleted come back, once
    if isinstance(store, DuckDBStore):
        assert store._query(duckdb_rollup.TAIL_ROWS, {})[0][0] > 0
    assert_rollup_exact(store, starts)
    store.delete_before(NOW - 20 * DAY)  # retention: clicks of searches made before it go
    assert_rollup_exact(store, starts)
    if isinstance(store, DuckDBStore):
        store.merge_when_idle = True
    store_in_batches(store, events[:50], rng)
    assert_rollup_exact(settled(store), starts)
    store.reset()
    assert rollup_rows(store) == []


def test_a_duckdb_store_rebuilds_a_rollup_that_misses_clicks(tmp_path: Path) -> None:
    """Clicks written around the writer (a bulk load with SQL, a store from before the
    rollup) are found at the next open, and the rollup rebuilt."""
    path = tmp_path / "s.duckdb"
    events, starts = scenario(3)
    store = open_store(str(path))
    store.open()
    store.append_sync(events)
    before = rollup_rows(settled(store))
    store.close()
    con = duckdb.connect(str(path))
    con.execute(
        "INSERT INTO click_events SELECT * REPLACE ('bulk-' || event_id AS event_id) FROM click_events"
    )
    con.execute(
        "DELETE FROM search_clicks WHERE search_id IN (SELECT search_id FROM search_clicks LIMIT 5)"
    )
    con.close()
    store = open_store(str(path))
    store.open()
    try:
        after, again = both_rows(store)
        assert after == again
        assert [row[1] for row in after] == [2 * row[1] for row in before]
        assert_rollup_exact(store, starts)
    finally:
        store.close()


def test_a_mongo_store_rebuilds_a_rollup_that_misses_clicks() -> None:
    url = "mongomock://localhost/rollup_rebuild"
    events, starts = scenario(4)
    store = open_store(url)
    store.open()
    try:
        store.append_sync(events)
        assert isinstance(store, MongoStore)
        before = rollup_rows(store)
        store._rollup_collection().delete_many({})
    finally:
        store.close()
    store = open_store(url)
    store.open()
    try:
        assert rollup_rows(store) == before
        assert_rollup_exact(store, starts)
    finally:
        assert isinstance(store, MongoStore)
        store._client.drop_database("rollup_rebuild")
        store.close()


def test_a_window_start_between_a_searchs_clicks_counts_only_the_later_ones(
    store: EventStore,
) -> None:
    """A fixed case: three clicks, the window starts between the first and the second."""
    search = SearchImpression(user_id="u", query="tent", results_count=10, timestamp=NOW - 2 * HOUR)
    clicks = [
        ClickEvent(user_id="u", search_id=search.search_id, product_id=f"p{r}", rank=r,
                   timestamp=NOW - HOUR - timedelta(minutes=m))
        for r, m in ((4, 30), (2, 0), (3, -10))
    ]  # fmt: skip
    store.append_sync([search, *clicks])
    (totals,) = store.search_totals_many(Filters(since=NOW - HOUR - 15 * MINUTE), [Grouping()])
    assert totals.get((), SearchTotals()).searches == 0  # the search is before the window
    since = NOW - 2 * HOUR
    store.append_sync([ClickEvent(user_id="u", search_id=search.search_id, product_id="p1",
                                  rank=1, timestamp=since - MINUTE)])  # fmt: skip
    (totals,) = store.search_totals_many(Filters(since=since), [Grouping()])
    assert totals[()]["clicks"] == 3  # the click before the window is not counted
    assert totals[()]["rank_sum"] == 4 + 2 + 3
    sums = store.user_sums(since, [search.variant], None, SumOptions())
    assert sums[search.variant].sums["clicks"] == 3
    assert rollup_rows(settled(store))[0][1:3] == (4, 10)  # the rollup keeps every click
