"""The interleaving aggregate: outcomes per user (and per query), the same on every backend."""

from __future__ import annotations

from datetime import timedelta

from clickstats import ClickEvent, SearchImpression
from clickstats.events import event_time_now
from clickstats.store import EventStore
from clickstats.store.base import PreferenceSums

NOW = event_time_now()
T0 = NOW - timedelta(hours=5)
WEEK = NOW - timedelta(days=7)


def imp(sid: str, user: str, teams: str, query: str = "shoes") -> SearchImpression:
    return SearchImpression(
        event_id=f"i-{sid}", search_id=sid, user_id=user, variant="duel", query=query,
        results=[f"p{k}" for k in range(len(teams))], results_count=len(teams),
        teams=list(teams), timestamp=T0,
    )  # fmt: skip


def clk(n: str, sid: str, rank: int) -> ClickEvent:
    return ClickEvent(
        event_id=f"c-{n}", search_id=sid, product_id="p", rank=rank,
        timestamp=T0 + timedelta(seconds=int(n)),
    )  # fmt: skip


EVENTS = [
    imp("s1", "u1", "ABAB"), clk("1", "s1", 1),  # A wins
    imp("s2", "u1", "ABAB"), clk("2", "s2", 2), clk("3", "s2", 2),  # B (one position, twice)
    imp("s3", "u1", "BAAB"), clk("4", "s3", 1), clk("5", "s3", 2),  # tie
    imp("s4", "u2", "ABAB", "boots"), clk("6", "s4", 2), clk("7", "s4", 4), clk("8", "s4", 1),  # B
    imp("s5", "u2", "ABAB", "boots"),  # no click: left out
    imp("s6", "u2", "AB", "boots"), clk("9", "s6", 7),  # a click past the list: left out
    SearchImpression(event_id="i-s7", search_id="s7", user_id="u3", variant="duel", query="q"),
    clk("10", "s7", 1),  # an impression without teams: left out
]  # fmt: skip


def test_preference_sums(store: EventStore) -> None:
    store.append_sync(EVENTS)
    # u1: A 1, B 1, tie 1; u2: B 1
    assert store.preference_sums(WEEK, "duel") == {
        (): PreferenceSums(units=2, wins_a=1, wins_b=2, ties=1, wins_a2=1, wins_b2=2, wins_ab=1)
    }
    assert store.preference_sums(WEEK, "other") == {(): PreferenceSums(units=0)}


def test_preference_sums_by_query(store: EventStore) -> None:
    store.append_sync(EVENTS)
    by_query = store.preference_sums(WEEK, "duel", top_queries=5)
    assert list(by_query) == [("shoes",), ("boots",)]  # most searches with clicks first
    assert by_query["boots",] == PreferenceSums(units=1, wins_b=1, wins_b2=1)
    assert list(store.preference_sums(WEEK, "duel", top_queries=1)) == [("shoes",)]
