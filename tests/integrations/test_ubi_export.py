"""`clickstats export --format ubi`: OpenSearch `_bulk` NDJSON that validates against the UBI
1.3.0 schemas (tests/integrations/ubi_schemas, README there), with an impression per result
shown, 0-based ordinals and user_query on every event."""

from __future__ import annotations

import copy
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from rich.console import Console

from clickstats.cli import main
from clickstats.demo import main as run_demo
from clickstats.integrations.ubi import parse_records
from clickstats.store import EventStore, open_store
from clickstats.tracking import ClickTrackingService
from clickstats.transfer import TransferError, export_file, import_file
from tests.integrations.test_ubi_api import published_samples

SCHEMAS = Path(__file__).parent / "ubi_schemas"
STANDARD_NAMES = {"add_to_cart", "click", "watch", "view", "purchase", "impression"}


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return loaded


def validators(corrected: bool) -> dict[str, Draft202012Validator]:
    """The published schemas; `corrected`: with action_name's `oneOf` read as `anyOf`.

    Spec defect: action_name is `oneOf` [enum of the standard names, any string], so a
    standard name ("click") matches both branches and fails; its description says "you can
    pass in whatever you want", which is `anyOf`.
    """
    event = schema("event.schema.json")
    if corrected:
        event = copy.deepcopy(event)
        action = event["properties"]["action_name"]
        action["anyOf"] = action.pop("oneOf")
    found = {
        "ubi_queries": schema("query.request.schema.json"),
        "ubi_events": event,
    }
    for loaded in found.values():
        Draft202012Validator.check_schema(loaded)
    return {
        index: Draft202012Validator(loaded, format_checker=Draft202012Validator.FORMAT_CHECKER)
        for index, loaded in found.items()
    }


