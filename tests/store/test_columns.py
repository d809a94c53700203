"""Events turned into the DuckDB store's columns (the writer's hot path)."""

from __future__ import annotations

from datetime import UTC, datetime

from clickstats import ClickEvent, ClickSource, SearchImpression
from clickstats.store.duckdb.schema import TABLES, micros


def test_columns_hold_each_fields_stored_value() -> None:
    at = datetime(2026, 11, 28, 17, 50, 58, 123000, tzinfo=UTC)
    clicks = [
        ClickEvent(product_id="p", rank=2, timestamp=at, source=ClickSource.AUTOCOMPLETE),
        ClickEvent(product_id="q", rank=1, search_id="s", variant="v2"),
    ]
    table = TABLES["click"]
    columns = dict(zip((c.name for c in table.columns), table.values(clicks), strict=True))
    for column in table.columns:  # what Field.value gives, event by event
        expected = [column.field.value(c) for c in clicks]
        if column.name == "ts":
            expected = [micros(t) for t in expected]
        assert columns[column.name] == expected
    assert columns["ts"][0] == micros(at)
    assert [type(s) for s in columns["source"]] == [str, str]  # an enum's value, not the enum
    impressions = [SearchImpression(query="q", results=["a", "b"], teams=["A", "B"])]
    values = TABLES["impression"].values(impressions)
    assert values[[c.name for c in TABLES["impression"].columns].index("results")] == [["a", "b"]]
