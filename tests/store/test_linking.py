"""A click sent without a variant counts for the variant of the search it cites, on every
backend, whichever of the two was stored first; a click sent with a variant keeps it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from clickstats import ClickEvent, SearchImpression
from clickstats.events import DEFAULT_VARIANT, event_time_now
from clickstats.store import EventStore
from clickstats.store.base import ByVariant, Counts, Filters, ProductClicks
from clickstats.store.duckdb import SCHEMA, DuckDBStore
from clickstats.transfer import FORMATS, Format, export_file, import_file

NOW = event_time_now()
WEEK = Filters(since=NOW - timedelta(days=7))
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
BY_VARIANT: ByVariant = ("variant",)


def imp(sid: str, variant: str, age: timedelta = HOUR, user: str = "u1") -> SearchImpression:
    return SearchImpression(
        event_id=f"i-{sid}", search_id=sid, user_id=user, variant=variant, query="q",
        results=["p1", "p2", "p3"], timestamp=NOW - age,
    )  # fmt: skip


def clk(
    n: str, sid: str | None, rank: int, variant: str | None = None, user: str = "u1"
) -> ClickEvent:
    return ClickEvent(
        event_id=f"c-{n}", search_id=sid, user_id=user, product_id=f"p{rank}", rank=rank,
        timestamp=NOW - timedelta(minutes=30), **({"variant": variant} if variant else {}),
    )  # fmt: skip


IMPRESSIONS = [
    imp("s1", "v1"),
    imp("s2", "v2", user="u2"),
    imp("s-old", "v1", age=10 * DAY),  # before the window; its click is in it
]
CLICKS = [
    clk("a", "s1", 1),  # -> v1
    clk("b", "s2", 2, user="u2"),  # -> v2
    clk("c", "s1", 3, variant="v2"),  # sent with a variant: kept
    clk("d", None, 4),  # cites no search -> default
    clk("e", "s-unknown", 5),  # cites a search never stored -> default
    clk("f", "s-old", 6),  # -> v1
    clk("g", "s2", 7),  # u1 clicks a search of u2's -> v2
]


@pytest.fixture
def linked(store: EventStore) -> EventStore:
    store.append_sync([*IMPRESSIONS, *CLICKS])
    return store


def test_the_python_api_still_takes_a_click_without_variant() -> None:
    click = ClickEvent(product_id="p", rank=1, search_id="s1")
    assert click.variant is None
    assert ClickEvent(product_id="p", rank=1, variant="v9").variant == "v9"
    assert SearchImpression(query="q").variant == DEFAULT_VARIANT


def test_clicks_take_the_variant_of_the_search_they_cite(linked: EventStore) -> None:
    assert linked.counts(WEEK, by=BY_VARIANT) == {
        ("v1",): Counts(impressions=1, clicks=2),  # a, f
        ("v2",): Counts(impressions=1, clicks=3),  # b, g, and c as sent
        (DEFAULT_VARIANT,): Counts(impressions=0, clicks=2),  # d, e
    }
    assert linked.rank_histogram(WEEK, by=BY_VARIANT) == {
        ("v1",): {1: 1, 6: 1},
        ("v2",): {2: 1, 3: 1, 7: 1},
        (DEFAULT_VARIANT,): {4: 1, 5: 1},
    }
    u1 = Filters(since=WEEK.since, user_id="u1")
    assert {v: c.clicks for (v,), c in linked.counts(u1, by=BY_VARIANT).items()} == {
        "v1": 2, "v2": 2, DEFAULT_VARIANT: 2,
    }  # fmt: skip


def test_variant_filters_use_the_resolved_variant(linked: EventStore) -> None:
    v1 = Filters(since=WEEK.since, variant="v1")
    assert linked.rank_histogram(v1) == {(): {1: 1, 6: 1}}
    assert linked.counts(v1, by=BY_VARIANT) == {("v1",): Counts(impressions=1, clicks=2)}
    assert linked.counts(v1) == {(): Counts(impressions=1, clicks=2)}
    assert linked.top_products(v1, 10) == [
        ProductClicks("p1", clicks=1, users=1, rank_sum=1),
        ProductClicks("p6", clicks=1, users=1, rank_sum=6),
    ]
    default = Filters(since=WEEK.since, variant=DEFAULT_VARIANT)
    assert linked.rank_histogram(default) == {(): {4: 1, 5: 1}}
    assert linked.activity(default).last_seen == NOW - timedelta(minutes=30)
    assert linked.activity(Filters(since=WEEK.since, variant="v9")).last_seen is None
    u2 = Filters(since=WEEK.since, user_id="u2", variant="v2")
    assert linked.counts(u2, by=BY_VARIANT) == {("v2",): Counts(impressions=1, clicks=1)}


def test_a_click_stored_before_its_search_follows_it(store: EventStore) -> None:
    store.append_sync([clk("early", "s-late", 2)])
    assert store.counts(WEEK, by=BY_VARIANT) == {(DEFAULT_VARIANT,): Counts(clicks=1)}
    store.append_sync([imp("s-late", "v2")])
    assert store.counts(WEEK, by=BY_VARIANT) == {("v2",): Counts(impressions=1, clicks=1)}
    assert store.rank_histogram(Filters(since=WEEK.since, variant="v2")) == {(): {2: 1}}


def test_a_search_stored_twice_gives_one_variant(store: EventStore) -> None:
    # search_id is not unique; the clicks of a search id served twice count once, under the
    # first variant by name, on every backend.
    store.append_sync([imp("s1", "v2"), imp("s1", "v1").model_copy(update={"event_id": "x"})])
    store.append_sync([clk("a", "s1", 1)])
    clicks = {v: c.clicks for (v,), c in store.counts(WEEK, by=BY_VARIANT).items()}
    assert clicks == {"v1": 1, "v2": 0}


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_and_import_keep_the_variant_unsent(
    linked: EventStore, tmp_path: Path, fmt: Format
) -> None:
    before = linked.counts(WEEK, by=BY_VARIANT), linked.rank_histogram(WEEK, by=BY_VARIANT)
    clicks = [row for rows in linked.export() for row in rows if row["type"] == "click"]
    assert {row["event_id"]: row["variant"] for row in clicks} == {
        "c-a": None, "c-b": None, "c-c": "v2", "c-d": None, "c-e": None, "c-f": None,
        "c-g": None,
    }  # fmt: skip
    path = tmp_path / f"events.{fmt}"
    export_file(linked, path, fmt)
    linked.reset()
    assert import_file(linked, path).imported == len(IMPRESSIONS) + len(CLICKS)
    after = linked.counts(WEEK, by=BY_VARIANT), linked.rank_histogram(WEEK, by=BY_VARIANT)
    assert after == before


def test_a_duckdb_file_from_before_takes_clicks_without_variant(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    old_schema = SCHEMA.replace(
        "variant          VARCHAR,  -- NULL", "variant          VARCHAR NOT NULL,  -- NULL"
    )
    assert old_schema != SCHEMA
    with duckdb.connect(str(path)) as con:
        con.execute(old_schema)
    store = DuckDBStore(path)
    store.open()
    try:
        store.append_sync([imp("s1", "v1"), clk("a", "s1", 1)])
        assert store.counts(WEEK, by=BY_VARIANT) == {("v1",): Counts(impressions=1, clicks=1)}
        u1 = Filters(since=WEEK.since, user_id="u1")  # through the rebuilt user index
        assert store.counts(u1, by=BY_VARIANT) == {("v1",): Counts(impressions=1, clicks=1)}
    finally:
        store.close()
    with duckdb.connect(str(path)) as con:
        indexes = {
            row[0] for row in con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()
        }
        assert "click_events_user" in indexes
