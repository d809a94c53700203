"""/analytics/overview and /analytics/queries: the dashboard's numbers over HTTP."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from clickstats.events import utcnow

TOKYO = ZoneInfo("Asia/Tokyo")  # UTC+9 all year: its midnight is 15:00 UTC the day before


def post(client: TestClient, events: list[dict[str, Any]]) -> None:
    response = client.post("/analytics/events", json={"events": events})
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == 0


def search(sid: str, user: str, variant: str, query: str, when: datetime, **fields: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "type": "impression", "search_id": sid, "user_id": user, "variant": variant,
        "query": query, "results_count": 10, "timestamp": when.isoformat(), **fields,
    }  # fmt: skip


def click(sid: str | None, rank: int, when: datetime, product: str, user: str = "u1") -> dict[str, Any]:  # fmt: skip
    return {
        "type": "click", "search_id": sid, "user_id": user, "rank": rank, "product_id": product,
        "timestamp": when.isoformat(),
    }  # fmt: skip


@pytest.fixture
def filled(client: TestClient) -> TestClient:
    now = utcnow()
    # Just after midnight in Tokyo today: today there, but yesterday (15:01) in UTC.
    tokyo_morning = datetime.combine(now.astimezone(TOKYO).date(), time(0, 1), tzinfo=TOKYO)
    hour = now - timedelta(hours=1)
    old = now - timedelta(days=10)
    post(
        client,
        [
            search("s1", "u1", "search_v1", "shoes", hour, response_time_ms=12.0),
            search("s2", "u1", "search_v1", "shoes", hour, response_time_ms=0.5),
            search("s3", "u2", "search_v2", "boots", hour, results_count=0, response_time_ms=3.0),
            search("s4", "u2", "search_v2", "shoes", tokyo_morning, response_time_ms=30.0),
            search("s5", "u3", "search_v2", "hats", old, response_time_ms=300.0),
            click("s1", 2, hour, "p2"),
            click("s1", 5, hour, "p5"),
            click("s4", 1, tokyo_morning, "p2", user="u2"),
            click("s5", 1, old, "p1", user="u3"),
        ],
    )
    return client


def test_overview_totals(filled: TestClient) -> None:
    body = filled.get("/analytics/overview", params={"days": 7}).json()
    totals = body["totals"]
    assert totals["searches"] == 4 and totals["users"] == 2
    assert totals["clicked_searches"] == 2 and totals["search_ctr"] == pytest.approx(0.5)
    assert totals["clicks"] == 3 and totals["avg_click_position"] == pytest.approx(8 / 3)
    # per variant, clicks count with the search they cite (these clicks carry no variant)
    assert totals["zero_results"] == 1 and totals["zero_result_rate"] == pytest.approx(0.25)
    assert totals["abandonment_rate"] == pytest.approx(1 / 3)  # s2 of s1, s2, s4
    assert body["by_variant"]["search_v1"]["searches"] == 2
    assert body["by_variant"]["search_v2"]["avg_click_position"] == 1.0
    assert body["clicks_by_rank"] == {"1": 1, "2": 1, "5": 1}
    buckets = {b["from_ms"]: b["count"] for b in body["latency_histogram"]}
    assert (buckets[0], buckets[2.5], buckets[10], buckets[25], buckets[250]) == (1, 1, 1, 1, 0)
    assert body["latency_histogram"][-1]["to_ms"] is None


def test_the_period_selector_changes_the_numbers(filled: TestClient) -> None:
    week = filled.get("/analytics/overview", params={"days": 7}).json()
    month = filled.get("/analytics/overview", params={"days": 30}).json()
    assert (week["totals"]["searches"], month["totals"]["searches"]) == (4, 5)
    assert len(week["daily"]["days"]) == 7 and len(month["daily"]["days"]) == 30
    only_v1 = filled.get("/analytics/overview", params={"variant": "search_v1"}).json()
    assert list(only_v1["by_variant"]) == ["search_v1"]
    assert only_v1["totals"]["searches"] == 2


def test_days_are_the_viewers(filled: TestClient) -> None:
    def series(tz: str) -> tuple[list[str], list[int]]:
        body = filled.get("/analytics/overview", params={"days": 3, "tz": tz}).json()
        return body["daily"]["days"], [
            d["searches"] for d in body["daily"]["by_variant"]["search_v2"]
        ]

    tokyo_days, tokyo = series("Asia/Tokyo")
    assert tokyo_days[-1] == utcnow().astimezone(TOKYO).date().isoformat()
    assert tokyo[-1] >= 1  # s4 is today in Tokyo
    utc_days, utc = series("UTC")
    s4_utc_day = (
        datetime.combine(utcnow().astimezone(TOKYO).date(), time(0, 1), tzinfo=TOKYO)
        .astimezone(ZoneInfo("UTC"))
        .date()
        .isoformat()
    )
    assert utc[utc_days.index(s4_utc_day)] >= 1  # and the day before in UTC
    assert sum(tokyo) == sum(utc) == 2  # s3 and s4, each on one day


def test_user_overview(filled: TestClient) -> None:
    body = filled.get("/analytics/overview", params={"user_id": "u1"}).json()
    assert body["user_id"] == "u1"
    assert body["totals"]["searches"] == 2 and body["totals"]["clicked_searches"] == 1


def test_empty_store_has_an_empty_overview(client: TestClient) -> None:
    body = client.get("/analytics/overview", params={"days": 1}).json()
    assert body["totals"]["searches"] == 0 and body["totals"]["search_ctr"] is None
    assert body["by_variant"] == {} and body["clicks_by_rank"] == {}
    assert len(body["daily"]["days"]) == 1
    assert sum(b["count"] for b in body["latency_histogram"]) == 0


@pytest.mark.parametrize(
    ("params", "field", "problem"),
    [
        ({"tz": "Mars/Olympus"}, "tz", "unknown time zone"),
        ({"tz": "../etc/passwd"}, "tz", "unknown time zone"),
        ({"days": 0}, "days", "greater than or equal to 1"),
        ({"days": 366}, "days", "less than or equal to 365"),
        ({"currency": "eur"}, "currency", "should match pattern '^[A-Z]{3}$'"),
        ({"currency": "ABC"}, "currency", "must be an ISO 4217 currency code"),
    ],
)
def test_bad_parameters_are_named(
    client: TestClient, params: dict[str, Any], field: str, problem: str
) -> None:
    response = client.get("/analytics/overview", params=params)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", field] and problem in error["msg"]


def test_the_queries_name_a_bad_currency(client: TestClient) -> None:
    for currency in ("EURO", "usd", "ABC"):
        response = client.get("/analytics/queries", params={"currency": currency})
        assert response.status_code == 422
        (error,) = response.json()["detail"]
        assert error["loc"] == ["query", "currency"]


def test_queries(filled: TestClient) -> None:
    body = filled.get("/analytics/queries", params={"days": 7, "limit": 5}).json()
    top = body["top_queries"]
    assert [(q["query"], q["searches"]) for q in top] == [("shoes", 3), ("boots", 1)]
    shoes = top[0]
    assert shoes["clicked_searches"] == 2 and shoes["search_ctr"] == pytest.approx(2 / 3)
    assert shoes["avg_click_position"] == pytest.approx(8 / 3) and shoes["no_click_searches"] == 1
    assert [q["query"] for q in body["zero_result_queries"]] == ["boots"]
    assert [q["query"] for q in body["no_click_queries"]] == ["shoes"]
    products = body["top_products"]
    assert products[0] == {"product_id": "p2", "clicks": 2, "users": 2, "avg_click_position": 1.5}
    month = filled.get("/analytics/queries", params={"days": 30}).json()
    assert {q["query"] for q in month["top_queries"]} == {"shoes", "boots", "hats"}
    assert filled.get("/analytics/queries", params={"limit": 101}).status_code == 422


def test_clicks_per_search_is_clicks_over_searches_beside_search_ctr(filled: TestClient) -> None:
    """Two metrics, two names: search CTR is the share of searches with a click, clicks per
    search the clicks over the searches (u1's s1 has two clicks: 1 of 2 searches, 2 clicks)."""
    answer = filled.get("/analytics/overview", params={"days": 7, "user_id": "u1"}).json()
    totals = answer["totals"]
    assert (totals["searches"], totals["clicked_searches"], totals["clicks"]) == (2, 1, 2)
    assert totals["search_ctr"] == 0.5
    assert totals["clicks_per_search"] == 1.0
    assert answer["by_variant"]["search_v1"]["clicks_per_search"] == 1.0
    schema = filled.get("/openapi.json").json()["components"]["schemas"]["Figures"]["properties"]
    assert schema["search_ctr"]["description"].startswith("search CTR: ")
    assert schema["clicks_per_search"]["description"].startswith("clicks per search: clicks / ")


def purchase(user: str, product: str, value: float, currency: str, **fields: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "type": "conversion", "subtype": "purchase", "user_id": user, "product_ids": [product],
        "value": value, "currency": currency, "timestamp": utcnow().isoformat(), **fields,
    }  # fmt: skip


def test_revenue_in_the_currency_asked_for(filled: TestClient) -> None:
    """Purchases in two currencies: the overview and the queries are in the currency of most
    purchases unless another is asked for, and say which; the section has both."""
    post(
        filled,
        [
            purchase("u1", "p2", 40.0, "EUR"),  # s1, by its click on p2
            purchase("u1", "p5", 20.0, "EUR"),  # s1 too
            purchase("u2", "p2", 900.0, "JPY", search_id="s4"),
        ],
    )
    body = filled.get("/analytics/overview", params={"days": 7}).json()
    assert body["currency"] == "EUR"
    totals = body["totals"]
    assert (totals["searches"], totals["converted_searches"], totals["revenue"]) == (4, 2, 60.0)
    assert (totals["conversion_rate"], totals["revenue_per_search"]) == (0.5, 15.0)
    section = body["conversions"]
    assert section["currencies"] == ["EUR", "JPY"]
    assert {c: f["revenue"] for c, f in section["by_currency"].items()} == {
        "EUR": 60.0, "JPY": 900.0,
    }  # fmt: skip
    assert section["by_variant"]["search_v2"]["JPY"]["revenue_per_search"] == 450.0
    yen = filled.get("/analytics/overview", params={"days": 7, "currency": "JPY"}).json()
    assert yen["currency"] == "JPY" and yen["totals"]["revenue_per_search"] == 225.0
    assert yen["totals"]["search_ctr"] == totals["search_ctr"]  # only revenue changes

    queries = filled.get("/analytics/queries", params={"days": 7}).json()
    assert queries["currency"] == "EUR"
    assert [(q["query"], q["revenue"]) for q in queries["revenue_queries"]] == [("shoes", 60.0)]
    assert [(q["query"], q["unconverted_clicks"]) for q in queries["unconverted_queries"]] == []
    yen_queries = filled.get("/analytics/queries", params={"currency": "JPY"}).json()
    assert [(q["query"], q["revenue"]) for q in yen_queries["revenue_queries"]] == [
        ("shoes", 900.0)
    ]
    schema = filled.get("/openapi.json").json()["components"]["schemas"]
    assert schema["Figures"]["properties"]["revenue_per_search"]["description"].startswith(
        "revenue per search: "
    )
    assert "ConversionFigures" in schema and "RevenueSeries" in schema


def test_other_actions_are_counted_by_name_in_the_overview(filled: TestClient) -> None:
    now = utcnow()
    view = {"name": "view", "user_id": "u1", "product_ids": ["p2", "p5"], "search_id": "s1"}
    first = filled.post("/analytics/log-action", json=view)
    assert first.status_code == 200, first.text
    again = filled.post(
        "/analytics/log-action", json={**view, "event_id": first.json()["event_id"]}
    )
    assert again.json()["duplicate"] is True
    post(
        filled,
        [
            {"type": "action", "name": "view", "user_id": "u2", "product_ids": ["p2"]},
            {"type": "action", "name": "share", "user_id": "u2", "search_id": "s4",
             "timestamp": now.isoformat()},
            {"type": "action", "name": "view", "user_id": "u3", "product_ids": ["p9"],
             "timestamp": (now - timedelta(days=10)).isoformat()},
        ],
    )  # fmt: skip
    week = filled.get("/analytics/overview", params={"days": 7}).json()
    assert week["actions"] == [
        {"name": "view", "events": 2, "users": 2, "products": 2},
        {"name": "share", "events": 1, "users": 1, "products": 0},
    ]
    v2 = filled.get("/analytics/overview", params={"days": 7, "variant": "search_v2"}).json()
    assert v2["actions"] == [{"name": "share", "events": 1, "users": 1, "products": 0}]
    bad = filled.post("/analytics/log-action", json={"name": "", "position": 0})
    assert bad.status_code == 422
    fields = {tuple(e["loc"][1:]) for e in bad.json()["detail"]}
    assert fields == {("name",), ("position",)}
    assert (
        filled.get("/analytics/overview", params={"days": 7}).json()["actions"] == week["actions"]
    )


def test_a_search_whose_result_count_is_unknown_is_no_zero_result_search(
    client: TestClient,
) -> None:
    hour = utcnow() - timedelta(hours=1)
    post(
        client,
        [
            search("k1", "u1", "v", "tv", hour, results_count=None),  # e.g. UBI without hit ids
            search("k2", "u1", "v", "tv", hour, results_count=0),
            search("k3", "u2", "v", "tv", hour, results=["p1", "p2"]),
            click("k1", 1, hour, "p1"),
        ],
    )
    totals = client.get("/analytics/overview").json()["totals"]
    assert (totals["searches"], totals["zero_results"], totals["clicked_searches"]) == (3, 1, 1)
    # one of the two searches whose count is known found nothing; of those known to have
    # results (k3), one in one was abandoned
    assert (totals["zero_result_rate"], totals["abandonment_rate"]) == (0.5, 1.0)
    assert client.get("/analytics/user/u1").json()["impressions"] == 2
