"""A purchase sent by the Python client to a running server reaches the overview's revenue and
the experiment's results (the tracker.js side: tests/browser/test_tracker_conversions.py)."""

from __future__ import annotations

import httpx
import pytest

from clickstats.client import ClickStatsClient
from tests.conftest import LiveServer

EXPERIMENT = {
    "name": "ranking",
    "variants": {"search_v1": 1, "search_v2": 1},
    "primary_metric": "revenue_per_user",
    "caps": {"revenue": None},  # every amount as sent: the figures below are exact
}


def test_a_purchase_from_the_python_client_reaches_overview_and_experiment(
    live_server: LiveServer,
) -> None:
    with httpx.Client(base_url=live_server.url, timeout=20) as http:
        assert http.post("/experiments", json=EXPERIMENT).status_code in (200, 201)
        revenue: dict[str, float] = {"search_v1": 0.0, "search_v2": 0.0}
        users: dict[str, int] = {"search_v1": 0, "search_v2": 0}
        with ClickStatsClient(live_server.url) as stats:
            for n in range(12):
                user = f"shopper-{n}"
                variant = http.get("/experiments/ranking/assign", params={"user_id": user}).json()[
                    "variant"
                ]
                users[variant] += 1
                search = stats.log_impression(
                    user_id=user, query="boots", variant=variant, results=["b1", "b2", "b3"]
                )
                stats.log_click(user_id=user, search_id=search.search_id, product_id="b2", rank=2)
                if (
                    n % 3
                ):  # two users in three buy, without naming the search: attributed by the click
                    bought = stats.log_conversion(
                        user_id=user, subtype="purchase", product_ids=["b2"], prices=[10.0 + n],
                        quantities=[1 + n % 2], currency="EUR",
                    )  # fmt: skip
                    revenue[variant] += bought.value or 0.0
            stats.log_conversion(  # another currency: never added to the euros
                user_id="shopper-1", subtype="purchase", product_ids=["b2"], value=900.0,
                currency="JPY",
            )  # fmt: skip
            assert stats.flush().rejected == []

        overview = http.get("/analytics/overview", params={"currency": "EUR"}).json()
        eur = overview["conversions"]["by_currency"]["EUR"]
        assert eur["revenue"] == pytest.approx(sum(revenue.values()), rel=1e-12)
        assert eur["purchases"] == 8 and eur["unattributed"] == 0
        assert overview["conversions"]["by_currency"]["JPY"]["revenue"] == 900.0
        assert overview["totals"]["revenue_per_search"] == pytest.approx(
            sum(revenue.values()) / 12, rel=1e-12
        )
        for variant, figures in overview["conversions"]["by_variant"].items():
            assert figures["EUR"]["revenue"] == pytest.approx(revenue[variant], rel=1e-12)

        results = http.get("/experiments/ranking/results").json()  # its currency: most purchases
        assert results["currency"] == "EUR" and results["primary_metric"] == "revenue_per_user"
        for variant in results["variants"]:
            got = variant["metrics"]["revenue_per_user"]["estimate"]
            name = variant["name"]
            assert got == pytest.approx(revenue[name] / users[name], rel=1e-12), name
