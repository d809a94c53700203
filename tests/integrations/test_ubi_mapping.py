"""UBI records read leniently and mapped onto clickstats events (integrations/ubi.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from clickstats.events import ActionEvent, ClickEvent, ConversionEvent, SearchImpression
from clickstats.integrations.ubi import one_search_per_query_id, parse_records

NOW = "2026-11-28T17:50:58.123Z"


def event(**fields: Any) -> dict[str, Any]:
    return {"action_name": "click", "timestamp": NOW, "client_id": "c1", **fields}


def attributes(object_id: Any = "p1", ordinal: Any = 0) -> dict[str, Any]:
    found: dict[str, Any] = {"position": {"ordinal": ordinal} if ordinal is not None else {}}
    if object_id is not None:
        found["object"] = {"object_id": object_id, "object_id_field": "sku"}
    return found


def one(kind: str, record: Any) -> Any:
    good, bad = parse_records(kind, [record])  # type: ignore[arg-type]
    assert not bad, bad[0].errors
    return good[0][1]


def test_a_query_is_a_search_with_its_hits_as_results() -> None:
    search = one(
        "query",
        {
            "application": "shop",
            "query_id": "q-1",
            "client_id": "c1",
            "user_query": "red dress",
            "query_response_hit_ids": ["a", "b"],
            "query_attributes": {"variant": "search_v2", "experiment_id": "12345"},
            "timestamp": "2026-11-28T17:50:58.123+0000",
        },
    )
    assert isinstance(search, SearchImpression)
    assert (search.search_id, search.query, search.results) == ("q-1", "red dress", ["a", "b"])
    assert (search.user_id, search.variant, search.results_count) == ("c1", "search_v2", 2)
    assert search.timestamp == datetime(2026, 11, 28, 17, 50, 58, 123000, tzinfo=UTC)


def test_a_query_without_ids_gets_stable_ones_and_a_logged_in_user_wins() -> None:
    record = {"user_query": "tent", "client_id": "c1", "user_id": "u1", "timestamp": NOW}
    first, again = one("query", record), one("query", dict(record))
    assert first.search_id == again.search_id == first.event_id
    assert first.user_id == "u1"
    assert one("query", {**record, "user_id": ""}).user_id == "c1"  # ubi.js sends user_id: ''
    assert one("query", {"user_query": "tent"}).user_id == "anonymous"
    assert one("query", {"user_query": "tent", "query_attributes": None}).variant == "default"


def test_a_search_body_with_an_ext_ubi_block_is_read_as_that_block() -> None:
    body = {"ext": {"ubi": {"query_id": "q9", "user_query": "Toner"}}, "query": {"match": {}}}
    assert one("query", body).search_id == "q9"


def test_a_click_takes_its_rank_from_the_zero_based_ordinal() -> None:
    click = one(
        "event",
        event(query_id="q-1", user_query="red dress", event_attributes=attributes(ordinal=0)),
    )
    assert isinstance(click, ClickEvent)
    assert (click.product_id, click.rank, click.search_id) == ("p1", 1, "q-1")
    assert click.search_query == "red dress"
    assert one("event", event(event_attributes=attributes(object_id=42, ordinal=3))).rank == 4


def test_conversions_keep_their_name_and_take_amounts_only_with_a_currency() -> None:
    detail = {"object_id": "p1", "object_detail": {"price": 19.5, "currency": "EUR"}}
    bought = one(
        "event",
        event(action_name="purchase", event_attributes={"object": detail, "position": {}}),
    )
    assert isinstance(bought, ConversionEvent)
    assert (bought.subtype, bought.product_ids, bought.value) == ("purchase", ["p1"], 19.5)
    assert bought.currency == "EUR"
    # SRW's sample: a price (in cents?) and no currency: no revenue.
    cents = {"object_id": "p1", "object_detail": {"price": 22695}}
    added = one("event", event(action_name="add_to_cart", event_attributes={"object": cents}))
    assert (added.subtype, added.value, added.currency) == ("add_to_cart", None, None)


def test_impressions_and_other_names_are_actions_and_so_are_events_without_an_object() -> None:
    shown = one("event", event(action_name="impression", event_attributes=attributes(ordinal=4)))
    assert isinstance(shown, ActionEvent)
    assert (shown.name, shown.product_ids, shown.position) == ("impression", ["p1"], 5)
    exit_page = one(
        "event",
        {
            "action_name": "page_exit",
            "timestamp": 1717527762074,  # epoch milliseconds, as SRW's sample has them
            "message_type": None,
            "message": None,
            "event_attributes": {"position": {}, "session_id": "s1"},
        },
    )
    assert (exit_page.name, exit_page.product_ids) == ("page_exit", None)
    assert exit_page.session_id == "s1"  # where ubi_data_generator.py puts it
    no_object = one("event", event(event_attributes=attributes(object_id=None, ordinal=2)))
    assert isinstance(no_object, ActionEvent)
    assert (no_object.name, no_object.position) == ("click", 3)
    no_position = one("event", event(event_attributes=attributes(ordinal=None)))
    assert isinstance(no_position, ActionEvent) and no_position.product_ids == ["p1"]
    no_product = one("event", event(action_name="purchase", event_attributes=None))
    assert isinstance(no_product, ActionEvent) and no_product.name == "purchase"


def test_the_same_record_gets_the_same_event_id() -> None:
    record = event(event_attributes=attributes())
    assert one("event", record).event_id == one("event", dict(record)).event_id
    assert one("event", record).event_id != one("event", {**record, "timestamp": 1}).event_id


def test_bad_records_name_their_index_and_ubi_field() -> None:
    good, bad = parse_records(
        "event",
        [
            event(event_attributes=attributes()),
            {"action_name": "click"},
            event(event_attributes=attributes(ordinal=-1)),
            event(event_attributes=attributes(object_id="x" * 300)),
            "click",
            event(timestamp="yesterday"),
        ],
    )
    assert [index for index, _ in good] == [0]
    fields = {r.index: [e["field"] for e in r.errors] for r in bad}
    assert fields == {
        1: ["timestamp"],
        2: ["event_attributes.position.ordinal"],
        3: ["event_attributes.object.object_id"],
        4: [None],
        5: ["timestamp"],
    }
    _, bad = parse_records("query", [{"query_id": "q"}, {"user_query": "x" * 2000}])
    assert [(r.index, r.errors[0]["field"]) for r in bad] == [(0, "user_query"), (1, "user_query")]


def test_of_several_records_of_one_query_id_the_one_with_hits_is_the_search() -> None:
    records = [
        {"query_id": "q", "user_query": "tv remote", "query_response_hit_ids": []},
        {"query_id": "q", "user_query": "tv remote", "query_response_hit_ids": ["a", "b"]},
        {"query_id": "other", "user_query": "tv"},
    ]
    good, _ = parse_records("query", records)
    kept, repeats = one_search_per_query_id(good)
    assert [index for index, _ in kept] == [1, 2]
    assert [(index, search.results) for index, search in repeats] == [(0, ["a", "b"])]  # type: ignore[union-attr]
