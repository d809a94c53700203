"""The interleaving report: the store's preference sums in, `InterleavingResults` out."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from clickstats.experiments import Experiment, ExperimentType
from clickstats.reports.interleaving import (
    InterleavingResults,
    Preference,
    QueryPreference,
    interleaving_results,
)
from clickstats.stats.preference import PreferenceResult
from clickstats.store.base import EventStore, Key, PreferenceSums

SINCE = datetime(2026, 1, 1, tzinfo=UTC)
DUEL = Experiment(
    name="duel", type=ExperimentType.INTERLEAVING, variants={"search_v1": 1, "search_v2": 1}
)


class Sums:
    """A store that knows only preference sums (every other read would fail)."""

    def __init__(self, overall: PreferenceSums, by_query: dict[Key, PreferenceSums]) -> None:
        self.overall, self.by_query = overall, by_query
        self.asked: list[tuple[datetime, str, int | None, str]] = []

    def generation(self) -> None:
        return None

    def preference_sums(
        self, since: datetime, label: str, top_queries: int | None = None, outcome: str = "clicks"
    ) -> dict[Key, PreferenceSums]:
        self.asked.append((since, label, top_queries, outcome))
        return {(): self.overall} if top_queries is None else self.by_query


def test_the_wire_fields_are_the_statistics_fields_in_order() -> None:
    stats = [f.name for f in dataclasses.fields(PreferenceResult)]
    assert list(Preference.model_fields) == stats
    assert list(QueryPreference.model_fields) == ["query", *stats]
    assert list(InterleavingResults.model_fields) == [
        "experiment", "status", "rankers", "outcome", *stats, "by_query",
    ]  # fmt: skip


def test_overall_and_per_query_from_the_store_sums() -> None:
    # u1: A, B, tie; u2: B (tests/store/test_preference.py's example), and one query.
    sums = PreferenceSums(units=2, wins_a=1, wins_b=2, ties=1, wins_a2=1, wins_b2=2, wins_ab=1)
    store = Sums(sums, {("shoes",): sums})
    result = interleaving_results(store, DUEL, SINCE, top_queries=3)  # type: ignore[arg-type]
    assert store.asked == [(SINCE, "duel", None, "clicks"), (SINCE, "duel", 3, "clicks")]
    assert (result.experiment, result.status.value) == ("duel", "running")
    assert (result.rankers.A, result.rankers.B) == ("search_v1", "search_v2")
    assert (result.users, result.wins_a, result.wins_b, result.ties) == (2, 1, 2, 1)
    assert result.searches_with_clicks == 4 and result.preference == 2 / 3
    assert [q.query for q in result.by_query] == ["shoes"]
    assert result.by_query[0].model_dump(exclude={"query"}) == result.model_dump(
        include=set(Preference.model_fields)
    )
    body = result.to_dict()
    assert list(body)[:5] == ["experiment", "status", "rankers", "outcome", "users"]
    assert body["status"] == "running" and body["rankers"] == {"A": "search_v1", "B": "search_v2"}


def test_an_empty_window_says_why() -> None:
    store: EventStore = Sums(PreferenceSums(), {})  # type: ignore[assignment]
    result = interleaving_results(store, DUEL, SINCE)
    assert result.users == 0 and result.preference is None and result.by_query == []
    assert result.reason == "no search has a click yet"
