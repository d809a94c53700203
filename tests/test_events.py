from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from clickstats import ClickEvent, ClickSource, SearchImpression
from clickstats.events import parse_events


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
