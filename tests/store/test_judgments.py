"""The backend contract for judgment_counts: per (query, product, rank), the searches that
showed the product there and those of them with a click on it, linked by search_id."""

from __future__ import annotations

from datetime import timedelta

from clickstats.events import ClickEvent, SearchImpression, event_time_now
from clickstats.store import EventStore
from clickstats.store.base import Counts, Filters, JudgmentCount, JudgmentCounts

NOW = event_time_now()
DAY = timedelta(days=1)
WEEK = Filters(since=NOW - 7 * DAY)


def search(
    event_id: str,
    search_id: str,
    user: str,
    query: str,
    variant: str,
    results: list[str] | None,
    age: timedelta = DAY,
) -> SearchImpression:
    return SearchImpression(
        event_id=event_id,
        search_id=search_id,
        user_id=user,
        query=query,
        variant=variant,
        results=results,
        timestamp=NOW - age,
    )


def click(
    event_id: str, search_id: str, product: str, rank: int, age: timedelta = DAY
) -> ClickEvent:
    return ClickEvent(
        event_id=event_id,
        search_id=search_id,
        user_id="anyone",
        product_id=product,
        rank=rank,
        timestamp=NOW - age,
    )


EVENTS = [
    search("i1", "q1", "u1", "tv", "v1", ["p1", "p2", "p3"]),
    search("i1b", "q1", "u1", "tv", "v1", ["p1", "p2", "p3"]),  # the same search, sent twice
    click("c1", "q1", "p1", 1),
    click("c1b", "q1", "p1", 1),  # a second click on it: the search still counts once
    click("c2", "q1", "p3", 3),
    search("i2", "q2", "u2", "tv", "v2", ["p2", "p1"]),
    click("c3", "q2", "p1", 2),
    click("c4", "q2", "p2", 1, age=8 * DAY),  # before the window
    search("i3", "q3", "u1", "tv", "v1", ["p1", "p2", "p1"]),  # p1 counts at its first rank
    search("i4", "q4", "u3", "radio", "v1", ["p9"]),
    click("c5", "q4", "p9", 1),
    click("c6", "q4", "p5", 2),  # not among the stored results: no impression to count it for
    search("i5", "q5", "u1", "tv", "v1", None),  # no results stored: nothing to judge
    click("c7", "q5", "p1", 1),
    search("i6", "q6", "u1", "tv", "v1", ["p1"], age=10 * DAY),  # before the window
]  # fmt: skip

ALL_ROWS = (
    JudgmentCount("radio", "p9", 1, impressions=1, clicks=1),
    JudgmentCount("tv", "p1", 1, impressions=2, clicks=1),
    JudgmentCount("tv", "p1", 2, impressions=1, clicks=1),
    JudgmentCount("tv", "p2", 1, impressions=1, clicks=0),
    JudgmentCount("tv", "p2", 2, impressions=2, clicks=0),
    JudgmentCount("tv", "p3", 3, impressions=1, clicks=1),
)
ALL_RANKS = {1: Counts(4, 2), 2: Counts(3, 1), 3: Counts(1, 1)}


def test_counts_per_query_product_and_rank(store: EventStore) -> None:
    store.append_sync(EVENTS)
    assert store.judgment_counts(WEEK) == JudgmentCounts(rows=ALL_ROWS, ranks=ALL_RANKS)
    # Pairs shown fewer times are left out of the rows, not of the ranks' figures.
    kept = store.judgment_counts(WEEK, min_impressions=3)
    assert kept == JudgmentCounts(rows=ALL_ROWS[1:5], ranks=ALL_RANKS)
    top = store.judgment_counts(WEEK, max_rank=1)
    assert top.rows == (ALL_ROWS[0], ALL_ROWS[1], ALL_ROWS[3])
    assert top.ranks == {1: Counts(4, 2)}


def test_filters_select_the_searches(store: EventStore) -> None:
    store.append_sync(EVENTS)
    # One user's searches, with everyone's clicks on them.
    assert store.judgment_counts(Filters(since=WEEK.since, user_id="u1")) == JudgmentCounts(
        rows=(
            JudgmentCount("tv", "p1", 1, 2, 1),
            JudgmentCount("tv", "p2", 2, 2, 0),
            JudgmentCount("tv", "p3", 3, 1, 1),
        ),
        ranks={1: Counts(2, 1), 2: Counts(2, 0), 3: Counts(1, 1)},
    )
    assert store.judgment_counts(Filters(since=WEEK.since, variant="v2")) == JudgmentCounts(
        rows=(JudgmentCount("tv", "p1", 2, 1, 1), JudgmentCount("tv", "p2", 1, 1, 0)),
        ranks={1: Counts(1, 0), 2: Counts(1, 1)},
    )
    assert store.judgment_counts(Filters(since=NOW + DAY)) == JudgmentCounts()