def bulk(path: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    text = path.read_text()
    assert text.endswith("}\n")  # _bulk's last line must end with a newline
    lines = text.splitlines()
    assert len(lines) % 2 == 0
    return [(json.loads(a), json.loads(d)) for a, d in zip(lines[::2], lines[1::2], strict=True)]


def check_against_the_schemas(records: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    published, corrected = validators(False), validators(True)
    ambiguous: Counter[str] = Counter()
    for action, document in records:
        index = action["index"]["_index"]
        for error in published[index].iter_errors(document):
            # The only error allowed: the oneOf defect, on a standard action name.
            assert list(error.absolute_path) == ["action_name"], error.message
            assert error.validator == "oneOf" and document["action_name"] in STANDARD_NAMES
            ambiguous[document["action_name"]] += 1
        assert not list(corrected[index].iter_errors(document))
    assert ambiguous  # the defect is real: standard names fail the published schema


def check_ubi_conventions(records: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    ids = [action["index"]["_id"] for action, _ in records]
    assert len(ids) == len(set(ids))
    for action, document in records:
        assert document["timestamp"].endswith("Z") and len(document["timestamp"]) == 24
        if action["index"]["_index"] == "ubi_events":
            assert isinstance(document["user_query"], str)


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The `make demo` data: the demo run on its own store."""
    url = f"duckdb://{tmp_path_factory.mktemp('demo')}/demo.duckdb"
    run_demo(store=url, console=Console(file=io.StringIO()))
    return url


def test_the_demo_data_exported_as_ubi_validates_against_the_ubi_schemas(
    demo_store: str, tmp_path: Path
) -> None:
    out = tmp_path / "ubi.ndjson"
    result = CliRunner().invoke(
        main, ["export", "--store", demo_store, "--format", "ubi", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    records = bulk(out)
    per_index = Counter(action["index"]["_index"] for action, _ in records)
    for index in ("ubi_queries", "ubi_events"):
        assert f"  {per_index[index]:,} documents for {index}" in result.output
    check_against_the_schemas(records)
    check_ubi_conventions(records)

    queries = {d["query_id"]: d for a, d in records if a["index"]["_index"] == "ubi_queries"}
    events = [d for a, d in records if a["index"]["_index"] == "ubi_events"]
    names = Counter(d["action_name"] for d in events)
    shown = sum(len(q.get("query_response_hit_ids", [])) for q in queries.values())
    assert names["impression"] == shown > 0  # one impression per result shown
    assert names["click"] > 0
    for document in events:
        assert document["user_query"] == queries[document["query_id"]]["user_query"]
        if document["action_name"] == "impression":
            hits = queries[document["query_id"]]["query_response_hit_ids"]
            ordinal = document["event_attributes"]["position"]["ordinal"]
            assert hits[ordinal] == document["event_attributes"]["object"]["object_id"]


def stored(store: EventStore, kind: str, records: list[Any]) -> None:
    good, bad = parse_records(kind, records)  # type: ignore[arg-type]
    assert not bad
    store.append_sync([event for _, event in good])


def test_every_event_type_exports_and_ubi_records_come_back_as_they_came(
    tmp_path: Path,
) -> None:
    url = f"duckdb://{tmp_path}/events.duckdb"
    with ClickTrackingService(open_store(url)) as tracker:
        store = tracker.store
        queries, events = published_samples()
        stored(store, "query", queries)
        stored(store, "event", events)
        # A search with hits and UBI impressions of two of them (0-based, as SRW reads them)
        # and of one product it did not show.
        stored(store, "query", [{"query_id": "q1", "user_query": "tent",
                                 "query_response_hit_ids": ["a", "b", "c"]}])  # fmt: skip
        shown = [("a", 0), ("b", 1), ("z", 5)]
        stored(
            store,
            "event",
            [
                {"action_name": "impression", "query_id": "q1", "timestamp": 1764000000000 + i,
                 "event_attributes": {"object": {"object_id": p}, "position": {"ordinal": o}}}
                for i, (p, o) in enumerate(shown)
            ],
        )  # fmt: skip
        # clickstats' own events: a conversion of two products with prices, a view without
        # a position, an action without a search.
        tracker.log_conversion(
            subtype="purchase", product_ids=["c", "x"], prices=[10.0, 5.5], currency="EUR",
            search_id="q1", user_id="u1",
        )  # fmt: skip
        tracker.log_action(name="view", product_ids=["b"], search_id="q1", user_id="u1")
        tracker.log_action(name="share", user_id="u1", message="by mail")
        summary = export_file(store, tmp_path / "all.ndjson", "ubi")
    assert summary.format == "ubi"
    records = bulk(tmp_path / "all.ndjson")
    check_against_the_schemas(records)
    check_ubi_conventions(records)

    tent = [d for a, d in records if d.get("query_id") == "q1" and "action_name" in d]
    impressions = sorted(
        (d["event_attributes"]["object"]["object_id"], d["event_attributes"]["position"]["ordinal"])
        for d in tent
        if d["action_name"] == "impression"
    )
    # a, b, c from the search's hits; the UBI impressions of a and b repeat them; z is kept.
    assert impressions == [("a", 0), ("b", 1), ("c", 2), ("z", 5)]
    assert all(d["user_query"] == "tent" for d in tent)  # conversions and actions included
    purchases = [d for d in tent if d["action_name"] == "purchase"]
    assert [
        (p["event_attributes"]["position"]["ordinal"], p["event_attributes"]["object"])
        for p in purchases
        if "event_attributes" in p
    ] == [(2, {"object_id": "c", "object_detail": {"price": 10.0, "currency": "EUR"}})]
    # "x" was not shown: UBI requires a position with an object, so its id is in extra_info.
    assert [p.get("extra_info") for p in purchases if "event_attributes" not in p] == [
        {"object_id": "x", "object_detail": {"price": 5.5, "currency": "EUR"}}
    ]
    view = next(d for d in tent if d["action_name"] == "view")
    assert view["event_attributes"]["position"] == {"ordinal": 1}  # where its search showed b

    # The sample's clicks come back at the ordinals they came in with.
    sample_clicks = sorted(
        d["event_attributes"]["position"]["ordinal"]
        for _, d in records
        if d.get("action_name") == "click" and d.get("user_query") == "tv remote"
    )
    assert sample_clicks == [4, 8, 13]


def test_ubi_is_written_not_read(tmp_path: Path) -> None:
    path = tmp_path / "ubi.ndjson"
    path.write_text("")
    store = open_store(f"duckdb://{tmp_path}/e.duckdb")
    with pytest.raises(TransferError, match="POST /ubi_queries"):
        import_file(store, path, "ubi")  # type: ignore[arg-type]
    result = CliRunner().invoke(
        main, ["import", "--store", f"duckdb://{tmp_path}/e.duckdb", "--format", "ubi", str(path)]
    )
    assert result.exit_code != 0
