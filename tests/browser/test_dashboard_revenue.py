"""Conversions and revenue on the dashboard, in real headless Chromium against `clickstats
serve`: purchases in two currencies (and an add to cart without one, and a purchase attributed to
no search) show as the overview's cards, revenue chart and tables, the queries' revenue and
unconverted tables, and the experiment's revenue metrics, each with the figures worked out by
hand below, in one currency at a time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from clickstats.events import utcnow
from tests.browser.conftest import ARTIFACTS, Tab
from tests.browser.test_dashboard import get, kpi, open_page, wait_ready
from tests.conftest import LiveServer

NBSP = "\u00a0"
NONE = "\u2013"  # an en dash: no value


def eur(x: float, currency: str = "EUR") -> str:
    """How the page writes an amount: two decimals, then the code (on the same line)."""
    return f"{x:,.2f}{NBSP}{currency}"


def events() -> list[dict[str, Any]]:
    """Three searches per variant in the last hour, their clicks, and the conversions:

    - u1 buys p1 (clicked in s1, search_v1): 40 EUR; u2 adds p2 to a cart (s2): no currency;
    - u4 buys p1 for s4 (search_v2, by its search_id): 60 EUR;
    - u5 buys 3 units of p5 (clicked in s5, search_v2): 30 EUR, and for s5 again 25 USD;
    - u6 buys p99, never clicked: 10 EUR, attributed to no search.
    s3 (two clicks) and s6 (one) lead to nothing."""
    at = (utcnow() - timedelta(hours=1)).isoformat()
    later = (utcnow() - timedelta(minutes=30)).isoformat()
    out: list[dict[str, Any]] = []
    for n, (variant, user, query) in enumerate([
        ("search_v1", "u1", "shoes"), ("search_v1", "u2", "boots"), ("search_v1", "u3", "shoes"),
        ("search_v2", "u4", "shoes"), ("search_v2", "u5", "hats"), ("search_v2", "u6", "hats"),
    ], start=1):  # fmt: skip
        out.append({"type": "impression", "search_id": f"s{n}", "user_id": user,
                    "variant": variant, "query": query, "results_count": 10, "timestamp": at})  # fmt: skip
    for sid, user, product in [("s1", "u1", "p1"), ("s2", "u2", "p2"), ("s3", "u3", "p3"),
                               ("s3", "u3", "p4"), ("s4", "u4", "p1"), ("s5", "u5", "p5"),
                               ("s6", "u6", "p6")]:  # fmt: skip
        out.append({"type": "click", "search_id": sid, "user_id": user, "product_id": product,
                    "rank": 1, "timestamp": at})  # fmt: skip

    def conversion(user: str, product: str, subtype: str = "purchase", **fields: Any) -> None:
        out.append({"type": "conversion", "subtype": subtype, "user_id": user,
                    "product_ids": [product], "timestamp": later, **fields})  # fmt: skip

    conversion("u1", "p1", value=40.0, currency="EUR")
    conversion("u2", "p2", subtype="add_to_cart")
    conversion("u4", "p1", value=60.0, currency="EUR", search_id="s4")
    conversion("u5", "p5", value=30.0, currency="EUR", quantities=[3])
    conversion("u5", "p5", value=25.0, currency="USD", search_id="s5")
    conversion("u6", "p99", value=10.0, currency="EUR")
    return out


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp: Path = tmp_path_factory.mktemp("revenue")
    server = LiveServer(tmp / "revenue.duckdb").start()
    response = httpx.post(f"{server.url}/analytics/events", json={"events": events()}, timeout=30)
    assert response.status_code == 200 and response.json()["rejected"] == 0, response.text
    yield server
    server.stop()


def rows(tab: Tab, table: str) -> list[list[str]]:
    body = tab.page.locator(f"#{table} tbody tr")
    return [body.nth(i).locator("td").all_text_contents() for i in range(body.count())]


def chart(tab: Tab, canvas: str) -> dict[str, list[float]]:
    """A chart's datasets: label -> values."""
    sets = tab.page.evaluate(
        f"Chart.getChart(document.getElementById('{canvas}')).data.datasets"
        ".map((d) => [d.label, d.data])"
    )
    return {label: values for label, values in sets}


