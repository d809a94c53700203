"""The demo page and the tracker in real headless Chromium, against `clickstats serve`."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import duckdb
import httpx
from playwright.sync_api import Request, Route, expect

from tests.browser.conftest import ARTIFACTS, Tab
from tests.conftest import LiveServer

EVENTS = "**/analytics/events"
#: Counts the page's beacons where the next page (same tab, same origin) can read them.
COUNT_BEACONS = """() => {
  const send = navigator.sendBeacon.bind(navigator);
  navigator.sendBeacon = (url, body) => {
    sessionStorage.setItem("beacons", String(Number(sessionStorage.getItem("beacons")) + 1));
    return send(url, body);
  };
}"""


def wait_for(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def user_clicks(server: LiveServer, user_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(
        f"{server.url}/analytics/rank-metrics", params={"user_id": user_id}, timeout=10
    ).json()
    return answer


def open_demo(tab: Tab, server: LiveServer) -> str:
    """Open /demo and return the visitor's anonymous user id, once the page is set up."""
    tab.page.goto(f"{server.url}/demo")
    # Not wait_for_function: the page's CSP (no 'unsafe-eval') refuses the eval it runs.
    expect(tab.page.locator("#variant")).not_to_have_text("…")
    user_id: str = tab.page.evaluate("clickstats.userId")
    assert user_id.startswith("anon-")
    return user_id


def test_a_click_on_the_third_result_is_stored_with_its_rank_search_and_variant(
    tab: Tab, server: LiveServer
) -> None:
    page = tab.page
    user_id = open_demo(tab, server)
    assigned = page.text_content("#variant")

    page.get_by_label("Search products").fill("shoes")
    with page.expect_response("**/search/text") as searched:
        page.get_by_role("button", name="Search", exact=True).click()
    search = searched.value.json()
    assert searched.value.status == 200 and len(search["results"]) >= 3
    assert search["variant"] == assigned  # the page showed the variant the search used
    third = page.locator('#results [data-rank="3"]')
    assert third.get_attribute("data-product-id") == search["results"][2]["product_id"]

    with page.expect_response(EVENTS) as sent:
        third.click()
    batch = sent.value.json()
    sent_event = sent.value.request.post_data_json["events"][0]
    assert sent.value.status == 200 and batch["accepted"] == 1, batch

    # The figures are read through the API, as a person would read them.
    wait_for(lambda: user_clicks(server, user_id)["total_clicks"] == 1, "the click")
    assert user_clicks(server, user_id)["clicks_by_rank"] == {"3": 1}
    ctr = httpx.get(
        f"{server.url}/analytics/ctr",
        params={"user_id": user_id, "variant": search["variant"]},
        timeout=10,
    ).json()
    assert (ctr["total_clicks"], ctr["total_impressions"]) == (1, 1)
    comparison = httpx.get(f"{server.url}/analytics/variants-comparison", timeout=10).json()
    assert comparison["variants"][search["variant"]]["clicks"] == 1
    # ... and the page's own panel shows them.
    page.wait_for_selector("#me[data-clicks='1']", state="attached")
    assert (
        page.text_content("#me") == "1 click on 1 search: search CTR 100.0%, 1.00 clicks per search"
    )
    row = page.locator(f'#variants tr[data-variant="{search["variant"]}"] td')
    assert row.all_text_contents()[1:3] == ["1", "1"]  # searches, clicks
    assert page.get_attribute('#results [data-rank="3"]', "aria-pressed") == "true"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-click.png"), full_page=True)
    assert tab.errors == []

    # No endpoint returns a stored click itself: read it from the store once the server is down.
    server.stop()
    with duckdb.connect(str(server.store_path), read_only=True) as db:
        stored = db.execute(
            "SELECT event_id, user_id, product_id, rank, search_id, variant, search_query "
            "FROM click_events"
        ).fetchall()
    assert stored == [
        (
            sent_event["event_id"],
            user_id,
            search["results"][2]["product_id"],
            3,
            search["search_id"],
            search["variant"],
            "shoes",
        )
    ]


def tracker_page(tab: Tab, server: LiveServer, **options: Any) -> str:
    """A bare page on the server's origin that runs the tracker with `options`; its user id."""
    html = (
        '<!doctype html><title>tracker</title><link rel="icon" href="data:,">'
        '<script src="/analytics/tracker.js"></script>'
        f"<script>window.clickstats = ClickStats.init({json.dumps(options)});</script>"
    )
    tab.page.route(
        f"{server.url}/tracker-test",
        lambda route: route.fulfill(body=html, content_type="text/html"),
    )
    tab.page.goto(f"{server.url}/tracker-test")
    user_id: str = tab.page.evaluate("clickstats.userId")
    return user_id


