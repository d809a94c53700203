"""The queries tables of revenue on every backend: the queries that earn the most (in the
overview's currency) and those whose clicks led to no conversion, with fixed expected values
(the traffic of test_overview_conversions.py)."""

from __future__ import annotations

import pytest

from clickstats.events import ConversionEvent
from clickstats.reports.overview import Period
from clickstats.reports.queries import QueriesQuery, QueriesReport, queries
from clickstats.store import EventStore
from tests.reports.test_overview_conversions import EVENTS


@pytest.fixture
def filled(store: EventStore) -> EventStore:
    store.append_sync(EVENTS)
    return store


def read(store: EventStore, currency: str | None = None, limit: int = 20) -> QueriesReport:
    return queries(store, QueriesQuery(Period(7, currency=currency), limit))


def test_top_queries_by_revenue(filled: EventStore) -> None:
    report = read(filled)
    assert report.currency == "EUR"  # the overview's: most purchases
    assert [(q.query, q.revenue) for q in report.revenue_queries] == [
        ("shoes", 40.0),  # s1's purchase by its click
        ("boots", 25.0),  # s3's by its search_id
    ]  # hats: no revenue, left out
    shoes = report.revenue_queries[0]
    assert (shoes.searches, shoes.converted_searches) == (4, 2)  # s1 s2 s4 s6: s1, s4
    assert shoes.conversion_rate == 0.5 and shoes.revenue_per_search == 10.0
    jpy = read(filled, currency="JPY")
    assert [(q.query, q.revenue) for q in jpy.revenue_queries] == [("boots", 3000.0)]
    assert jpy.revenue_queries[0].revenue_per_search == 3000.0
    assert read(filled, currency="USD").revenue_queries == []


def test_queries_with_clicks_and_no_conversion(filled: EventStore) -> None:
    report = read(filled)
    rows = [(q.query, q.clicks, q.unconverted_clicks, q.converted_searches)
            for q in report.unconverted_queries]  # fmt: skip
    # shoes: s6's three clicks, not s1's or s4's (their searches converted); hats: s5's click
    # (its user bought a product never clicked); boots: converted, left out.
    assert rows == [("shoes", 6, 3, 2), ("hats", 1, 1, 0)]
    assert report.unconverted_queries[1].conversion_rate == 0.0
    assert [q.query for q in read(filled, limit=1).unconverted_queries] == ["shoes"]


def test_the_existing_tables_are_unchanged(filled: EventStore) -> None:
    report = read(filled)
    assert [(q.query, q.searches) for q in report.top_queries] == [
        ("shoes", 4), ("boots", 1), ("hats", 1),
    ]  # fmt: skip
    assert [q.query for q in report.no_click_queries] == ["shoes"]  # s2
    assert report.top_queries[0].revenue == 40.0  # every table's figures carry the revenue


def test_no_purchase_no_revenue_table(store: EventStore) -> None:
    store.append_sync([e for e in EVENTS if not isinstance(e, ConversionEvent)])
    report = read(store)
    assert report.currency is None and report.revenue_queries == []
    assert [(q.query, q.unconverted_clicks) for q in report.unconverted_queries] == [
        ("shoes", 6), ("boots", 1), ("hats", 1),
    ]  # fmt: skip
