"""Export then import reproduces every conversion figure exactly, in every format, on every
backend: the attributed conversion facts of the metric registry, the caps and CUPED's sums, the
conversion totals per currency and the interleaving credit of purchases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clickstats.store import EventStore, open_store
from clickstats.store.base import Cap, Filters, Grouping, SumOptions
from clickstats.transfer import FORMATS, export_file, import_file
from tests.conftest import store_url
from tests.store.test_conversions import HOUR, WEEK, _events, click, duel, purchase

OPTIONS = SumOptions(
    currency="EUR", caps=(("revenue", Cap(percentile=0.95)),), pre_days=14,
    pre_columns=("revenue",),
)  # fmt: skip


def figures(store: EventStore) -> dict[str, Any]:
    """Every conversion figure a report reads."""
    f = Filters(since=WEEK, currency="EUR")
    return {
        "user_sums": store.user_sums(WEEK, ["v1", "v2"], options=OPTIONS),
        "totals": store.search_totals_many(
            f, [Grouping(by=("variant",)), Grouping(by=("query",), order="revenue", top=5)]
        ),
        "conversions": store.conversion_totals(f, ("variant", "subtype")),
        "purchases": store.preference_sums(WEEK, "duel", outcome="purchases"),
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_then_import_reproduces_every_conversion_figure(
    store: EventStore, tmp_path: Path, fmt: str
) -> None:
    events = [
        *_events(11),
        duel("d1", "u1", 5 * HOUR),
        click("dk1", "d1", "u1", "p1", 5 * HOUR),
        purchase("db1", "u1", ["p2", "p3"], 12.25, 4 * HOUR, quantities=[1, 3], search_id="d1"),
        purchase("db2", "u1", ["p1"], 8.0, 4 * HOUR, currency="USD"),  # by the click on p1
    ]
    store.append_sync(events)
    before = figures(store)
    assert before["conversions"] and before["purchases"][()].units == 1
    path = tmp_path / f"events.{fmt}"
    summary = export_file(store, path, fmt)  # type: ignore[arg-type]
    assert summary.conversions == sum(1 for e in events if e.type == "conversion")
    backend = "duckdb" if store.kind == "duckdb" else "mongomock"
    with store_url(backend, tmp_path / "copy") as url:
        (tmp_path / "copy").mkdir(exist_ok=True)
        copy = open_store(url)
        copy.open()
        try:
            imported = import_file(copy, path, fmt)  # type: ignore[arg-type]
            assert (imported.imported, imported.rejected) == (len(events), 0)
            assert figures(copy) == before
            assert [r for b in copy.export() for r in b] == [r for b in store.export() for r in b]
        finally:
            copy.close()
