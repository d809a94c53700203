"""The backend contract: every store gives the same answers on the same events."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import numpy as np
import pytest

from clickstats import ClickEvent, SearchImpression
from clickstats.events import event_time_now
from clickstats.reports.base import cached
from clickstats.store import EventStore
from clickstats.store.base import (
    AppendStatus,
    ByVariant,
    Counts,
    Deleted,
    Filters,
    LatencyStats,
    UserSums,
)

NOW = event_time_now()  # to the millisecond, as events keep it
WEEK = Filters(since=NOW - timedelta(days=7))
MONTH = Filters(since=NOW - timedelta(days=30))
BY_VARIANT: ByVariant = ("variant",)


def imp(
    event_id: str, user: str, variant: str, rt: float | None, age: timedelta
) -> SearchImpression:
    return SearchImpression(
        event_id=event_id, user_id=user, variant=variant, query="shoes",
        results_count=10, response_time_ms=rt, timestamp=NOW - age,
    )  # fmt: skip


def click(event_id: str, user: str, variant: str, rank: int, age: timedelta) -> ClickEvent:
    return ClickEvent(
        event_id=event_id, user_id=user, variant=variant, product_id=f"p{rank}",
        rank=rank, timestamp=NOW - age,
    )  # fmt: skip


DAY, HOUR = timedelta(days=1), timedelta(hours=1)
EVENTS = [
    imp("i1", "u1", "search_v1", 10.0, 1 * DAY),
    imp("i2", "u1", "search_v1", 20.0, 2 * DAY),
    imp("i3", "u2", "search_v2", 30.0, 3 * DAY),
    imp("i4", "u2", "search_v2", None, 1 * HOUR),
    imp("i5", "u3", "search_v1", 40.0, 10 * DAY),
    click("c1", "u1", "search_v1", 1, 1 * DAY),
    click("c2", "u1", "search_v1", 3, 2 * DAY),
    click("c3", "u2", "search_v2", 2, 3 * DAY),
    click("c4", "u3", "search_v1", 5, 10 * DAY),
    click("c5", "u2", "search_v2", 2, 1 * HOUR),
]


@pytest.fixture
def filled(store: EventStore) -> EventStore:
    assert store.append_sync(EVENTS) == [AppendStatus.ACCEPTED] * len(EVENTS)
    return store


def test_counts_respect_the_window(filled: EventStore) -> None:
    assert filled.counts(WEEK, by=BY_VARIANT) == {
        ("search_v1",): Counts(impressions=2, clicks=2),
        ("search_v2",): Counts(impressions=2, clicks=2),
    }
    assert filled.counts(WEEK) == {(): Counts(impressions=4, clicks=4)}
    assert filled.counts(MONTH, by=BY_VARIANT)["search_v1",] == Counts(impressions=3, clicks=3)


def test_filters_by_user_and_variant(filled: EventStore) -> None:
    u2 = Filters(since=WEEK.since, user_id="u2")
    assert filled.counts(u2, by=BY_VARIANT) == {("search_v2",): Counts(impressions=2, clicks=2)}
    assert filled.counts(u2) == {(): Counts(impressions=2, clicks=2)}
    v2 = Filters(since=WEEK.since, variant="search_v2")
    assert filled.rank_histogram(v2) == {(): {2: 2}}
    assert filled.counts(v2) == {(): Counts(impressions=2, clicks=2)}
    nobody = Filters(since=WEEK.since, user_id="nobody")
    assert filled.counts(nobody, by=BY_VARIANT) == {}
    assert filled.counts(nobody) == {(): Counts()}


def test_rank_histograms(filled: EventStore) -> None:
    assert filled.rank_histogram(WEEK) == {(): {1: 1, 2: 2, 3: 1}}
    assert filled.rank_histogram(MONTH, by=BY_VARIANT) == {
        ("search_v1",): {1: 1, 3: 1, 5: 1},
        ("search_v2",): {2: 2},
    }


def test_latency_matches_numpy(filled: EventStore) -> None:
    (stats,) = filled.latency(WEEK).values()
    assert stats.count == 3  # the search without a response time is not a latency
    assert stats.mean == pytest.approx(20.0, abs=1e-9)
    assert (stats.minimum, stats.maximum) == (10.0, 30.0)
    assert stats.p95 == pytest.approx(np.percentile([10, 20, 30], 95), abs=1e-9)
    assert list(filled.latency(WEEK)) == [()]
    by_variant = filled.latency(MONTH, by=BY_VARIANT)
    assert by_variant["search_v1",].p95 == pytest.approx(np.percentile([10, 20, 40], 95), abs=1e-9)
    assert by_variant["search_v2",] == LatencyStats(
        count=1, mean=30.0, minimum=30.0, maximum=30.0, p95=30.0
    )


def test_empty_window_gives_empty_summaries(filled: EventStore) -> None:
    nothing = Filters(since=NOW + timedelta(minutes=1))
    assert filled.counts(nothing, by=BY_VARIANT) == {}
    assert filled.counts(nothing) == {(): Counts()}
    assert filled.rank_histogram(nothing, by=BY_VARIANT) == {}
    assert filled.rank_histogram(nothing) == {(): {}}
    assert filled.latency(nothing, by=BY_VARIANT) == {}
    assert filled.latency(nothing) == {(): LatencyStats(count=0)}
    assert filled.activity(nothing).first_seen is None


def test_activity_spans_clicks_and_impressions(filled: EventStore) -> None:
    activity = filled.activity(Filters(since=MONTH.since, user_id="u1"))
    assert activity.first_seen == NOW - 2 * DAY
    assert activity.last_seen == NOW - 1 * DAY


def test_percentile_on_many_values(store: EventStore) -> None:
    rng = np.random.default_rng(3)
    times = rng.lognormal(3, 0.6, size=997)
    store.append_sync(
        [imp(f"r{i}", f"u{i % 13}", "v", float(t), HOUR) for i, t in enumerate(times)]
    )
    stats = store.latency(WEEK)[()]
    assert stats.count == 997
    assert stats.p95 == pytest.approx(np.percentile(times, 95), abs=1e-9)
    assert stats.mean == pytest.approx(times.mean(), abs=1e-9)


def test_retried_event_ids_count_once(store: EventStore) -> None:
    first = click("dup", "u1", "v", 1, HOUR)
    retry = click("dup", "u1", "v", 4, HOUR)  # same id, other content: the first copy wins
    assert store.append_sync([first, retry]) == [AppendStatus.ACCEPTED, AppendStatus.DUPLICATE]
    assert store.append_sync([retry]) == [AppendStatus.DUPLICATE]
    assert store.rank_histogram(WEEK) == {(): {1: 1}}


def test_async_append_and_reset(store: EventStore) -> None:
    statuses = asyncio.run(store.append(EVENTS[:3]))
    assert statuses == [AppendStatus.ACCEPTED] * 3
    assert asyncio.run(store.append([])) == []
    assert store.reset() == Deleted(clicks=0, impressions=3)
    assert store.counts(MONTH, by=BY_VARIANT) == {}
    # an id stored before a reset may be stored again after it
    assert store.append_sync(EVENTS[:1]) == [AppendStatus.ACCEPTED]


def test_concurrent_writers_lose_and_duplicate_nothing(store: EventStore) -> None:
    def worker(n: int) -> None:
        events = [click(f"t{n}-{i}", f"u{n}", "v", 1 + i % 7, HOUR) for i in range(40)]
        assert store.append_sync(events) == [AppendStatus.ACCEPTED] * 40
        assert store.append_sync(events[:10]) == [AppendStatus.DUPLICATE] * 10

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(store.rank_histogram(WEEK)[()].values()) == 16 * 40


def test_large_batches_with_retries_inside(store: EventStore) -> None:
    """Hundreds of events in one append (the batch path), some of them already stored."""
    stored = [click(f"L{i}", "u1", "v", 1 + i % 3, HOUR) for i in range(10)]
    store.append_sync(stored)
    batch = [click(f"L{i}", "u1", "v", 1 + i % 3, HOUR) for i in range(600)]
    impressions = [
        SearchImpression(
            event_id=f"R{i}", query="q", results=[f"p{i}", "p0"], results_count=2,
            timestamp=NOW - HOUR,
        )
        for i in range(300)
    ]  # fmt: skip
    statuses = store.append_sync([*batch, *impressions])
    assert statuses == [AppendStatus.DUPLICATE] * 10 + [AppendStatus.ACCEPTED] * 890
    assert sum(store.rank_histogram(WEEK)[()].values()) == 600
    assert store.counts(WEEK)[()].impressions == 300
    assert sum(c.impressions for c in store.counts(WEEK, by=BY_VARIANT).values()) == 300
    assert store.append_sync(impressions[:5]) == [AppendStatus.DUPLICATE] * 5


def _exported_ids(store: EventStore) -> set[str]:
    return {row["event_id"] for batch in store.export() for row in batch}


def _user_count(store: EventStore, user: str) -> int:
    rows = [row for batch in store.export() for row in batch if row["user_id"] == user]
    return len(rows)


def test_delete_user_removes_that_user_everywhere_and_no_one_else(filled: EventStore) -> None:
    variants = ["search_v1", "search_v2"]

    def user_sums() -> dict[str, UserSums]:  # cached by generation where the store can
        return cached(filled, ("user_sums", MONTH.since), lambda: filled.user_sums(*args))

    args = (MONTH.since, variants)
    others = {u: filled.counts(Filters(MONTH.since, user_id=u), BY_VARIANT) for u in ("u2", "u3")}
    before = user_sums()
    assert (before["search_v1"].users, before["search_v2"].users) == (2, 1)
    generation = filled.generation()

    assert filled.delete_user("u1") == Deleted(clicks=2, impressions=2)

    if generation is not None:
        assert filled.generation() != generation
    mine = Filters(MONTH.since, user_id="u1")
    assert filled.counts(mine, by=BY_VARIANT) == {}
    assert filled.rank_histogram(mine) == {(): {}}
    assert filled.activity(mine).first_seen is None
    assert _user_count(filled, "u1") == 0
    after = user_sums()  # no stale cached answer
    assert (after["search_v1"].users, after["search_v2"].users) == (1, 1)
    assert after == filled.user_sums(*args)
    assert _exported_ids(filled) == {"i3", "i4", "i5", "c3", "c4", "c5"}
    assert {u: filled.counts(Filters(MONTH.since, user_id=u), BY_VARIANT) for u in others} == others
    # nothing left: zeros, not an error; the user may come back
    assert filled.delete_user("u1") == Deleted()
    assert filled.append_sync([EVENTS[0]]) == [AppendStatus.ACCEPTED]


def test_delete_before_removes_exactly_the_older_events(filled: EventStore) -> None:
    # events 1 h, 1, 2, 3 and 10 days old; those exactly at the cutoff stay
    generation = filled.generation()
    assert filled.delete_before(NOW - 2 * DAY) == Deleted(clicks=2, impressions=2)
    if generation is not None:
        assert filled.generation() != generation
    assert _exported_ids(filled) == {"i1", "i2", "i4", "c1", "c2", "c5"}
    assert filled.counts(MONTH, by=BY_VARIANT) == {
        ("search_v1",): Counts(impressions=2, clicks=2),
        ("search_v2",): Counts(impressions=1, clicks=1),
    }
    assert filled.delete_before(NOW - 2 * DAY) == Deleted()
    assert filled.delete_before(NOW + HOUR) == Deleted(clicks=3, impressions=3)
    assert filled.counts(MONTH, by=BY_VARIANT) == {}
    assert filled.counts(MONTH) == {(): Counts()}
