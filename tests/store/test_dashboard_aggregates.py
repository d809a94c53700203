"""The dashboard's aggregates: search totals by variant, day and query, products, latency
buckets and the export, the same on every backend (fixed values and a plain-Python reference)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from clickstats import ClickEvent, SearchImpression, metrics
from clickstats.store import EventStore
from clickstats.store.base import (
    LATENCY_EDGES_MS,
    Filters,
    Grouping,
    GroupKey,
    ProductClicks,
    SearchTotals,
)

ALL = Filters(since=datetime(2026, 1, 1, tzinfo=UTC))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def imp(sid: str, user: str, variant: str, when: str, query: str, results: int = 10,
        rt: float | None = 20.0) -> SearchImpression:  # fmt: skip
    return SearchImpression(
        event_id=f"i-{sid}", search_id=sid, user_id=user, variant=variant, query=query,
        results_count=results, response_time_ms=rt, timestamp=at(when),
    )  # fmt: skip


def clk(n: str, sid: str | None, rank: int, when: str, user: str = "u1", product: str = "p1",
        variant: str = "v1") -> ClickEvent:  # fmt: skip
    return ClickEvent(
        event_id=f"c-{n}", search_id=sid, user_id=user, variant=variant, product_id=product,
        rank=rank, timestamp=at(when),
    )  # fmt: skip


# Times chosen around Berlin's daylight-saving changes (2026-03-29 01:00 UTC and
# 2026-10-25 01:00 UTC) and the midnights of UTC, New York and Kathmandu (UTC+5:45).
EVENTS = [
    imp("s1", "u1", "v1", "2026-03-28 22:59:00", "shoes"),  # Berlin 23:59 CET, 28 Mar
    clk("1", "s1", 2, "2026-03-28 23:00:00", product="p2"),
    clk("2", "s1", 4, "2026-03-28 23:01:00", product="p4"),
    imp("s2", "u1", "v1", "2026-03-28 23:30:00", "shoes"),  # Berlin 00:30 CET, 29 Mar
    imp("s3", "u2", "v2", "2026-03-29 00:30:00", "boots", results=0, rt=None),  # zero results
    imp("s4", "u2", "v2", "2026-03-29 01:30:00", "Schuhe größe 42", rt=7.5),  # 03:30 CEST
    clk("3", "s4", 1, "2026-03-29 01:31:00", user="u2", variant="v2"),
    imp("s5", "u3", "v1", "2026-10-24 22:30:00", "shoes", rt=120.0),  # Berlin 00:30 CEST, 25 Oct
    imp("s6", "u3", "v1", "2026-10-25 22:30:00", "boots", rt=9_999.0),  # Berlin 23:30 CET, 25 Oct
    clk("4", "s6", 1, "2026-10-25 22:31:00", user="u3", product="p2"),
    imp("s7", "u1", "v2", "2026-11-20 18:20:00", "shoes", rt=25.0),  # Kathmandu 00:05, 21 Nov
    clk("5", "s7", 3, "2026-11-20 18:21:00", product="p2", variant="v2"),
    imp("s8", "u4", "v2", "2026-11-21 04:30:00", "boots", results=0, rt=10_000.0),  # NY 23:30, 20
    clk("6", None, 5, "2026-11-21 05:00:00", user="u4", product="p9"),  # cites no search
    clk("7", "s2", 1, "2026-01-01 00:00:00"),  # a click on s2 from before it: still linked
]


@pytest.fixture
def filled(store: EventStore) -> EventStore:
    store.append_sync(EVENTS)
    return store


def first_click(clicks: list[ClickEvent]) -> ClickEvent:
    """A search's first click: the earliest, the lower rank on a tie."""
    return min(clicks, key=lambda c: (c.timestamp, c.rank))


def reference(f: Filters, by: tuple[GroupKey, ...], tz: str) -> dict[tuple[str, ...], SearchTotals]:
    """search_totals in plain Python, straight from the events."""
    clicks = [e for e in EVENTS if isinstance(e, ClickEvent) and e.timestamp >= f.since]
    groups: dict[tuple[str, ...], list[SearchImpression]] = defaultdict(list)
    for s in EVENTS:
        if not isinstance(s, SearchImpression) or s.timestamp < f.since:
            continue
        if f.user_id not in (None, s.user_id) or f.variant not in (None, s.variant):
            continue
        day = s.timestamp.astimezone(ZoneInfo(tz)).date().isoformat()
        keys = {"variant": s.variant, "query": s.query, "day": day}
        groups[tuple(keys[k] for k in by)].append(s)
    out = {}
    for key, searches in sorted(groups.items()):
        linked = [[c for c in clicks if c.search_id == s.search_id] for s in searches]
        pairs = list(zip(searches, linked, strict=True))
        sums = {
            "searches": len(searches),
            "clicked_searches": sum(1 for cs in linked if cs),
            "clicks": sum(len(cs) for cs in linked),
            "rr": sum(1 / first_click(cs).rank for cs in linked if cs),
            "rank_sum": sum(c.rank for cs in linked for c in cs),
            "with_results": sum(1 for s in searches if s.results_count),
            "abandoned": sum(1 for s, cs in pairs if s.results_count and not cs),
            "zero_results": sum(1 for s in searches if s.results_count == 0),
            "counted_searches": sum(1 for s in searches if s.results_count is not None),
            "ttfc_ms": sum(
                (first_click(cs).timestamp - s.timestamp) // timedelta(milliseconds=1)
                for s, cs in pairs
                if cs
            ),
            # a per-user column is the group's users; these events have no conversion (their
            # columns: tests/store/test_conversions.py)
            "users": len({s.user_id for s in searches}),
            "unconverted_clicks": sum(len(cs) for cs in linked),
            **{
                name: 0
                for name in metrics.columns()
                if metrics.needed_facts([name]) & metrics.CONVERSION_FACTS
                and name != "unconverted_clicks"
            },
        }
        assert set(sums) == set(metrics.columns())
        sums = {name: sums[name] for name in metrics.columns(dashboard=True)}
        out[key] = SearchTotals(users=len({s.user_id for s in searches}), sums=sums)
    return out


