from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from clickstats import ClickEvent, ClickSource, SearchImpression
from clickstats.events import (
    MAX_EPOCH_MS,
    MIN_EPOCH_MS,
    loads,
    parse_events,
    too_old,
    unicode_text,
    utcnow,
)


def test_click_defaults_fill_server_side_fields() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    click = ClickEvent(product_id="p1", rank=3)
    assert click.user_id == "anonymous"
    assert click.variant is None  # reports take the variant of the search it cites
    assert click.source is ClickSource.SEARCH_RESULTS
    assert before <= click.timestamp <= datetime.now(UTC)
    assert click.timestamp.tzinfo is UTC
    assert len(click.event_id) == 32
    assert click.search_id is None
    assert ClickEvent(product_id="p1", rank=3).event_id != click.event_id


def test_impression_generates_search_id() -> None:
    a = SearchImpression(query="shoes", results_count=3, results=["a", "b", "c"])
    b = SearchImpression(query="shoes")
    assert a.search_id and b.search_id and a.search_id != b.search_id
    assert a.results == ["a", "b", "c"]
    assert b.results_count == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"rank": 0}, "rank"),
        ({"rank": -1}, "rank"),
        ({"rank": "first"}, "rank"),
        ({"product_id": ""}, "product_id"),
        ({"response_time_ms": -1}, "response_time_ms"),
        ({"response_time_ms": float("nan")}, "response_time_ms"),
        ({"source": "EMAIL"}, "source"),
        ({"user_id": "x" * 129}, "user_id"),
        ({"rnak": 2}, "rnak"),
    ],
)
def test_click_rejects_bad_fields_naming_them(fields: dict[str, object], field: str) -> None:
    data = {"product_id": "p1", "rank": 1, **fields}
    with pytest.raises(ValidationError) as exc:
        ClickEvent.model_validate(data)
    assert field in {str(e["loc"][0]) for e in exc.value.errors()}


def test_results_count_defaults_to_the_results_shown() -> None:
    assert SearchImpression(query="q", results=["a", "b", "c"]).results_count == 3
    assert SearchImpression(query="q", results=[]).results_count == 0
    assert SearchImpression(query="q", results=["a", "b"], results_count=40).results_count == 40
    assert SearchImpression(query="q", results=["a"], results_count=0).results_count == 0
    assert SearchImpression(query="q", results=None).results_count == 0
    assert SearchImpression.from_json('{"query": "q", "results": ["a", "b"]}').results_count == 2
    (_, event), *_ = parse_events([{"type": "impression", "query": "q", "results": ["a"]}])[0]
    assert isinstance(event, SearchImpression) and event.results_count == 1


def test_impression_rejects_negative_counts() -> None:
    with pytest.raises(ValidationError, match="results_count"):
        SearchImpression(query="q", results_count=-1)


def test_future_timestamps_are_rejected_past_ones_kept() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    ok = ClickEvent(product_id="p", rank=1, timestamp=now + timedelta(minutes=4))
    assert ok.timestamp == now + timedelta(minutes=4)
    with pytest.raises(ValidationError, match="5 minutes in the future"):
        ClickEvent(product_id="p", rank=1, timestamp=now + timedelta(minutes=6))
    old = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert ClickEvent(product_id="p", rank=1, timestamp=old).timestamp == old


def test_timestamps_are_normalised_to_utc() -> None:
    naive = ClickEvent.model_validate(
        {"product_id": "p", "rank": 1, "timestamp": "2024-05-01T12:00:00"}
    )
    assert naive.timestamp == datetime(2024, 5, 1, 12, tzinfo=UTC)
    plus2 = timezone(timedelta(hours=2))
    shifted = ClickEvent(product_id="p", rank=1, timestamp=datetime(2024, 5, 1, 14, tzinfo=plus2))
    assert shifted.timestamp == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert shifted.timestamp.tzinfo is UTC


def test_timestamps_are_kept_to_the_millisecond() -> None:
    sent = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert ClickEvent(product_id="p", rank=1, timestamp=sent).timestamp.microsecond == 123000
    assert ClickEvent(product_id="p", rank=1).timestamp.microsecond % 1000 == 0


def test_round_trip_through_dict_and_json() -> None:
    click = ClickEvent(
        user_id="u1",
        product_id="p9",
        rank=2,
        search_query="red shoes",
        variant="search_v2",
        response_time_ms=12.5,
        session_id="s1",
        source=ClickSource.AUTOCOMPLETE,
        search_id="search-1",
        event_id="evt-1",
    )
    data = click.to_dict()
    assert data["timestamp"].endswith("Z")
    assert data["source"] == "AUTOCOMPLETE"
    assert ClickEvent.from_dict(data) == click
    assert ClickEvent.from_json(click.to_json()) == click
    impression = SearchImpression(query="q", results=["a"], results_count=1, response_time_ms=3)
    assert SearchImpression.from_json(impression.to_json()) == impression
    assert SearchImpression.from_dict(impression.to_dict()) == impression


