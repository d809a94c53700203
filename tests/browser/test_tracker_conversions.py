"""Conversions from the tracker in real headless Chromium: an add to cart and a purchase after a
click on a search result, sent by a shop on another origin with an ingest key and stored once
each with the search the click came from; and what the tracker sends, without a server."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Request, Route

from clickstats.events import ConversionEvent, parse_events
from clickstats.store import open_store
from tests.browser.conftest import Tab
from tests.browser.origins import Keyed, SecondOrigin
from tests.browser.test_cross_origin import console_log, open_shop, read, tracker_on
from tests.browser.test_demo import wait_for
from tests.conftest import LiveServer

TRACKER_DOC = (Path(__file__).resolve().parents[2] / "docs" / "TRACKER.md").read_text()


def stored_conversions(server: LiveServer) -> list[dict[str, Any]]:
    """The conversions the server stored, read from its store once it is stopped (no endpoint
    returns a stored event itself), as `clickstats export` writes them."""
    server.stop()
    store = open_store(f"duckdb://{server.store_path}")
    store.open()
    try:
        return [row for rows in store.export() for row in rows if row["type"] == "conversion"]
    finally:
        store.close()


def value(prices: list[float], quantities: list[int], discounts: list[float]) -> float:
    return round(
        math.fsum((p - d) * q for p, q, d in zip(prices, quantities, discounts, strict=True)), 6
    )


def test_a_shop_sends_an_add_to_cart_and_a_purchase_after_a_click_each_stored_once(
    tab: Tab, keyed: Keyed, second_origin: SecondOrigin
) -> None:
    """The shop is on another origin and sends with an ingest key; the click on the results page
    leads to the product page, where the product goes into the cart and is bought."""
    page, server = tab.page, keyed.server
    messages = console_log(tab)
    open_shop(second_origin, keyed, tab)
    user_id: str = page.evaluate("clickstats.userId")
    with page.expect_response(f"{server.url}/search/text") as searched:
        page.click("#search button")
    search = searched.value.json()
    clicked, shown = search["results"][1], search["results"][0]
    page.locator('#results a[data-rank="2"]').click()  # leaves by beacon
    page.wait_for_url("**/product.html*")
    wait_for(
        lambda: read(keyed, "/analytics/rank-metrics", user_id=user_id)["total_clicks"] == 1,
        "the beacon's click",
    )
    (click,) = page.evaluate("clickstats.pending()")  # a beacon is never answered

    # The first batch is stored, but its answer never reaches the page.
    events = f"{server.url}/analytics/events"
    lost: list[dict[str, Any]] = []

    def store_then_drop_the_answer(route: Route, request: Request) -> None:
        lost.append(request.post_data_json)
        route.fetch()
        route.abort("connectionreset")

    page.route(events, store_then_drop_the_answer, times=1)
    prices = [clicked["price"], shown["price"]]
    # No searchId: the tracker names the search in which the visitor clicked one of the
    # products, on the page before. The third conversion forgets its currency.
    ids = page.evaluate(
        """([clicked, shown, prices]) => {
          const ids = [
            clickstats.trackAddToCart({productId: clicked, price: prices[0], currency: "EUR"}),
            clickstats.trackPurchase({productIds: [clicked, shown], prices: prices,
              quantities: [2, 1], discounts: [0, 1.5], currency: "EUR"}),
            clickstats.trackPurchase({productId: clicked, price: prices[0]}),
          ];
          return clickstats.flush(true).then(() => ids);
        }""",
        [clicked["product_id"], shown["product_id"], prices],
    )
    cart_id, purchase_id, bad_id = ids
    assert [e["event_id"] for e in lost[0]["events"]] == [click["event_id"], *ids]
    assert len(page.evaluate("clickstats.pending()")) == 4  # unanswered: all still queued

    with page.expect_response(events) as resent:
        assert page.evaluate("clickstats.flush(true)") == 0
    request, answer = resent.value.request, resent.value.json()
    assert request.post_data_json == lost[0]  # the same events, ids and times
    assert request.headers["x-clickstats-key"] == keyed.keys.ingest and "?" not in request.url
    assert "cookie" not in request.headers
    assert [(r["status"], r.get("event_id")) for r in answer["results"]] == [
        ("duplicate", click["event_id"]),
        ("duplicate", cart_id),
        ("duplicate", purchase_id),
        ("rejected", None),
    ]
    assert answer["results"][3]["errors"] == [
        {
            "field": "currency",
            "problem": "Value error, is needed with value or prices (an ISO 4217 code)",
        }
    ]
    rejected = [m for m in messages if "clickstats: event rejected" in m]
    assert len(rejected) == 1 and bad_id in rejected[0], messages
    assert [e for e in tab.errors if "ERR_CONNECTION_RESET" not in e] == []  # but the lost one
    assert not [m for m in messages if "CORS" in m or "Access-Control" in m], messages

    # The purchase is the shop's revenue in the overview (the add to cart is no revenue).
    overview = read(keyed, "/analytics/overview", days=1, currency="EUR")
    eur = overview["conversions"]["by_currency"]["EUR"]
    assert eur["revenue"] == value(prices, [2, 1], [0.0, 1.5])
    assert (eur["purchases"], eur["add_to_carts"], eur["unattributed"]) == (1, 1, 0)
    assert overview["totals"]["conversion_rate"] == 1.0  # the one search converted
    # and the revenue per user of the experiment arm that served the search, once each arm has
    # a user (one more searcher in each, who buys nothing)
    seeds = [
        {"type": "impression", "user_id": f"seed-{v}", "query": "boots", "variant": v}
        for v in ("search_v1", "search_v2")
    ]
    sent = httpx.post(
        f"{server.url}/analytics/events", json={"events": seeds},
        headers={"X-Clickstats-Key": keyed.keys.ingest}, timeout=10,
    )  # fmt: skip
    assert sent.status_code == 200, sent.text
    results = read(keyed, f"/experiments/{search['experiment']}/results", days=1)
    arms = {v["name"]: v for v in results["variants"]}
    assert results["currency"] == "EUR"
    revenue_per_user = arms[search["variant"]]["metrics"]["revenue_per_user"]["estimate"]
    assert revenue_per_user == value(prices, [2, 1], [0.0, 1.5]) / 2

    stored = {row["event_id"]: row for row in stored_conversions(server)}
    assert sorted(stored) == sorted([cart_id, purchase_id])
    cart, purchase = stored[cart_id], stored[purchase_id]
    assert (cart["subtype"], cart["product_ids"], cart["quantities"]) == (
        "add_to_cart", [clicked["product_id"]], None
    )  # fmt: skip
    assert (cart["value"], cart["currency"]) == (clicked["price"], "EUR")
    assert (purchase["subtype"], purchase["product_ids"], purchase["prices"]) == (
        "purchase", [clicked["product_id"], shown["product_id"]], prices
    )  # fmt: skip
    assert (purchase["quantities"], purchase["discounts"]) == ([2, 1], [0.0, 1.5])
    assert purchase["value"] == value(prices, [2, 1], [0.0, 1.5])
    for row in (cart, purchase):
        assert (row["user_id"], row["search_id"]) == (user_id, search["search_id"])


def doc_conversion() -> dict[str, Any]:
    """The conversion TRACKER.md shows the tracker sending."""
    found = [
        json.loads(b) for b in re.findall(r"^```json\n(.*?)^```$", TRACKER_DOC, flags=re.S | re.M)
    ]
    (conversion,) = [b for b in found if b.get("type") == "conversion"]
    return conversion


def test_a_conversion_without_search_id_names_the_last_search_that_led_to_its_products(
    tab: Tab, second_origin: SecondOrigin
) -> None:
    page = tab.page
    tracker_on(tab, second_origin, flushInterval=60_000, attributionWindow=1000)
    sent = page.evaluate(
        """() => {
          clickstats.trackClick({productId: "p1", rank: 1, searchId: "s1"});
          clickstats.trackClick({productId: "p2", rank: 4, searchId: "s2"});
          clickstats.trackClick({productId: "p1", rank: 2});  // no search: not one for p1
          clickstats.trackPurchase({productIds: ["p1", "p2"], prices: ["19.90", 5],
            quantities: [1, 2], currency: "EUR"});
          clickstats.trackAddToCart({productId: "p1", price: 19.9, quantity: 2, discount: 1,
            currency: "EUR"});
          clickstats.trackConversion({productId: "p1", searchId: "given", subtype: "wishlist"});
          clickstats.trackConversion({productIds: ["never-clicked"]});
          clickstats.trackConversion({});
          return clickstats.pending().slice(3);
        }"""
    )
    fields = [
        {k: v for k, v in e.items() if k not in ("event_id", "user_id", "timestamp")} for e in sent
    ]
    assert fields == [
        {"type": "conversion", "subtype": "purchase", "product_ids": ["p1", "p2"],
         "prices": [19.9, 5], "quantities": [1, 2], "currency": "EUR", "search_id": "s2"},
        {"type": "conversion", "subtype": "add_to_cart", "product_ids": ["p1"], "prices": [19.9],
         "quantities": [2], "discounts": [1], "currency": "EUR", "search_id": "s1"},
        {"type": "conversion", "subtype": "wishlist", "product_ids": ["p1"], "search_id": "given"},
        {"type": "conversion", "subtype": "conversion", "product_ids": ["never-clicked"]},
        {"type": "conversion", "subtype": "conversion", "product_ids": []},  # refused by the server
    ]  # fmt: skip
    good, rejected = parse_events(sent, default_user="anonymous")
    assert len(good) == 4 and [r.index for r in rejected] == [4]
    assert set(sent[0]) == set(doc_conversion())  # the docs show what it sends
    assert parse_events([doc_conversion()])[1] == []

    # The example of the docs, as written.
    (example,) = re.findall(r"^```js\n(.*?)^```$", TRACKER_DOC, flags=re.S | re.M)
    page.evaluate(f"() => {{ {example} }}")
    cart, purchase = (
        event for _, event in parse_events(page.evaluate("clickstats.pending()"))[0][-2:]
    )
    assert isinstance(cart, ConversionEvent) and isinstance(purchase, ConversionEvent)
    assert (cart.subtype, cart.value, purchase.subtype, purchase.value) == (
        "add_to_cart", 59.9, "purchase", 74.9
    )  # fmt: skip

    # Past the attribution window a click names no search; a new visitor forgets them all.
    time.sleep(1.1)
    late = page.evaluate("clickstats.trackPurchase({productIds: ['p1', 'p2']})")
    page.evaluate("clickstats.trackClick({productId: 'p3', rank: 1, searchId: 's3'})")
    fresh = page.evaluate("clickstats.trackPurchase({productIds: ['p1', 'p3']})")
    page.evaluate("ClickStats.resetUser()")
    after_reset = page.evaluate("clickstats.trackPurchase({productId: 'p3'})")
    no_product = page.evaluate("clickstats.trackClick({rank: 1})")  # a slip in the shop's code
    by_id = {e["event_id"]: e for e in page.evaluate("clickstats.pending()")}
    assert by_id[no_product]["product_id"] is None  # refused by the server, not "undefined"
    assert "search_id" not in by_id[late]
    assert by_id[fresh]["search_id"] == "s3"
    assert "search_id" not in by_id[after_reset]