def test_a_lost_answer_is_retried_with_the_same_event_id_and_counted_once(
    tab: Tab, server: LiveServer
) -> None:
    page = tab.page
    user_id = tracker_page(tab, server, flushInterval=300, retryBase=200)
    sent: list[dict[str, Any]] = []

    def store_then_drop_the_answer(route: Route, request: Request) -> None:
        sent.append(request.post_data_json)
        route.fetch()  # the server stores the batch ...
        route.abort("connectionreset")  # ... and the browser never hears back

    page.route(EVENTS, store_then_drop_the_answer, times=1)
    with page.expect_response(EVENTS) as retried:  # the timer sends, then retries on its own
        event_id = page.evaluate(
            "clickstats.trackClick({productId: 'sku-1', rank: 2, searchId: 's-1', variant: 'search_v1', query: 'tent'})"
        )
    answer = retried.value.json()
    retry = retried.value.request.post_data_json

    assert [e["event_id"] for e in sent[0]["events"]] == [event_id]
    assert retry == sent[0]  # the very same event, id and timestamp included
    assert (answer["accepted"], answer["duplicates"]) == (0, 1)
    assert answer["results"][0] == {"index": 0, "status": "duplicate", "event_id": event_id}
    assert user_clicks(server, user_id)["total_clicks"] == 1
    wait_for(lambda: page.evaluate("clickstats.pending().length") == 0, "the queue to empty")


def test_a_click_before_leaving_the_page_goes_by_beacon_and_stays_queued_until_answered(
    tab: Tab, server: LiveServer
) -> None:
    page = tab.page
    # No timer flush within the test: the beacon is the only way out.
    user_id = tracker_page(tab, server, flushInterval=60_000)
    event_id = page.evaluate(
        "clickstats.trackClick({productId: 'sku-9', rank: 4, searchId: 's-2', variant: 'search_v2', query: 'socks'})"
    )
    page.evaluate(COUNT_BEACONS)
    page.goto(f"{server.url}/health")  # pagehide: the tracker hands the queue to sendBeacon

    wait_for(lambda: user_clicks(server, user_id)["total_clicks"] == 1, "the beacon")
    assert user_clicks(server, user_id)["clicks_by_rank"] == {"4": 1}

    # A beacon gets no answer, so the click is still queued in localStorage for the next page,
    # which sends it again after a while (or now, on flush(true)); the server recognises it.
    assert tracker_page(tab, server, flushInterval=60_000) == user_id
    assert [e["event_id"] for e in page.evaluate("clickstats.pending()")] == [event_id]
    assert page.evaluate("sessionStorage.getItem('beacons')") == "1"  # pagehide + visibilitychange
    with page.expect_response(EVENTS) as resent:
        page.evaluate("clickstats.flush(true)")
    assert resent.value.json()["results"][0] == {
        "index": 0,
        "status": "duplicate",
        "event_id": event_id,
    }
    assert page.evaluate("clickstats.pending()") == []
    assert user_clicks(server, user_id)["total_clicks"] == 1


def test_a_rejected_click_is_dropped_with_a_warning_and_ids_need_no_random_uuid(
    tab: Tab, server: LiveServer
) -> None:
    page = tab.page
    page.add_init_script("Crypto.prototype.randomUUID = undefined;")  # as on plain http://
    warnings: list[str] = []
    page.on("console", lambda m: m.type == "warning" and warnings.append(m.text))
    tracker_page(tab, server, flushInterval=60_000)
    good = page.evaluate("clickstats.trackClick({productId: 'sku-3', rank: 1})")
    bad = page.evaluate("clickstats.trackClick({productId: 'sku-4', rank: 0})")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", bad)
    with page.expect_response(EVENTS) as sent:
        page.evaluate("clickstats.flush(true)")
    answer = sent.value.json()
    assert [r["status"] for r in answer["results"]] == ["accepted", "rejected"]
    assert answer["results"][0]["event_id"] == good
    assert page.evaluate("clickstats.pending()") == []  # not retried: it would fail again
    assert any("rejected" in w and bad in w for w in warnings), warnings