def test_parse_events_sorts_good_from_bad_with_reasons() -> None:
    good, bad = parse_events(
        [
            {"type": "click", "product_id": "p", "rank": 2},
            {"type": "click", "product_id": "p", "rank": 0},
            {"product_id": "p", "rank": 1},
            "not an object",
            {"type": "impression", "query": "q", "user_id": "u7"},
        ],
        default_user="from-header",
    )
    assert [i for i, _ in good] == [0, 4]
    assert good[0][1].user_id == "from-header"
    assert good[1][1].user_id == "u7"
    reasons = {r.index: r.errors for r in bad}
    assert reasons[1] == [
        {"field": "rank", "problem": "Input should be greater than or equal to 1"}
    ]
    assert reasons[2][0]["field"] == "type"
    assert reasons[3][0]["field"] is None
    assert "object" in reasons[3][0]["problem"] or "dictionary" in reasons[3][0]["problem"]


def test_parse_events_fast_path_keeps_order() -> None:
    items = [{"type": "click", "product_id": f"p{i}", "rank": i + 1} for i in range(50)]
    good, bad = parse_events(items)
    assert bad == []
    assert [e.rank for _, e in good] == list(range(1, 51))  # type: ignore[union-attr]


# -- bad input: every string is text, every number a number, every time in range -------------

CLICK_STRINGS = ["user_id", "session_id", "event_id", "product_id", "search_query"]
CLICK_STRINGS += ["search_id", "variant"]
IMPRESSION_STRINGS = ["user_id", "session_id", "event_id", "query", "variant", "search_id"]


@pytest.mark.parametrize(
    ("model", "field", "base"),
    [(ClickEvent, f, {"product_id": "p", "rank": 1}) for f in CLICK_STRINGS]
    + [(SearchImpression, f, {"query": "q"}) for f in IMPRESSION_STRINGS],
)
def test_every_string_field_refuses_lone_surrogates(
    model: type[ClickEvent | SearchImpression], field: str, base: dict[str, object]
) -> None:
    # json.loads makes "\ud800" a lone surrogate, which UTF-8 cannot carry: the store or the
    # answer would fail on it. The length limits make pydantic-core refuse it (no Python
    # validator on the hot path); this holds every field to that.
    with pytest.raises(ValidationError) as exc:
        model.model_validate({**base, field: "ok\ud800"})
    assert [e["loc"] for e in exc.value.errors()] == [(field,)]
    assert model.model_validate({**base, field: "ok\U0001f600"})  # a pair is one character


def test_results_refuse_lone_surrogates_naming_the_entry() -> None:
    with pytest.raises(ValidationError) as exc:
        SearchImpression.model_validate({"query": "q", "results": ["a", "\udfff"]})
    assert [e["loc"] for e in exc.value.errors()] == [("results", 1)]


