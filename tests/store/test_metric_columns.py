"""Every backend computes every column of the metric registry, compiled at query time: a
column and metric added to the registry are in both aggregates' next answers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from clickstats import ClickEvent, SearchImpression, metrics
from clickstats.events import event_time_now
from clickstats.metrics import CLICKED, AllOf, Column, Compare, Metric, Minus, Num, Of, When
from clickstats.store import EventStore
from clickstats.store.base import Filters, Grouping

NOW = event_time_now()
T0 = NOW - timedelta(hours=2)
WEEK = Filters(since=NOW - timedelta(days=7))
S = timedelta(seconds=1)


def imp(sid: str, user: str, variant: str) -> SearchImpression:
    return SearchImpression(
        event_id=f"i-{sid}", search_id=sid, user_id=user, variant=variant, query="q",
        results_count=10, timestamp=T0,
    )  # fmt: skip


def clk(n: str, sid: str, rank: int, at: timedelta) -> ClickEvent:
    return ClickEvent(
        event_id=f"c-{n}", search_id=sid, product_id="p", rank=rank, timestamp=T0 + at
    )


EVENTS = [
    # u1 (v1): s1 first click at rank 5 then rank 1; s2 first click at rank 3; s3 no click
    imp("s1", "u1", "v1"), clk("1", "s1", 5, S), clk("2", "s1", 1, 2 * S),
    imp("s2", "u1", "v1"), clk("3", "s2", 3, S),
    imp("s3", "u1", "v1"),
    # u2 (v1): s4 first click at rank 2, twice
    imp("s4", "u2", "v1"), clk("4", "s4", 2, S), clk("5", "s4", 2, 3 * S),
    # u3 (v2): s5 first clicks at rank 1 and 4 at the same time: rank 1 is the first
    imp("s5", "u3", "v2"), clk("6", "s5", 4, S), clk("7", "s5", 1, S),
]  # fmt: skip

#: per user of each variant: searches whose first click is in the top 3, clicks after the first
TOP3 = {"v1": {"u1": 1, "u2": 1}, "v2": {"u3": 1}}
LATER = {"v1": {"u1": 1, "u2": 1}, "v2": {"u3": 1}}
SEARCHES = {"v1": {"u1": 3, "u2": 1}, "v2": {"u3": 1}}


@pytest.fixture
def filled(store: EventStore) -> EventStore:
    store.append_sync(EVENTS)
    return store


def test_every_registry_column_is_in_both_aggregates(filled: EventStore) -> None:
    names = metrics.columns()
    for sums in filled.user_sums(WEEK.since, ["v1", "v2"]).values():
        assert list(sums.sums) == list(sums.squares) == names
        assert list(sums.products) == metrics.pairs()
    for totals in filled.search_totals(WEEK, Grouping(by=("variant",))).values():
        assert list(totals.sums) == metrics.columns(dashboard=True)
    # search totals read no more than the dashboard shows: MRR's and time to first click's
    # columns (not on the dashboard) would cost every linked click's first rank and time
    assert {"rr", "ttfc_ms"} <= set(names) - set(metrics.columns(dashboard=True))


def test_a_metric_added_to_the_registry_is_computed(
    filled: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    top3 = When(AllOf((CLICKED, Compare(Of("first_rank"), "<=", Num(3)))), Num(1))
    later = Minus(Of("clicks"), Compare(Of("clicks"), ">", Num(0)))  # clicks after the first
    monkeypatch.setitem(metrics.COLUMNS, "top3", Column("top3", top3, "first click in top 3"))
    monkeypatch.setitem(metrics.COLUMNS, "later", Column("later", later, "clicks after the first"))
    for name, x in (("top3_rate", "top3"), ("later_clicks", "later")):
        metric = Metric(name, name, x, "searches", True, False, dashboard=True)
        monkeypatch.setitem(metrics.METRICS, name, metric)
    assert {"top3", "later"} <= set(metrics.columns())

    sums = filled.user_sums(WEEK.since, ["v1", "v2"])
    for variant, per_user in SEARCHES.items():
        s = sums[variant]
        for column, values in (("top3", TOP3), ("later", LATER)):
            users = values[variant]
            assert s.sums[column] == pytest.approx(sum(users.values())), (variant, column)
            assert s.squares[column] == pytest.approx(sum(v * v for v in users.values()))
            product = sum(users[u] * per_user[u] for u in users)
            assert s.products[column, "searches"] == pytest.approx(product), (variant, column)

    totals = filled.search_totals(WEEK, Grouping(by=("variant",)))
    for variant in SEARCHES:
        t = totals[variant,]
        assert t["top3"] == sum(TOP3[variant].values()) and type(t["top3"]) is int
        assert t["later"] == sum(LATER[variant].values()) and type(t["later"]) is int
    # gone from the registry, gone from the answers
    monkeypatch.undo()
    assert "top3" not in filled.search_totals(WEEK, Grouping())[()].sums
    assert "top3" not in filled.user_sums(WEEK.since, ["v1"])["v1"].sums