def screenshot(tab: Tab, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    tab.page.screenshot(path=str(ARTIFACTS / f"dashboard-revenue-{name}.png"), full_page=True)


def test_the_overview_shows_conversions_and_revenue_per_currency(tab: Tab, shop: LiveServer) -> None:  # fmt: skip
    page = tab.page
    outside = open_page(tab, shop, "/?days=7")
    # The cards: 4 of 6 searches converted (s1, s2's add to cart, s4, s5); 130 EUR of purchases
    # attributed to the six searches (u6's 10 EUR to none).
    assert kpi(tab, "searches") == "6"
    assert kpi(tab, "conversion_rate") == "66.7%"
    assert kpi(tab, "revenue_per_search") == eur(130 / 6) == f"21.67{NBSP}EUR"
    assert page.input_value("#currency") == "EUR"  # 4 purchases in EUR, 1 in USD
    assert page.locator("#currency option").all_text_contents() == ["EUR", "USD"]
    assert "in EUR." in (page.text_content(".definitions") or "")
    assert page.text_content("#revenue-heading") == "Revenue per day (EUR), by variant"
    # Revenue per day, stacked by the variant of the purchase's search: today's bars add up to
    # the day's 140 EUR, the grey one is u6's.
    series = chart(tab, "chart-revenue")
    assert {k: sum(v) for k, v in series.items()} == {
        "search_v1": 40.0, "search_v2": 90.0, "no search": 10.0,
    }  # fmt: skip
    answer = get(shop, "/analytics/overview", days=7, tz=page.evaluate("dashboard.timeZone"))
    assert series["search_v2"] == answer["conversions"]["revenue_by_day"]["EUR"]["by_variant"]["search_v2"]  # fmt: skip
    assert page.text_content("#revenue-note") == (
        f"By the day of the purchase: {eur(140)} in 4 purchases in this period, of which "
        f"{eur(10)} attributed to no search (grey)."
    )
    # Per variant, in the same currency as the cards.
    variants = {r[0]: r[-2:] for r in rows(tab, "variants-table")}
    assert variants == {
        "search_v1": ["66.7%", eur(40 / 3)],  # s1, s2 converted; 40 EUR
        "search_v2": ["66.7%", eur(30)],  # s4, s5; 60 + 30 EUR
    }
    # Per currency: every purchase of the period, attributed or not; never EUR + USD.
    assert rows(tab, "currencies-table") == [
        ["EUR", "4", "0", "4", eur(140), eur(35), "6", f"3{NBSP}of{NBSP}4", eur(130), eur(130 / 6)],
        ["USD", "1", "0", "1", eur(25, "USD"), eur(25, "USD"), "1", f"1{NBSP}of{NBSP}1",
         eur(25, "USD"), eur(25 / 6, "USD")],
        ["no currency", "1", "1", "0", NONE, NONE, "0", f"1{NBSP}of{NBSP}1", NONE, NONE],
    ]  # fmt: skip
    assert rows(tab, "variant-currencies-table") == [
        ["search_v1", "EUR", "1", "0", "1", eur(40), eur(40), eur(40), eur(40 / 3)],
        ["search_v1", "no currency", "1", "1", "0", NONE, NONE, NONE, NONE],
        ["search_v2", "EUR", "2", "0", "2", eur(90), eur(45), eur(90), eur(30)],
        ["search_v2", "USD", "1", "0", "1", *[eur(25, "USD")] * 3, eur(25 / 3, "USD")],
    ]
    assert page.locator("#currencies-table tr.chosen td").first.text_content() == "EUR"
    screenshot(tab, "overview")

    # Another currency: every revenue figure of the page is in USD, the counts stay.
    page.select_option("#currency", "USD")
    wait_ready(tab)
    assert "currency=USD" in page.url
    assert kpi(tab, "revenue_per_search") == eur(25 / 6, "USD")
    assert kpi(tab, "conversion_rate") == "66.7%"
    assert {k: sum(v) for k, v in chart(tab, "chart-revenue").items()} == {"search_v2": 25.0}
    assert {r[0]: r[-1] for r in rows(tab, "variants-table")} == {
        "search_v1": eur(0, "USD"), "search_v2": eur(25 / 3, "USD"),
    }  # fmt: skip
    assert page.locator("#currencies-table tr.chosen td").first.text_content() == "USD"

    # One variant: its figures, in the currency of the page.
    page.select_option("#variant", "search_v1")
    wait_ready(tab)
    assert kpi(tab, "revenue_per_search") == eur(0, "USD")
    assert page.text_content("#revenue-heading") == "Revenue per day (USD), by variant"
    assert page.locator("#chart-revenue").count() == 0  # no USD purchase of search_v1: a sentence
    assert "No purchase in USD in this period." in (page.text_content("#view") or "")

    # A user's page: u5 bought in two currencies, each amount on its own line.
    page.goto(f"{shop.url}/dashboard/users/u5?days=7")
    wait_ready(tab)
    assert kpi(tab, "conversion_rate") == "100.0%"  # s5, u5's one search, converted
    assert kpi(tab, "purchases") == "2"
    assert kpi(tab, "revenue") == f"{eur(30)}\n{eur(25, 'USD')}"
    assert tab.errors == [] and outside == []


def test_the_queries_by_revenue_and_without_conversions(tab: Tab, shop: LiveServer) -> None:
    page = tab.page
    outside = open_page(tab, shop, "/dashboard/queries?days=7")
    assert page.input_value("#currency") == "EUR"
    assert page.text_content("#revenue-queries-heading") == "Top queries by revenue (EUR)"
    # shoes: s1's 40 and s4's 60 EUR over its three searches; hats: s5's 30 EUR over two.
    assert rows(tab, "revenue-queries") == [
        ["shoes", "3", "66.7%", eur(100), eur(100 / 3)],
        ["hats", "2", "50.0%", eur(30), eur(15)],
    ]
    # Clicks on searches that converted nothing: s3's two (shoes), s6's one (hats).
    assert rows(tab, "unconverted-queries") == [
        ["shoes", "4", "2", "2", "66.7%"],
        ["hats", "2", "1", "1", "50.0%"],
    ]
    screenshot(tab, "queries")
    page.select_option("#currency", "USD")
    wait_ready(tab)
    assert rows(tab, "revenue-queries") == [
        ["hats", "2", "50.0%", eur(25, "USD"), eur(12.5, "USD")]
    ]
    # The currency goes with the period to the other pages.
    assert page.get_attribute('nav [data-page="overview"]', "href") == "/?days=7&currency=USD"
    assert tab.errors == [] and outside == []


def test_the_experiment_shows_its_revenue_metrics_in_their_currency(
    tab: Tab, shop: LiveServer
) -> None:
    page = tab.page
    outside = open_page(tab, shop, "/dashboard/experiments?experiment=search_ranking&days=7")
    results = get(shop, "/experiments/search_ranking/results", days=7)
    assert results["currency"] == "EUR"
    v1 = next(v for v in results["variants"] if v["name"] == "search_v1")
    for metric in ("revenue_per_search", "revenue_per_user", "average_order_value"):
        cells = page.locator(f'#ab-variants tr[data-metric="{metric}"] td').all_text_contents()
        assert cells[1] == eur(v1["metrics"][metric]["estimate"]), (metric, cells)
        cap = results["adjustments"][metric]["cap"]
        label = page.text_content(f'#ab-variants tr[data-metric="{metric}"] small.adjustment')
        assert label is not None and label.startswith(f"capped at {cap['label']}")
    rate = page.locator('#ab-variants tr[data-metric="conversion_rate"] td').all_text_contents()
    conversion = v1["metrics"]["conversion_rate"]["estimate"]
    assert rate[1] == f"{100 * conversion:.1f}%"
    assert "are in EUR, counting only the purchases in EUR." in (page.text_content("#view") or "")
    screenshot(tab, "experiments")
    assert tab.errors == [] and outside == []
