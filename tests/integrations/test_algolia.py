"""Algolia Insights events on POST /1/events: the mapping onto clickstats' events, Algolia's
validation rules (each 422 names the event and the field), the all-or-nothing batch, the body
(text/plain, 2 MB), the credentials (X-Algolia-API-Key in the query string or a header)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from clickstats.app import create_app
from clickstats.events import ActionEvent, ClickEvent, ConversionEvent
from clickstats.integrations.algolia import (
    InsightsError,
    InsightsEvent,
    Received,
    parse_batch,
    to_events,
    user_id,
)
from clickstats.keys import create_key
from clickstats.settings import Settings
from clickstats.state import open_state
from clickstats.store.base import EventRow
from tests.conftest import BACKENDS, store_url

Q = "0123456789abcdef0123456789abcdef"
Q2 = "fedcba9876543210fedcba9876543210"
#: Two days ago, to the millisecond: "tomorrow" is in the past too (events are never ahead).
NOW = datetime.fromtimestamp(int(time.time() - 2 * 86400) * 1000 // 1000, UTC)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

# What search-insights 2.17.3 sends for each method (/work/plan/algolia.md, section 2).
CLICK = {
    "eventType": "click",
    "eventName": "Hit Clicked",
    "index": "docs",
    "queryID": Q,
    "objectIDs": ["a", "b"],
    "positions": [1, 2],
    "userToken": "anonymous-9d51d098",
}
CONVERTED = {
    "eventType": "conversion",
    "eventName": "Converted",
    "index": "docs",
    "queryID": Q,
    "objectIDs": ["a"],
    "userToken": "anonymous-9d51d098",
}
ADDED = {
    "eventType": "conversion",
    "eventSubtype": "addToCart",
    "eventName": "Added",
    "index": "docs",
    "queryID": Q,
    "objectIDs": ["a"],
    "objectData": [{"price": 9.99, "quantity": 2}],
    "value": 19.98,
    "currency": "USD",
    "userToken": "anonymous-9d51d098",
}
PURCHASED = {
    "eventType": "conversion",
    "eventSubtype": "purchase",
    "eventName": "Purchased",
    "index": "docs",
    "objectIDs": ["a", "b"],
    "objectData": [
        {"queryID": Q, "price": "9.99", "discount": 0, "quantity": 1},
        {"price": 5, "quantity": 1},
    ],
    "value": 14.99,
    "currency": "USD",
    "userToken": "anonymous-9d51d098",
}
VIEWED = {
    "eventType": "view",
    "eventName": "Viewed",
    "index": "docs",
    "objectIDs": ["a", "b", "c"],
    "userToken": "anonymous-9d51d098",
}
FILTERS = {"eventType": "click", "eventName": "Filter Clicked", "index": "docs",
           "userToken": "anonymous-9d51d098", "authenticatedUserToken": "user-42",
           "filters": ["brand%3AApple%20Inc", "discount%3A10%25"]}  # fmt: skip


def mapped(raw: dict[str, Any], at: datetime = NOW) -> list[Any]:
    return to_events(Received(InsightsEvent.model_validate(raw), raw, at))


def rejected(*events: dict[str, Any], max_age_days: int = 0) -> str:
    with pytest.raises(InsightsError) as caught:
        parse_batch({"events": list(events)}, received_at=NOW, max_age_days=max_age_days)
    assert caught.value.status == 422
    return caught.value.message


# -- the mapping ---------------------------------------------------------------------------------


def test_a_click_on_two_results_is_two_clicks_at_their_positions_in_the_query_ids_search() -> None:
    first, second = mapped(CLICK)
    assert isinstance(first, ClickEvent) and isinstance(second, ClickEvent)
    assert [(c.product_id, c.rank, c.search_id) for c in (first, second)] == [
        ("a", 1, Q),
        ("b", 2, Q),
    ]
    assert first.user_id == "anonymous-9d51d098" and first.timestamp == NOW
    assert first.event_id != second.event_id


def test_a_click_without_positions_is_a_click_action_without_a_rank() -> None:
    raw = {k: v for k, v in CLICK.items() if k not in ("positions", "queryID")}
    (action,) = mapped(raw)
    assert isinstance(action, ActionEvent)
    assert (action.name, action.product_ids, action.position, action.message) == (
        "click",
        ["a", "b"],
        None,
        "Hit Clicked",
    )


def test_conversions_keep_their_subtype_products_amounts_and_search() -> None:
    (converted,) = mapped(CONVERTED)
    (added,) = mapped({**ADDED, "currency": "usd"})
    assert isinstance(converted, ConversionEvent) and isinstance(added, ConversionEvent)
    assert (converted.subtype, converted.product_ids, converted.search_id) == (
        "conversion",
        ["a"],
        Q,
    )
    assert (added.subtype, added.prices, added.quantities, added.value, added.currency) == (
        "add_to_cart",
        [9.99],
        [2],
        19.98,
        "USD",
    )


def test_a_purchase_from_two_searches_is_one_conversion_per_search_sharing_its_value() -> None:
    raw = {**PURCHASED, "objectData": [{"queryID": Q, "price": "9.99", "discount": 0,
           "quantity": 1}, {"queryID": Q2, "price": 5, "quantity": 1},
           {"queryID": Q, "price": 1, "quantity": 1}], "objectIDs": ["a", "b", "c"],
           "value": 31.98}  # fmt: skip
    first, second = mapped(raw)
    assert isinstance(first, ConversionEvent) and isinstance(second, ConversionEvent)
    assert (first.subtype, first.search_id, first.product_ids, first.prices) == (
        "purchase",
        Q,
        ["a", "c"],
        [9.99, 1.0],
    )
    assert (second.search_id, second.product_ids, second.discounts) == (Q2, ["b"], None)
    # 31.98 is twice the prices' 15.99: each search gets its products' share
    assert (first.value, second.value) == (21.98, 10.0)
    # An object without a queryID (what search-insights sends) goes with the order's search:
    # one order is one purchase unless its products came from two searches or more.
    (order,) = mapped(PURCHASED)
    assert isinstance(order, ConversionEvent)
    assert (order.search_id, order.product_ids, order.value) == (Q, ["a", "b"], 14.99)
    nobody = {**PURCHASED, "objectData": [{"price": 1}, {"price": 2}]}
    (unnamed,) = mapped(nobody)
    assert isinstance(unnamed, ConversionEvent) and unnamed.search_id is None


def test_a_view_is_a_view_action_and_filters_are_decoded_into_the_message() -> None:
    (view,) = mapped(VIEWED)
    assert isinstance(view, ActionEvent)
    assert (view.name, view.product_ids, view.message) == ("view", ["a", "b", "c"], "Viewed")
    (action,) = mapped(FILTERS)
    assert isinstance(action, ActionEvent)
    assert (action.name, action.product_ids, action.user_id) == ("filter_click", None, "user-42")
    assert json.loads(action.message) == {
        "eventName": "Filter Clicked",
        "filters": ["brand:Apple Inc", "discount:10%"],
    }


def test_the_user_is_the_authenticated_token_else_the_user_token() -> None:
    assert user_id(InsightsEvent.model_validate(CLICK)) == "anonymous-9d51d098"
    both = {**CLICK, "authenticatedUserToken": "user-42"}
    assert user_id(InsightsEvent.model_validate(both)) == "user-42"
    long = "x" * 129  # Algolia takes 129 characters; clickstats ids hold 128
    shortened = user_id(InsightsEvent.model_validate({**CLICK, "userToken": long}))
    assert len(shortened) == 128 and shortened.startswith("x" * 96)
    assert shortened != user_id(InsightsEvent.model_validate({**CLICK, "userToken": "y" * 129}))


def test_event_ids_derive_from_the_event_so_a_batch_sent_again_is_the_same_events() -> None:
    ids = [e.event_id for e in mapped(CLICK)]
    assert [e.event_id for e in mapped(dict(reversed(list(CLICK.items()))))] == ids
    assert [e.event_id for e in mapped({**CLICK, "userToken": "other"})] != ids
    # without a timestamp, the day it arrived is part of it: tomorrow's is another event
    assert [e.event_id for e in mapped(CLICK, NOW + timedelta(days=1))] != ids
    yesterday = NOW - timedelta(days=1)
    stamped = {**CLICK, "timestamp": int(yesterday.timestamp() * 1000)}
    assert [e.event_id for e in mapped(stamped, NOW + timedelta(days=1))] == [
        e.event_id for e in mapped(stamped)
    ]
    assert mapped(stamped)[0].timestamp == yesterday


def test_unknown_fields_are_accepted_and_ignored() -> None:
    raw = {**CONVERTED, "objectIDsWithInferredQueryID": ["a"], "objectData": [{"extra": 1}]}
    (conversion,) = parse_batch({"events": [raw]}, received_at=NOW, max_age_days=0)
    assert isinstance(conversion, ConversionEvent) and conversion.product_ids == ["a"]


# -- Algolia's rules: the 422 names the event (from 0) and the field ------------------------------


def without(event: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != field}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({**VIEWED, "eventType": "hover"}, "eventType: Input should be 'click', 'conversion'"),
        ({**CLICK, "eventSubtype": "purchase"}, "eventSubtype: only a conversion event"),
        ({**CONVERTED, "eventSubtype": "refund"}, "eventSubtype: Input should be 'addToCart'"),
        (without(VIEWED, "eventName"), "eventName: is required"),
        ({**VIEWED, "eventName": "Vu \u00e0 l'\u00e9cran"}, "eventName: must contain only visible"),
        ({**VIEWED, "eventName": "x" * 65}, "eventName: must contain only visible ASCII"),
        (without(VIEWED, "index"), "index: is required"),
        (without(VIEWED, "userToken"), "userToken: is required"),
        ({**VIEWED, "userToken": "a b"}, "userToken: must contain only alphanumeric"),
        ({**VIEWED, "userToken": "x" * 130}, "userToken: must contain only"),
        ({**VIEWED, "authenticatedUserToken": "é"}, "authenticatedUserToken: must contain"),
        ({**VIEWED, "timestamp": "yesterday"}, "timestamp: Input should be a valid integer"),
        ({**CLICK, "queryID": "ABC"}, "queryID: must be a search query ID"),
        ({**VIEWED, "objectIDs": []}, "objectIDs: List should have at least 1 item"),
        ({**VIEWED, "objectIDs": [str(i) for i in range(21)]}, "objectIDs: List should have at most 20"),
        (without(VIEWED, "objectIDs"), "objectIDs: Event should specify either some ObjectIDs or some Filters"),
        ({**VIEWED, "filters": ["a:b"]}, "filters: Event should specify either some ObjectIDs or some Filters, but not both"),
        ({**FILTERS, "filters": ["a:b"] * 21}, "filters: List should have at most 20"),
        ({**FILTERS, "filters": ["brand"]}, "filters.0: must be facet:value"),
        ({**CLICK, "positions": [1]}, "positions: Event of type click should have the same number of ObjectIDs and Positions"),
        ({**CLICK, "positions": [0, 1]}, "positions.0: Input should be greater than or equal to 1"),
        ({**CLICK, "positions": [1, "2"]}, "positions.1: Input should be a valid integer"),
        (without(CLICK, "queryID"), "positions: Event of type click with positions should specify a queryID"),
        ({**CONVERTED, "positions": [1]}, "positions: Only event of type click should specify the positions attribute"),
        ({**ADDED, "objectData": [{"price": 1}, {"price": 2}]}, "objectData: must have the same length as objectIDs"),
        ({**ADDED, "objectData": [{"price": "cheap"}]}, "objectData.0.price: must be a number or a string"),
        ({**ADDED, "objectData": [{"price": -1}]}, "objectData.0.price: must be a finite number from 0"),
        ({**ADDED, "objectData": [{"discount": True}]}, "objectData.0.discount: must be a number"),
        ({**ADDED, "objectData": [{"quantity": 1.5}]}, "objectData.0.quantity: Input should be a valid integer"),
        ({**ADDED, "objectData": [{"queryID": "q"}]}, "objectData.0.queryID: must be a search query ID"),
        ({**ADDED, "value": "12345678901234567"}, "value: must be at most 16 characters"),
        ({**ADDED, "value": "twelve"}, "value: must be a number or a string holding one"),
        (without(ADDED, "currency"), "currency: is needed when objectData has prices or value"),
        ({**ADDED, "currency": "dollars"}, "currency: must be 3 letters"),
        ({**ADDED, "currency": "XYZ"}, "currency: must be an ISO 4217 currency code"),
        ({**ADDED, "objectData": [{"price": 1, "discount": 2}], "value": None}, "value: would be negative"),
    ],
)  # fmt: skip
def test_each_rule_rejects_the_batch_naming_the_event_and_the_field(
    bad: dict[str, Any], message: str
) -> None:
    assert rejected(VIEWED, bad).startswith(f"event 1: {message}")


def test_timestamps_too_old_or_in_the_future_are_rejected() -> None:
    old = int((NOW - timedelta(days=8)).timestamp() * 1000)
    assert rejected({**VIEWED, "timestamp": old}, max_age_days=7).startswith(
        "event 0: timestamp: is too far in the past: more than 7 days old"
    )
    assert parse_batch({"events": [{**VIEWED, "timestamp": old}]}, received_at=NOW, max_age_days=30)
    ahead = int((NOW + timedelta(minutes=6)).timestamp() * 1000)
    assert rejected({**VIEWED, "timestamp": ahead}).startswith(
        "event 0: timestamp: is more than 5 minutes in the future"
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"events": []}, "No events to process"),
        ([VIEWED], "Invalid payload"),
        ({"events": VIEWED}, "Invalid payload"),
        ({"events": [VIEWED] * 1001}, "Cannot process more than 1000 events in a batch"),
        ({"events": [VIEWED, "view"]}, "event 1: must be a JSON object"),
    ],
)
def test_a_body_that_is_no_batch_is_rejected(payload: Any, message: str) -> None:
    with pytest.raises(InsightsError, match=message):
        parse_batch(payload, received_at=NOW, max_age_days=0)


# -- over HTTP, on each backend ----------------------------------------------------------------


def stored(client: TestClient) -> list[EventRow]:
    store = client.app.state.tracker.store  # type: ignore[attr-defined]
    return [row for rows in store.export() for row in rows]


def post(client: TestClient, events: list[dict[str, Any]], **options: Any) -> Any:
    return client.post("/1/events", content=json.dumps({"events": events}), **options)


def test_what_search_insights_sends_by_beacon_is_stored_and_reported(client: TestClient) -> None:
    impression = {"query": "phone", "search_id": Q, "results": ["a", "b", "c"],
                  "user_id": "anonymous-9d51d098"}  # fmt: skip
    assert client.post("/analytics/log-impression", json=impression).status_code == 200
    events = [CLICK, CONVERTED, ADDED, PURCHASED, VIEWED, FILTERS]
    # sendBeacon's body: a string, so text/plain
    answer = post(client, events, headers={"Content-Type": "text/plain;charset=UTF-8"})
    assert (answer.status_code, answer.json()) == (200, {"status": 200, "message": "OK"})
    assert answer.headers["content-type"] == "application/json"
    overview = client.get("/analytics/overview").json()
    assert (overview["totals"]["clicks"], overview["totals"]["search_ctr"]) == (2, 1.0)
    conversions = overview["conversions"]["totals"]
    assert (conversions["add_to_carts"], conversions["purchases"], conversions["conversions"]) == (
        1,
        1,  # one order, though one of its objects names no search
        3,
    )
    assert overview["conversions"]["by_currency"]["USD"]["revenue"] == pytest.approx(14.99)
    actions = {a["name"]: a for a in overview["actions"]}
    assert (actions["view"]["events"], actions["view"]["products"]) == (1, 3)
    assert actions["filter_click"]["users"] == 1


def test_one_invalid_event_stores_nothing_of_the_batch(client: TestClient) -> None:
    answer = post(client, [CLICK, VIEWED, ADDED, {**CLICK, "positions": [1]}])
    assert answer.status_code == 422
    assert answer.json() == {
        "status": 422,
        "message": "event 3: positions: Event of type click should have the same number of "
        "ObjectIDs and Positions",
    }
    assert stored(client) == []


def test_a_batch_sent_again_is_stored_once(client: TestClient) -> None:
    for _ in range(2):
        assert post(client, [CLICK, PURCHASED, VIEWED]).status_code == 200
    rows = stored(client)
    assert sorted(row["type"] for row in rows) == ["action", "click", "click", "conversion"]


def test_unknown_fields_are_accepted_over_http(client: TestClient) -> None:
    answer = post(client, [{**VIEWED, "objectIDsWithInferredQueryID": ["a"], "x": {"y": 1}}])
    assert answer.status_code == 200
    assert [row["type"] for row in stored(client)] == ["action"]


def test_a_body_over_2_mb_is_413_and_bad_json_400(client: TestClient) -> None:
    padding = "x" * (2 * 1024 * 1024)
    answer = post(client, [{**VIEWED, "padding": padding}])
    assert (answer.status_code, answer.json()) == (
        413,
        {"status": 413, "message": "Request Entity Too Large"},
    )
    answer = client.post(
        "/1/events", content=b'{"events": [', headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("Bad Request: the body is not valid JSON")
    answer = post(client, [])
    assert (answer.status_code, answer.json()["message"]) == (422, "No events to process")
    assert stored(client) == []


def test_a_crawlers_events_are_answered_ok_and_dropped(client: TestClient) -> None:
    answer = post(client, [CLICK], headers={"User-Agent": GOOGLEBOT})
    assert (answer.status_code, answer.json()["message"]) == (200, "OK")
    assert stored(client) == []


def test_a_cross_origin_xhr_is_allowed_by_the_preflight(client: TestClient) -> None:
    preflight = client.options(
        "/1/events",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"},
    )  # fmt: skip
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    allowed = preflight.headers["access-control-allow-headers"]
    # search-insights needs Content-Type (XHR); Algolia's REST clients send their key as headers
    assert {"Content-Type", "X-Algolia-API-Key", "X-Algolia-Application-Id"} <= set(
        allowed.split(", ")
    )
    answer = post(client, [VIEWED], headers={"Origin": "https://shop.example"})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "*"


# -- credentials ---------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def keyed(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """An app with keys on: one key of each scope, created before it starts."""
    with store_url(request.param, tmp_path) as url:
        state = open_state(url)
        keys = {s: create_key(state, scope=s, name=s)[1] for s in ("ingest", "read", "admin")}
        settings = Settings(store=url, experiments=str(tmp_path / "experiments.json"))
        with TestClient(create_app(settings)) as client:
            yield client, keys


def test_the_key_comes_in_the_query_string_as_search_insights_sends_it(
    keyed: tuple[TestClient, dict[str, str]],
) -> None:
    client, keys = keyed
    # As _sendEvent.ts builds the URL: the key is not URL-encoded
    url = (
        f"/1/events?X-Algolia-Application-Id=ANY&X-Algolia-API-Key={keys['ingest']}"
        "&X-Algolia-Agent=insights-js%20(2.17.3)%3B%20insights-js-browser-umd%20(2.17.3)"
    )
    assert client.post(url, content=json.dumps({"events": [VIEWED]})).status_code == 200
    assert len(stored(client)) == 1


def test_the_key_comes_in_the_headers_as_the_rest_api_documents(
    keyed: tuple[TestClient, dict[str, str]],
) -> None:
    client, keys = keyed
    headers = {"X-Algolia-Application-Id": "ANY", "X-Algolia-API-Key": keys["ingest"]}
    assert post(client, [VIEWED], headers=headers).status_code == 200
    # a clickstats key works too, and wins over the Algolia one
    both = {"X-Clickstats-Key": keys["ingest"], "X-Algolia-API-Key": "made-up"}
    assert post(client, [CLICK], headers=both).status_code == 200
    assert len(stored(client)) == 3


def test_a_missing_or_unknown_key_is_401_in_algolias_shape(
    keyed: tuple[TestClient, dict[str, str]],
) -> None:
    client, keys = keyed
    for headers in ({}, {"X-Algolia-API-Key": "cs_ingest_" + "0" * 32}):
        answer = post(client, [VIEWED], headers=headers)
        assert answer.status_code == 401
        assert answer.json()["status"] == 401
        assert answer.json()["message"].startswith("Invalid credentials: ")
    # a read key may not send events; an admin key may, but not in the URL (logs keep URLs)
    answer = post(client, [VIEWED], headers={"X-Algolia-API-Key": keys["read"]})
    assert answer.status_code == 403 and answer.json()["status"] == 403
    answer = client.post(
        f"/1/events?X-Algolia-API-Key={keys['admin']}", content=json.dumps({"events": [VIEWED]})
    )
    assert answer.status_code == 401 and "must not travel in the URL" in answer.json()["message"]
    assert post(client, [VIEWED], headers={"X-Algolia-API-Key": keys["admin"]}).status_code == 200
    # elsewhere, the Algolia header is no key, and the errors are clickstats' own
    answer = client.get("/analytics/ctr", headers={"X-Algolia-API-Key": keys["read"]})
    assert answer.status_code == 401 and "detail" in answer.json()
    assert len(stored(client)) == 1
