"""Algolia's own client, search-insights (the npm package's UMD build, installed by `make
node-deps`), in real headless Chromium on a shop of another origin, pointed at clickstats by
`init`'s `host`, with an ingest key as its apiKey: a click, a conversion, an add to cart, a
purchase and a view, each reported once, sent by sendBeacon and by the XHR fallback."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Request

from tests.browser.conftest import Tab
from tests.browser.origins import Keyed, SecondOrigin
from tests.browser.test_cross_origin import read
from tests.browser.test_demo import wait_for

VERSION = "2.17.3"  # the Makefile's SEARCH_INSIGHTS_VERSION
UMD = (
    Path(sys.prefix)  # the venv, where `make node-deps` installs it
    / f"npm/search-insights-{VERSION}/node_modules/search-insights/dist/search-insights.min.js"
)

#: The shop's page: the UMD build as a script (after removing sendBeacon, for the XHR path: the
#: client picks its transport when it loads), and `aa` as Algolia's functional interface.
PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>shop</title>
<link rel="icon" href="data:,"></head><body>
<script>%s</script>
<script src="/search-insights.min.js"></script>
<script>
var insights = window.AlgoliaAnalytics.default;
window.aa = function (method) {
  return insights[method].apply(insights, [].slice.call(arguments, 1));
};
</script></body></html>"""
#: Each method once, as Algolia's docs show them; the answers: true when sent (beacon: queued;
#: XHR: answered exactly 200).
SEND = """async ({host, apiKey, queryID, userToken}) => {
  aa('init', {appId: 'SHOP', apiKey: apiKey, host: host, userToken: userToken});
  const index = 'products';
  return Promise.all([
    aa('clickedObjectIDsAfterSearch', {eventName: 'Product Clicked', index, queryID,
      objectIDs: ['a', 'b'], positions: [1, 2]}),
    aa('convertedObjectIDsAfterSearch', {eventName: 'Product Converted', index, queryID,
      objectIDs: ['a']}),
    aa('addedToCartObjectIDsAfterSearch', {eventName: 'Added To Cart', index, queryID,
      objectIDs: ['a'], objectData: [{price: 9.99, quantity: 2}], value: 19.98,
      currency: 'USD'}),
    aa('purchasedObjectIDsAfterSearch', {eventName: 'Purchased', index,
      objectIDs: ['a', 'b'], objectData: [{queryID, price: '9.99', discount: 0, quantity: 1},
      {queryID, price: 5, discount: 1, quantity: 2}], value: 17.99, currency: 'USD'}),
    aa('viewedObjectIDs', {eventName: 'Product Viewed', index, objectIDs: ['a', 'b', 'c']}),
  ]);
}"""


def umd() -> str:
    # A failure, not a skip: `make test` installs it (node-deps), so a missing file is a bug.
    if not UMD.exists():
        pytest.fail(f"{UMD} is missing: `make node-deps` installs search-insights@{VERSION}")
    text = UMD.read_text()
    assert VERSION in text, f"{UMD} is not search-insights {VERSION}"
    return text


def reported(keyed: Keyed, user: str) -> dict[str, Any]:
    """What the reports say of one visitor's events."""
    overview = read(keyed, "/analytics/overview", user_id=user)
    conversions = overview["conversions"]
    actions = {a["name"]: a for a in overview["actions"]}
    return {
        "clicks": overview["totals"]["clicks"],
        "clicked_searches": overview["totals"]["clicked_searches"],
        "clicks_by_rank": overview["clicks_by_rank"],
        "ctr_clicks": read(keyed, "/analytics/ctr", user_id=user)["total_clicks"],
        "conversions": conversions["totals"]["conversions"],
        "add_to_carts": conversions["totals"]["add_to_carts"],
        "purchases": conversions["totals"]["purchases"],
        "attributed": conversions["totals"]["attributed"],
        "revenue": conversions["by_currency"].get("USD", {}).get("revenue"),
        "views": {k: actions["view"][k] for k in ("events", "users", "products")}
        if "view" in actions
        else None,
    }


EXPECTED = {
    "clicks": 2,
    "clicked_searches": 1,  # the impression with the queryID as its search_id
    "clicks_by_rank": {"1": 1, "2": 1},
    "ctr_clicks": 2,
    "conversions": 3,
    "add_to_carts": 1,
    "purchases": 1,
    "attributed": 3,
    "revenue": 17.99,
    "views": {"events": 1, "users": 1, "products": 3},
}


def send_from_the_shop(
    tab: Tab, transport: str, keyed: Keyed, shop: SecondOrigin, user: str
) -> None:
    """A visitor's page on the shop sends each method once; checks what went on the wire."""
    page, server = tab.page, keyed.server
    query_id = hashlib.md5(user.encode()).hexdigest()  # 32 hex digits, as Algolia's
    impression = {"query": "phone", "search_id": query_id, "results": ["a", "b", "c"],
                  "user_id": user}  # fmt: skip
    answer = httpx.post(
        f"{server.url}/analytics/log-impression",
        json=impression,
        headers={"X-Clickstats-Key": keyed.keys.ingest},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text

    prelude = "delete Navigator.prototype.sendBeacon;" if transport == "xhr" else ""
    shop.pages[f"/{transport}.html"] = ("text/html", PAGE % prelude)
    sent: list[Request] = []
    page.context.on("request", lambda r: sent.append(r) if "/1/events" in r.url else None)
    page.goto(f"{shop.url}/{transport}.html")
    answers = page.evaluate(
        SEND,
        {"host": server.url, "apiKey": keyed.keys.ingest, "queryID": query_id, "userToken": user},
    )
    assert answers == [True] * 5  # by XHR: each answered exactly 200
    wait_for(lambda: len(sent) == 5, "five requests")
    assert {r.resource_type for r in sent} == {"ping" if transport == "beacon" else "xhr"}
    content_type = "text/plain;charset=UTF-8" if transport == "beacon" else "application/json"
    assert {r.headers["content-type"] for r in sent} == {content_type}
    # the key travels in the query string, as search-insights sends it
    assert all(r.url.startswith(f"{server.url}/1/events?") for r in sent)
    assert all(f"X-Algolia-API-Key={keyed.keys.ingest}" in r.url for r in sent)
    assert tab.errors == []


def test_each_search_insights_method_is_reported_once_by_beacon_and_by_xhr(
    browser: Browser, tab: Tab, keyed: Keyed, second_origin: SecondOrigin
) -> None:
    """The shop (localhost) is another origin than the server (127.0.0.1): each XHR is
    preceded by a CORS preflight; a beacon is sent without one."""
    second_origin.pages["/search-insights.min.js"] = ("application/javascript", umd())
    send_from_the_shop(tab, "beacon", keyed, second_origin, "visitor-beacon")
    context = browser.new_context()
    try:
        xhr_tab = Tab(context.new_page())
        send_from_the_shop(xhr_tab, "xhr", keyed, second_origin, "visitor-xhr")
    finally:
        context.close()
    users = ("visitor-beacon", "visitor-xhr")
    wait_for(lambda: all(reported(keyed, u) == EXPECTED for u in users), "the events of both")
    time.sleep(0.3)  # and nothing arrives twice
    assert [reported(keyed, u) for u in users] == [EXPECTED, EXPECTED]