def rounded(
    totals: dict[tuple[str, ...], SearchTotals],
) -> dict[tuple[str, ...], tuple[int, dict[str, int | float]]]:
    """Totals to compare: float sums to 9 decimals (their order of addition may differ)."""
    return {
        key: (t.users, {c: round(v, 9) if isinstance(v, float) else v for c, v in t.sums.items()})
        for key, t in totals.items()
    }


def same(
    got: list[dict[tuple[str, ...], SearchTotals]],
    expected: list[dict[tuple[str, ...], SearchTotals]],
) -> bool:
    return [rounded(g) for g in got] == [rounded(e) for e in expected]


def test_totals_of_everything(filled: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # clicked: s1 (ranks 2 and 4), s2 (1), s4 (1), s6 (1), s7 (3); abandoned: s5 only. The
    # first clicks come a minute after their searches, but s2's, 86 days 23.5 hours before.
    (totals,) = filled.search_totals(ALL, Grouping()).values()
    assert totals.users == 4
    assert totals.sums == {
        "searches": 8, "clicked_searches": 5, "clicks": 6, "rank_sum": 12, "with_results": 6,
        "abandoned": 1, "zero_results": 2, "counted_searches": 8, "converted_searches": 0,
        "revenue": 0.0,
        "unconverted_clicks": 6,
    }  # fmt: skip
    assert list(totals.sums) == metrics.columns(dashboard=True)
    # MRR and time to first click on the dashboard: their columns are summed too
    for name in ("mrr", "time_to_first_click_ms"):
        shown = dataclasses.replace(metrics.METRICS[name], dashboard=True)
        monkeypatch.setitem(metrics.METRICS, name, shown)
    (totals,) = filled.search_totals(ALL, Grouping()).values()
    assert totals["rr"] == pytest.approx(1 / 2 + 3 + 1 / 3)
    assert totals["ttfc_ms"] == 4 * 60_000 - (86 * 86_400 + 84_600) * 1000
    for name, value in totals.sums.items():  # counts as int, the others as float
        assert type(value) is (int if metrics.COLUMNS[name].integer else float), name
    assert (totals.searches, totals["clicks"]) == (8, 6)


@pytest.mark.parametrize(
    "by", [("variant",), ("query",), ("day",), ("day", "variant"), ("variant", "query")]
)
@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu"])
def test_groups_agree_with_the_reference(
    filled: EventStore, by: tuple[GroupKey, ...], tz: str
) -> None:
    got = filled.search_totals(ALL, Grouping(by=by, tz=tz))
    assert same([got], [reference(ALL, by, tz)])
    assert list(got) == sorted(got)  # ordered by key


def test_many_groupings_at_once(filled: EventStore) -> None:
    groupings = [
        Grouping(),
        Grouping(by=("variant",)),
        Grouping(by=("day", "variant"), tz="Europe/Berlin"),
        Grouping(by=("variant", "day"), tz="America/New_York"),
        Grouping(by=("query",)),
    ]
    u3 = Filters(since=ALL.since, user_id="u3")
    for f in (ALL, u3):
        assert same(
            filled.search_totals_many(f, groupings), [reference(f, g.by, g.tz) for g in groupings]
        )
    bounded = groupings[:4]  # MongoDB answers these in one $facet
    assert same(
        filled.search_totals_many(ALL, bounded), [reference(ALL, g.by, g.tz) for g in bounded]
    )
    ranked = [
        Grouping(by=("query",), order="searches", top=2),
        Grouping(by=("query",), order="abandoned", top=2),
        Grouping(by=("variant", "query")),
        Grouping(by=("query", "variant")),
        Grouping(),
    ]
    assert same(
        filled.search_totals_many(ALL, ranked), [filled.search_totals(ALL, g) for g in ranked]
    )


def test_days_follow_daylight_saving_time(filled: EventStore) -> None:
    berlin = filled.search_totals(ALL, Grouping(by=("day",), tz="Europe/Berlin"))
    # 22:59 and 23:30 UTC on 28 March fall on two Berlin days (CET, UTC+1); 22:30 UTC on
    # 24 and 25 October on the same Berlin day (CEST, UTC+2, then CET).
    assert {day: t.searches for (day,), t in berlin.items()} == {
        "2026-03-28": 1, "2026-03-29": 3, "2026-10-25": 2, "2026-11-20": 1, "2026-11-21": 1,
    }  # fmt: skip
    kathmandu = filled.search_totals(ALL, Grouping(by=("day",), tz="Asia/Kathmandu"))
    assert kathmandu[("2026-11-21",)].searches == 2  # 18:20 UTC is 00:05 the next day there
    new_york = filled.search_totals(ALL, Grouping(by=("day",), tz="America/New_York"))
    assert new_york[("2026-11-20",)].searches == 2


def test_filters_apply_to_searches_not_to_their_clicks(filled: EventStore) -> None:
    u1 = Filters(since=ALL.since, user_id="u1")
    got = filled.search_totals(u1, Grouping(by=("variant",)))
    assert same([got], [reference(u1, ("variant",), "UTC")])
    v2 = Filters(since=ALL.since, variant="v2")
    got = filled.search_totals(v2, Grouping(by=("query",)))
    assert same([got], [reference(v2, ("query",), "UTC")])
    # The window cuts clicks too: the January click on s2 is outside a window from February.
    feb = Filters(since=at("2026-02-01 00:00:00"))
    assert same([filled.search_totals(feb, Grouping())], [reference(feb, (), "UTC")])
    assert filled.search_totals(feb, Grouping())[()]["clicks"] == 5  # of 6
    assert filled.search_totals(Filters(since=at("2026-12-01 00:00:00")), Grouping()) == {}


def test_ranked_groups(filled: EventStore) -> None:
    def ranked(order: str, top: int) -> list[tuple[str, int]]:
        grouping = Grouping(by=("query",), order=order, top=top)  # type: ignore[arg-type]
        return [(q, int(t[order])) for (q,), t in filled.search_totals(ALL, grouping).items()]

    assert ranked("searches", 2) == [("shoes", 4), ("boots", 3)]
    assert ranked("zero_results", 5) == [("boots", 2)]  # groups without any are left out
    assert ranked("abandoned", 5) == [("shoes", 1)]
    tie = filled.search_totals(ALL, Grouping(by=("variant",), order="searches", top=5))
    assert [(v, t.searches) for (v,), t in tie.items()] == [("v1", 4), ("v2", 4)]  # ties by key


def test_top_products(filled: EventStore) -> None:
    assert filled.top_products(ALL, 2) == [
        ProductClicks("p2", clicks=3, users=2, rank_sum=6),
        ProductClicks("p1", clicks=2, users=2, rank_sum=2),
    ]
    only_u4 = Filters(since=ALL.since, user_id="u4")
    assert filled.top_products(only_u4, 5) == [ProductClicks("p9", 1, 1, 5)]


def test_latency_histogram_matches_numpy(filled: EventStore) -> None:
    times = [e.response_time_ms for e in EVENTS if isinstance(e, SearchImpression)]
    values = [t for t in times if t is not None]
    expected, _ = np.histogram(values, bins=[*LATENCY_EDGES_MS, np.inf])
    histogram = filled.latency_histogram(ALL)
    assert list(histogram) == list(LATENCY_EDGES_MS)
    assert list(histogram.values()) == expected.tolist()
    assert histogram[10_000] == 1 and histogram[5000] == 1  # 9,999 ms and 10,000 ms
    assert sum(filled.latency_histogram(Filters(since=ALL.since, variant="v2")).values()) == 3


def test_export_gives_back_every_event(filled: EventStore) -> None:
    batches = list(filled.export(batch_rows=4))
    assert [len(b) for b in batches] == [4, 4, 4, 3]
    rows = [row for batch in batches for row in batch]
    rebuilt = [
        (SearchImpression if row["type"] == "impression" else ClickEvent).model_validate(row)
        for row in rows
    ]
    assert sorted(rebuilt, key=lambda e: e.event_id) == sorted(EVENTS, key=lambda e: e.event_id)
    impressions = [r for r in rows if r["type"] == "impression"]
    assert rows[: len(impressions)] == impressions  # impressions first, then clicks by time
    clicks = rows[len(impressions) :]
    assert [c["timestamp"] for c in clicks] == sorted(c["timestamp"] for c in clicks)
    assert rows[0]["timestamp"].tzinfo is not None


def test_export_since(filled: EventStore) -> None:
    since = at("2026-11-01 00:00:00")
    rows = [row for batch in filled.export(since) for row in batch]
    assert sorted(r["event_id"] for r in rows) == ["c-5", "c-6", "i-s7", "i-s8"]
    assert list(filled.export(at("2026-12-01 00:00:00"))) == []


def test_export_keeps_interleaving_teams(store: EventStore) -> None:
    event = SearchImpression(
        query="q", results=["a", "b"], teams=["B", "A"], results_count=2, session_id="s",
        timestamp=at("2026-11-01 00:00:00"),
    )  # fmt: skip
    store.append_sync([event])
    ((row,),) = list(store.export())
    assert SearchImpression.model_validate(row) == event
