"""The overview's conversions and revenue on every backend: conversion rate and revenue per
search in the overview's currency (the one asked for, else the one of most purchases), and the
conversions section per currency, per variant and per day, with fixed expected values."""

from __future__ import annotations

from datetime import timedelta

import pytest

from clickstats.events import ClickEvent, ConversionEvent, SearchImpression, event_time_now
from clickstats.reports.overview import Overview, Period, local_days, overview
from clickstats.store import EventStore

NOW = event_time_now()
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def search(sid: str, user: str, variant: str, query: str, age: timedelta = HOUR) -> SearchImpression:  # fmt: skip
    return SearchImpression(
        event_id=f"i-{sid}", search_id=sid, user_id=user, variant=variant, query=query,
        results_count=10, timestamp=NOW - age,
    )  # fmt: skip


def click(sid: str, user: str, product: str) -> ClickEvent:
    return ClickEvent(
        event_id=f"c-{sid}-{product}", search_id=sid, user_id=user, product_id=product, rank=1,
        timestamp=NOW - HOUR,
    )  # fmt: skip


def conversion(eid: str, user: str, product: str, **fields: object) -> ConversionEvent:
    return ConversionEvent.model_validate(
        {"event_id": eid, "user_id": user, "product_ids": [product],
         "timestamp": NOW - HOUR / 2, **fields}
    )  # fmt: skip


#: Six searches in the period (search_v1: s1 s2 s5; search_v2: s3 s4 s6) and one ten days before it (s0).
# fmt: off
EVENTS = [
    search("s0", "u1", "search_v1", "shoes", age=10 * DAY),
    search("s1", "u1", "search_v1", "shoes"),
    search("s2", "u1", "search_v1", "shoes"),
    search("s3", "u2", "search_v2", "boots"),
    search("s4", "u3", "search_v2", "shoes"),
    search("s5", "u4", "search_v1", "hats"),
    search("s6", "u3", "search_v2", "shoes"),
    click("s1", "u1", "p1"),
    click("s3", "u2", "p3"),
    click("s4", "u3", "p4"),
    click("s4", "u3", "p5"),
    click("s5", "u4", "p6"),
    *(click("s6", "u3", p) for p in ("p7", "p8", "p9")),
    # s1 by its click on p1
    conversion("b1", "u1", "p1", subtype="purchase", value=40.0, currency="EUR"),
    # s3 by its search_id, in two currencies; two units
    conversion("b2", "u2", "p3", subtype="purchase", value=25.0, currency="EUR", search_id="s3",
               quantities=[2]),
    conversion("b3", "u2", "p3", subtype="purchase", value=3000.0, currency="JPY", search_id="s3"),
    # s4 by its click on p4; no amount, no currency
    conversion("t1", "u3", "p4", subtype="add_to_cart"),
    # a product never clicked: attributed to no search
    conversion("b4", "u4", "p99", subtype="purchase", value=15.0, currency="EUR"),
    # made in the period, for a search made before it: in the period's revenue, not its searches'
    conversion("b5", "u1", "p1", subtype="purchase", value=7.0, currency="EUR", search_id="s0"),
]
# fmt: on


@pytest.fixture
def filled(store: EventStore) -> EventStore:
    store.append_sync(EVENTS)
    return store


def read(store: EventStore, **query: object) -> Overview:
    return overview(store, Period(7, **query))  # type: ignore[arg-type]


def test_conversion_rate_and_revenue_per_search_in_the_currency_of_most_purchases(
    filled: EventStore,
) -> None:
    answer = read(filled)
    assert answer.currency == "EUR"  # 4 purchases in EUR, 1 in JPY
    t = answer.totals
    assert (t.searches, t.converted_searches) == (6, 3)  # s1, s3, s4
    assert t.conversion_rate == 0.5
    assert t.revenue == 65.0  # b1 + b2: b4 has no search, b5's is before the period
    assert t.revenue_per_search == pytest.approx(65 / 6)
    a, b = answer.by_variant["search_v1"], answer.by_variant["search_v2"]
    assert (a.searches, a.converted_searches, a.revenue) == (3, 1, 40.0)
    assert a.conversion_rate == pytest.approx(1 / 3)
    assert a.revenue_per_search == pytest.approx(40 / 3)
    assert (b.searches, b.converted_searches, b.revenue) == (3, 2, 25.0)
    assert b.revenue_per_search == pytest.approx(25 / 3)
    # Every existing figure is as before conversions existed.
    assert (t.clicks, t.clicked_searches, t.search_ctr) == (8, 5, pytest.approx(5 / 6))


def test_the_currency_asked_for(filled: EventStore) -> None:
    answer = read(filled, currency="JPY")
    assert answer.currency == "JPY"
    assert answer.totals.revenue == 3000.0
    assert answer.totals.revenue_per_search == 500.0
    assert answer.by_variant["search_v2"].revenue_per_search == 1000.0
    assert answer.by_variant["search_v1"].revenue_per_search == 0.0
    # A currency without a purchase: none of its revenue, over every search.
    usd = read(filled, currency="USD")
    assert (usd.currency, usd.totals.revenue, usd.totals.revenue_per_search) == ("USD", 0, 0)
    assert usd.conversions == answer.conversions  # the section covers every currency anyway


