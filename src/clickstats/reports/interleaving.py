"""An interleaving experiment's results: wins of each ranker and the preference for B.

The store sums the interleaved searches' outcomes per user (and per user within a query);
`clickstats.stats.preference.analyze_preference` does the statistics. The answer is
`InterleavingResults`, the response model of /experiments/{name}/interleaving.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from clickstats.experiments import Experiment, ExperimentStatus
from clickstats.reports.base import Report, cached
from clickstats.reports.experiment import window
from clickstats.stats.preference import PreferenceResult, PreferenceSummary, analyze_preference
from clickstats.store.base import EventStore, Key, Outcome, PreferenceSums

__all__ = [
    "InterleavingResults",
    "Preference",
    "QueryPreference",
    "Rankers",
    "interleaving_results",
    "window",
]


class Preference(Report):
    """`stats.preference.PreferenceResult` on the wire: the preference for B and its test
    against 0.5 (no preference), users as the unit."""

    users: int = Field(description="users with at least one search with clicks")
    searches_with_clicks: int
    wins_a: int
    wins_b: int
    ties: int
    preference: float | None = Field(description="B wins / (A wins + B wins)")
    se: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    significant: bool
    alpha: float
    verdict: str
    reason: str | None = Field(description="why some fields are null, if they are")

    @classmethod
    def fields_of(cls, result: PreferenceResult) -> dict[str, object]:
        """The fields of `result` by name, to build a `Preference` or one of its subclasses."""
        return {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}


class _Query(Report):
    query: str


class QueryPreference(Preference, _Query):  # fields: query first, then Preference's
    """The preference within one query (units: users in that query)."""


class Rankers(BaseModel):
    model_config = ConfigDict(frozen=True)

    A: str
    B: str


class _Head(Report):
    experiment: str
    status: ExperimentStatus
    rankers: Rankers
    outcome: Outcome = Field(
        "clicks",
        description="what a search is won by: clicks on a team's results, or purchases of its "
        "products (then searches_with_clicks counts searches with a credited purchase)",
    )


class InterleavingResults(Preference, _Head):  # fields: _Head's, Preference's, by_query
    """Wins of each ranker, the preference for B with its interval, the verdict; and the same
    for the most frequent queries."""

    by_query: list[QueryPreference] = Field(
        description="the queries with the most searches with clicks, most first"
    )


def _summary(sums: PreferenceSums) -> PreferenceSummary:
    return PreferenceSummary(
        users=sums.units,
        sum_wins_a=sums.wins_a,
        sum_wins_b=sums.wins_b,
        sum_ties=sums.ties,
        sum_wins_a2=sums.wins_a2,
        sum_wins_b2=sums.wins_b2,
        sum_wins_ab=sums.wins_ab,
    )


def interleaving_results(
    store: EventStore,
    experiment: Experiment,
    since: datetime,
    top_queries: int = 10,
    *,
    outcome: Outcome = "clicks",
) -> InterleavingResults:
    """Wins of each ranker, the preference for B with its interval (users as the unit), the
    verdict; and the same per query for the most frequent queries (units: users in a query)."""
    ranker_a, ranker_b = experiment.variants
    names = (ranker_a, ranker_b)

    def sums(top: int | None) -> dict[Key, PreferenceSums]:
        key = ("preference_sums", since, experiment.name, top, outcome)
        return cached(
            store, key, lambda: store.preference_sums(since, experiment.name, top, outcome)
        )

    overall = sums(None).get((), PreferenceSums())
    return InterleavingResults.model_validate(
        {
            "experiment": experiment.name,
            "status": experiment.status,
            "rankers": Rankers(A=ranker_a, B=ranker_b),
            "outcome": outcome,
            **Preference.fields_of(analyze_preference(_summary(overall), names=names)),
            "by_query": [
                QueryPreference.model_validate(
                    {
                        "query": query,
                        **Preference.fields_of(analyze_preference(_summary(s), names=names)),
                    }
                )
                for (query,), s in sums(top_queries).items()
            ],
        }
    )
