"""The tracker on another site's page, with keys on, in real headless Chromium: CORS, the key in a
header (fetch) and in the URL (sendBeacon), and the retry policy against scripted answers."""

from __future__ import annotations

import json
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import ConsoleMessage, Request

from tests.browser.conftest import Tab
from tests.browser.origins import Answer, Keyed, SecondOrigin
from tests.browser.test_demo import wait_for

#: The tracker as the package ships it, served by the second origin for the tests that need no
#: clickstats server (their endpoint is scripted).
TRACKER = (Path(__file__).resolve().parents[2] / "src/clickstats/web/tracker.js").read_text()
KEY = "cs_ingest_" + "0" * 32
SHOP_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="icon" href="data:,">
<script src="{server}/analytics/tracker.js" data-key="{key}"></script>
<script src="/shop.js" defer></script></head>
<body><form id="search"><input id="q" value="shoes"><button>Search</button></form>
<ol id="results"></ol></body></html>"""
#: The shop's own script: searches the clickstats server (which logs the impression) and tracks
#: a click on a result, whose link leads to the product page of the shop.
SHOP_JS = """var SERVER = %s, KEY = %s;
window.clickstats = ClickStats.init({flushInterval: 60000});
document.getElementById("search").addEventListener("submit", function (e) {
  e.preventDefault();
  fetch(SERVER + "/search/text", {method: "POST", credentials: "omit", body: JSON.stringify({
      query: document.getElementById("q").value, limit: 5}),
    headers: {"Content-Type": "application/json", "X-Clickstats-Key": KEY, "X-User-ID": clickstats.userId}})
    .then(function (r) { return r.json(); })
    .then(function (answer) {
      answer.results.forEach(function (item) {
        var a = document.createElement("a");
        a.href = "/product.html?id=" + encodeURIComponent(item.product_id);
        a.dataset.rank = item.rank;
        a.textContent = item.title;
        a.addEventListener("click", function () {
          clickstats.trackClick({productId: item.product_id, rank: item.rank, searchId: answer.search_id,
            variant: answer.variant, query: answer.query});
        });
        var li = document.createElement("li");
        li.appendChild(a);
        document.getElementById("results").appendChild(li);
      });
    });
});
"""


#: Keeps the URL of each beacon where the next page of the shop (same tab and origin) reads it.
RECORD_BEACONS = """(() => {
  const send = navigator.sendBeacon.bind(navigator);
  navigator.sendBeacon = (url, body) => {
    const sent = JSON.parse(sessionStorage.getItem("beacons") || "[]");
    sessionStorage.setItem("beacons", JSON.stringify(sent.concat([url])));
    return send(url, body);
  };
})();"""


def console_log(tab: Tab) -> list[str]:
    """Every console message of the tab, of any type, from now on."""
    messages: list[str] = []

    def record(message: ConsoleMessage) -> None:
        messages.append(f"{message.type}: {message.text}")

    tab.page.on("console", record)
    return messages


def unexpected(tab: Tab) -> list[str]:
    """The tab's console errors, but for Chromium's line for each answer with an error status
    (what the tests ask for here)."""
    return [e for e in tab.errors if "the server responded with a status of" not in e]


def read(keyed: Keyed, path: str, **params: Any) -> Any:
    r = httpx.get(
        keyed.server.url + path,
        params=params,
        headers={"X-Clickstats-Key": keyed.keys.read},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()


def open_shop(second_origin: SecondOrigin, keyed: Keyed, tab: Tab) -> None:
    server, key = keyed.server.url, keyed.keys.ingest
    second_origin.pages["/shop.html"] = (
        "text/html",
        SHOP_HTML.format(title="shop", server=server, key=key),
    )
    second_origin.pages["/product.html"] = (
        "text/html",
        SHOP_HTML.format(title="product", server=server, key=key),
    )
    second_origin.pages["/shop.js"] = (
        "application/javascript",
        SHOP_JS % (json.dumps(server), json.dumps(key)),
    )
    tab.page.goto(f"{second_origin.url}/shop.html")


def test_a_shop_on_another_origin_sends_its_search_and_click_with_an_ingest_key(
    tab: Tab, keyed: Keyed, second_origin: SecondOrigin
) -> None:
    page, server = tab.page, keyed.server
    page.add_init_script(RECORD_BEACONS)
    messages = console_log(tab)
    to_server: list[Request] = []
    page.context.on(
        "request", lambda r: to_server.append(r) if r.url.startswith(server.url) else None
    )
    # Keys are on: without a key the API answers 401.
    assert httpx.get(f"{server.url}/analytics/ctr", timeout=10).status_code == 401

    open_shop(second_origin, keyed, tab)
    user_id: str = page.evaluate("clickstats.userId")
    # The endpoint is the tracker's own server, found from the script's URL.
    assert page.evaluate("clickstats.endpoint") == f"{server.url}/analytics/events"
    with page.expect_response(f"{server.url}/search/text") as searched:
        page.click("#search button")
    search = searched.value.json()
    assert searched.value.status == 200, search
    assert searched.value.headers["access-control-allow-origin"] == "*"
    second = page.locator('#results a[data-rank="2"]')
    product_id = search["results"][1]["product_id"]
    assert second.get_attribute("href") == f"/product.html?id={product_id}"

    # The click navigates to the product page: the click leaves by sendBeacon (no headers,
    # so the key rides in the URL) and is stored.
    second.click()
    page.wait_for_url("**/product.html*")
    wait_for(
        lambda: read(keyed, "/analytics/rank-metrics", user_id=user_id)["total_clicks"] == 1,
        "the beacon's click",
    )
    # A beacon has no answer: the product page still holds the click and resends it by fetch,
    # with the key in a header; the server knows it already.
    pending = page.evaluate("clickstats.pending()")
    assert [e["product_id"] for e in pending] == [product_id]
    with page.expect_response(f"{server.url}/analytics/events") as resent:
        assert page.evaluate("clickstats.flush(true)") == 0  # the queue drains
    answer = resent.value.json()
    assert resent.value.status == 200
    assert answer["results"] == [
        {"index": 0, "status": "duplicate", "event_id": pending[0]["event_id"]}
    ]
    assert page.evaluate("clickstats.pending().length") == 0

    # Stored exactly once, with the search it came from; read back with a read key.
    ranks = read(keyed, "/analytics/rank-metrics", user_id=user_id)
    assert (ranks["total_clicks"], ranks["clicks_by_rank"]) == (1, {"2": 1})
    ctr = read(keyed, "/analytics/ctr", user_id=user_id, variant=search["variant"])
    assert (ctr["total_impressions"], ctr["total_clicks"]) == (1, 1)

    # How the key travelled: in a header with fetch (never in its URL), in the URL with the
    # beacon; no cookie either way.
    events = [r for r in to_server if r.url.split("?")[0].endswith("/analytics/events")]
    fetched = [r for r in events if r.resource_type == "fetch" and r.method == "POST"]
    assert fetched and all(
        r.headers.get("x-clickstats-key") == keyed.keys.ingest and "?" not in r.url for r in fetched
    )
    assert len(fetched) == 1  # the resend: the stored click came by beacon
    beacons = json.loads(page.evaluate("sessionStorage.getItem('beacons')"))
    assert beacons == [f"{server.url}/analytics/events?key={keyed.keys.ingest}"]
    assert all("cookie" not in r.headers for r in to_server)
    assert tab.errors == []
    assert not [m for m in messages if "CORS" in m or "Access-Control" in m], messages


def test_the_ingest_key_is_refused_from_an_origin_it_does_not_name(
    tab: Tab, keyed: Keyed, second_origin: SecondOrigin
) -> None:
    page, server = tab.page, keyed.server
    warnings = console_log(tab)
    # The same shop page, opened as http://127.0.0.1:<port>: another origin than the key's.
    open_shop(second_origin, keyed, tab)
    page.goto(f"http://127.0.0.1:{second_origin.port}/shop.html")
    page.evaluate("clickstats.trackClick({productId: 'sku-1', rank: 1})")
    with page.expect_response(f"{server.url}/analytics/events") as sent:
        assert page.evaluate("clickstats.flush(true)") == 0  # given up: resending cannot help
    assert sent.value.status == 403
    assert "may be used only from" in sent.value.json()["detail"]
    refused = [w for w in warnings if w.startswith("warning: clickstats: the server refused")]
    assert len(refused) == 1 and "403" in refused[0] and "may be used only from" in refused[0]


def tracker_on(tab: Tab, second_origin: SecondOrigin, **options: Any) -> None:
    """A page of the second origin running the tracker against its scripted endpoint (another
    origin: localhost against 127.0.0.1)."""
    config = {"endpoint": second_origin.events_url, "key": KEY, **options}
    second_origin.pages["/tracker.js"] = ("application/javascript", TRACKER)
    second_origin.pages["/tracker.html"] = (
        "text/html",
        '<!doctype html><title>tracker</title><link rel="icon" href="data:,">'
        '<script src="/tracker.js"></script>'
        f"<script>window.clickstats = ClickStats.init({json.dumps(config)});</script>",
    )
    tab.page.goto(f"{second_origin.url}/tracker.html")


def test_a_4xx_is_given_up_at_once_with_one_warning(tab: Tab, second_origin: SecondOrigin) -> None:
    page = tab.page
    messages = console_log(tab)
    detail = "events[0].product_id: too long"
    second_origin.answers = [Answer(400, body={"detail": detail})] * 2
    tracker_on(tab, second_origin, flushInterval=100, retryBase=100)
    page.evaluate("clickstats.trackClick({productId: 'sku-1', rank: 1})")
    wait_for(lambda: page.evaluate("clickstats.pending().length") == 0, "the event to be dropped")
    page.evaluate("clickstats.trackClick({productId: 'sku-2', rank: 2})")
    wait_for(lambda: len(second_origin.posts()) == 2, "the second click's batch")
    wait_for(lambda: page.evaluate("clickstats.pending().length") == 0, "the event to be dropped")
    time.sleep(0.6)  # six timer ticks, at retryBase: a retry would have come by now
    posts = second_origin.posts()
    assert [len(p.body["events"]) for p in posts] == [1, 1]  # one attempt each, never again
    assert posts[0].headers["X-Clickstats-Key"] == KEY
    assert second_origin.preflights >= 1  # the key header makes it a CORS preflighted request
    refused = [m for m in messages if "refused" in m]
    assert refused == [
        f"warning: clickstats: the server refused events with 400: {detail} (dropped, not retried)"
    ]  # once, not once per batch
    assert unexpected(tab) == []


def test_429_with_retry_after_waits_as_asked_then_sends_again(
    tab: Tab, second_origin: SecondOrigin
) -> None:
    page = tab.page
    second_origin.answers = [Answer(429, {"Retry-After": "2"}, {"detail": "rate limit"})]
    tracker_on(tab, second_origin, flushInterval=100, retryBase=100)
    event_id = page.evaluate("clickstats.trackClick({productId: 'sku-1', rank: 1})")
    wait_for(lambda: len(second_origin.posts()) == 2, "the retry", timeout=10)
    first, retry = second_origin.posts()
    waited = retry.at - first.at
    # retryBase alone would have resent after 0.1 s; Retry-After (read across origins thanks to
    # Access-Control-Expose-Headers) says 2 s.
    assert 1.9 <= waited <= 3.5, waited
    assert [e["event_id"] for e in retry.body["events"]] == [event_id]
    wait_for(lambda: page.evaluate("clickstats.pending().length") == 0, "the queue to drain")
    assert unexpected(tab) == []


def test_5xx_is_retried_with_backoff_then_dropped_after_max_attempts(
    tab: Tab, second_origin: SecondOrigin
) -> None:
    page = tab.page
    messages = console_log(tab)
    second_origin.answers = [Answer(503, body={"detail": "store unavailable"})] * 10
    tracker_on(tab, second_origin, flushInterval=50, retryBase=200, maxAttempts=4)
    page.evaluate("clickstats.trackClick({productId: 'sku-1', rank: 1})")
    wait_for(lambda: page.evaluate("clickstats.pending().length") == 0, "the event to be dropped")
    time.sleep(0.5)
    posts = second_origin.posts()
    assert len(posts) == 4
    gaps = [b.at - a.at for a, b in pairwise(posts)]
    # 200, 400, 800 ms, each up to a 50 ms timer tick late plus the round trip (generous upper
    # bounds: two cores shared by many tests)
    for gap, expected in zip(gaps, [0.2, 0.4, 0.8], strict=True):
        assert expected - 0.02 <= gap <= expected + 0.6, gaps
    assert "warning: clickstats: dropped 1 event(s) after 4 failed sends" in messages
    assert unexpected(tab) == []