def test_the_conversions_per_currency(filled: EventStore) -> None:
    c = read(filled).conversions
    assert c.currencies == ["EUR", "JPY"]
    assert c.totals.model_dump() == {
        "conversions": 6, "add_to_carts": 1, "purchases": 5, "orders": 5, "units": 6,
        "attributed": 5, "unattributed": 1,
    }  # fmt: skip
    assert list(c.by_currency) == ["EUR", "JPY", ""]  # most purchases first; no currency last
    eur = c.by_currency["EUR"]
    assert eur.model_dump() == {
        "conversions": 4, "add_to_carts": 0, "purchases": 4, "orders": 4, "units": 5,
        "attributed": 3, "unattributed": 1, "currency": "EUR",
        "revenue": 87.0,  # every purchase of the period: 40 + 25 + 15 + 7
        "average_order_value": 87 / 4,
        "search_revenue": 65.0,  # those of the period's searches: the figures' revenue
        "revenue_per_search": pytest.approx(65 / 6),
    }  # fmt: skip
    jpy = c.by_currency["JPY"]
    assert (jpy.purchases, jpy.revenue, jpy.search_revenue) == (1, 3000.0, 3000.0)
    assert jpy.revenue_per_search == 500.0 and jpy.average_order_value == 3000.0
    none = c.by_currency[""]
    assert (none.conversions, none.add_to_carts, none.purchases, none.revenue) == (1, 1, 0, 0)
    assert none.revenue_per_search is None and none.average_order_value is None


def test_the_revenue_per_search_of_a_currency_is_the_figures(filled: EventStore) -> None:
    """The section's revenue per search in the overview's currency is the card's, per variant
    too: one number, whichever table it is read in."""
    for currency in ("EUR", "JPY"):
        answer = read(filled, currency=currency)
        section = answer.conversions
        assert section.by_currency[currency].revenue_per_search == pytest.approx(
            answer.totals.revenue_per_search
        )
        for variant, per in section.by_variant.items():
            if currency in per:
                assert per[currency].revenue_per_search == pytest.approx(
                    answer.by_variant[variant].revenue_per_search
                )


def test_the_conversions_per_variant_and_day(filled: EventStore) -> None:
    answer = read(filled)
    c = answer.conversions
    assert {v: list(per) for v, per in c.by_variant.items()} == {
        "search_v1": ["EUR"],  # b1, and b5 through s0 (a search of it before the period)
        "search_v2": ["EUR", "JPY", ""],
    }
    a = c.by_variant["search_v1"]["EUR"]
    assert (a.conversions, a.revenue, a.search_revenue) == (2, 47.0, 40.0)
    assert a.revenue_per_search == pytest.approx(40 / 3)
    b = c.by_variant["search_v2"]
    assert (b["EUR"].revenue, b["EUR"].units, b["JPY"].revenue) == (25.0, 2, 3000.0)
    assert (b[""].add_to_carts, b[""].revenue_per_search) == (1, None)

    days = [d.isoformat() for d in local_days(7, "UTC")]
    today = days.index((NOW - HOUR / 2).date().isoformat())
    eur = c.revenue_by_day["EUR"]
    assert list(c.revenue_by_day) == ["EUR", "JPY"]
    assert [d.isoformat() for d in answer.daily.days] == days
    assert eur.revenue[today] == 87.0 and sum(eur.revenue) == 87.0
    assert eur.by_variant == {"search_v1": [47.0 if i == today else 0.0 for i in range(7)],
                              "search_v2": [25.0 if i == today else 0.0 for i in range(7)]}  # fmt: skip
    assert eur.unattributed[today] == 15.0 and sum(eur.unattributed) == 15.0
    assert c.revenue_by_day["JPY"].by_variant == {"search_v2": [3000.0 if i == today else 0.0 for i in range(7)]}  # fmt: skip


def test_one_variant(filled: EventStore) -> None:
    answer = read(filled, variant="search_v2")
    # search_v2's purchases: one in EUR, one in JPY: the tie goes to the first alphabetically.
    assert answer.currency == "EUR"
    c = answer.conversions
    assert c.totals.conversions == 3 and c.totals.unattributed == 0
    assert list(c.by_variant) == ["search_v2"]
    assert c.by_currency["EUR"].revenue == 25.0
    assert c.by_currency["EUR"].revenue_per_search == pytest.approx(25 / 3)


def test_no_purchase_no_currency(store: EventStore) -> None:
    store.append_sync([search("s1", "u1", "search_v1", "shoes"), click("s1", "u1", "p1")])
    answer = read(store)
    assert answer.currency is None
    assert answer.totals.revenue == 0 and answer.totals.conversion_rate == 0
    c = answer.conversions
    assert (c.currencies, c.by_currency, c.by_variant, c.revenue_by_day) == ([], {}, {}, {})
    assert c.totals.conversions == 0