def test_unicode_text_refuses_lone_surrogates() -> None:
    assert unicode_text("Zoë 東京 \U0001f600") == "Zoë 東京 \U0001f600"
    with pytest.raises(ValueError, match="lone surrogate"):
        unicode_text("\ud800")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"rank": True}, "rank"),
        ({"rank": "2"}, "rank"),
        ({"rank": 2.5}, "rank"),
        ({"response_time_ms": False}, "response_time_ms"),
        ({"response_time_ms": "12.5"}, "response_time_ms"),
        ({"response_time_ms": float("inf")}, "response_time_ms"),
        ({"timestamp": True}, "timestamp"),
        ({"timestamp": "1700000000000"}, "timestamp"),
        ({"timestamp": float("nan")}, "timestamp"),
        ({"timestamp": 1e300}, "timestamp"),
        ({"timestamp": "0001-01-01T00:00:00+05:00"}, "timestamp"),
        ({"timestamp": "9999-12-31T23:59:59-05:00"}, "timestamp"),
    ],
)
def test_numbers_are_numbers_and_times_in_range(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        ClickEvent.model_validate({"product_id": "p", "rank": 1, **fields})
    assert [e["loc"] for e in exc.value.errors()] == [(field,)]


def test_whole_floats_are_integers() -> None:
    assert ClickEvent.model_validate({"product_id": "p", "rank": 3.0}).rank == 3
    impression = SearchImpression.model_validate({"query": "q", "results_count": 7.0})
    assert impression.results_count == 7 and isinstance(impression.results_count, int)
    assert ClickEvent.model_validate({"product_id": "p", "rank": 1, "response_time_ms": 12})


def test_a_number_timestamp_is_epoch_milliseconds() -> None:
    millis = 1_764_000_000_123  # 2025-11-24T16:00:00.123Z, as Date.now() gives it
    click = ClickEvent.model_validate({"product_id": "p", "rank": 1, "timestamp": millis})
    assert click.timestamp == datetime(2025, 11, 24, 16, 0, 0, 123000, tzinfo=UTC)
    same = ClickEvent.from_json(f'{{"product_id": "p", "rank": 1, "timestamp": {millis}}}')
    assert same.timestamp == click.timestamp
    first = ClickEvent.model_validate({"product_id": "p", "rank": 1, "timestamp": MIN_EPOCH_MS})
    assert first.timestamp == datetime(1, 1, 1, tzinfo=UTC)
    schema = ClickEvent.model_json_schema()["properties"]["timestamp"]
    assert schema["anyOf"][1] == {
        "type": "number", "minimum": MIN_EPOCH_MS, "maximum": MAX_EPOCH_MS,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2026-11-28T17:50:58.123Z", datetime(2026, 11, 28, 17, 50, 58, 123000, tzinfo=UTC)),
        ("2026-11-28T17:50:58.1239+02:00", datetime(2026, 11, 28, 15, 50, 58, 123000, tzinfo=UTC)),
        ("2026-11-28T17:50:58-00:00", datetime(2026, 11, 28, 17, 50, 58, tzinfo=UTC)),
        ("2026-11-28T17:50:58", datetime(2026, 11, 28, 17, 50, 58, tzinfo=UTC)),
        ("2026-11-28 17:50:58.5z", datetime(2026, 11, 28, 17, 50, 58, 500000, tzinfo=UTC)),
        ("2026-11-28", datetime(2026, 11, 28, tzinfo=UTC)),
        (1_764_000_000_123.9, datetime(2025, 11, 24, 16, 0, 0, 123000, tzinfo=UTC)),
    ],
)
def test_every_form_of_time_is_kept_the_same_way(sent: object, stored: datetime) -> None:
    # The common forms are read without pydantic's parser (events._event_time), the others by
    # it: both end as UTC, to the millisecond.
    click = ClickEvent.model_validate({"product_id": "p", "rank": 1, "timestamp": sent})
    assert click.timestamp == stored and click.timestamp.tzinfo is UTC


@pytest.mark.parametrize(
    ("sent", "problem"),
    [
        ("2026-02-30T00:00:00Z", "day value is outside expected range"),
        ("2026-11-28T17:50:58+00:60", "unexpected extra characters"),  # fromisoformat reads it
        ("2026-11-28T24:00:00Z", "Input should be a valid datetime"),
        ("2999-01-01T00:00:00Z", "more than 5 minutes in the future"),
        (MAX_EPOCH_MS + 1, "epoch milliseconds must lie between years 1 and 9999"),
    ],
)
def test_a_bad_time_is_answered_by_pydantic(sent: object, problem: str) -> None:
    with pytest.raises(ValidationError) as exc:
        ClickEvent.model_validate({"product_id": "p", "rank": 1, "timestamp": sent})
    (error,) = exc.value.errors()
    assert error["loc"] == ("timestamp",) and problem in error["msg"]


def test_too_old_names_the_window() -> None:
    now = utcnow()
    assert too_old(now - timedelta(days=6, hours=23), 7) is None
    problem = too_old(now - timedelta(days=7, minutes=1), 7)
    assert problem is not None and "7 days" in problem and "max_event_age_days" in problem
    assert too_old(now - timedelta(days=3650), 0) is None  # 0: any age


def test_parse_events_rejects_old_events_only_when_asked() -> None:
    old = (utcnow() - timedelta(days=30)).isoformat()
    items = [
        {"type": "click", "product_id": "p", "rank": 1, "timestamp": old},
        {"type": "click", "product_id": "p", "rank": 0},
        {"type": "click", "product_id": "p", "rank": 2},
    ]
    good, bad = parse_events(items)  # clickstats import: any age
    assert [i for i, _ in good] == [0, 2]
    good, bad = parse_events(items, max_age_days=7)  # over HTTP
    assert [i for i, _ in good] == [2]
    assert [r.index for r in bad] == [0, 1]  # in the batch's order
    assert bad[0].errors[0]["field"] == "timestamp"


def test_loads_reads_what_orjson_refuses() -> None:
    assert loads(b'{"a": [1, "x"]}') == {"a": [1, "x"]}
    value = loads(b'{"a": NaN, "b": Infinity, "c": 1e400, "d": "\\ud800"}')
    assert math.isnan(value["a"]) and value["b"] == value["c"] == math.inf
    assert value["d"] == "\ud800"
    for bad in [b"{", b'{"a": "\xff"}', b"[" * 100_000 + b"]" * 100_000]:
        with pytest.raises(ValueError):
            loads(bad)
