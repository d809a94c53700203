"""Experiment results: the store's per-user sums become summaries, the statistics decide.

The store reduces an experiment's events to per-variant sums over users (one aggregate query,
on any backend); `clickstats.stats.analysis.analyze` turns those into comparisons, health
checks and a decision. Nothing here touches raw events.
"""

from __future__ import annotations

import dataclasses
import threading
import weakref
from typing import Any, Literal

from clickstats.experiments import Experiment
from clickstats.interleaving import PreferenceSummary, analyze_preference
from clickstats.stats import outliers
from clickstats.stats.summary import ExperimentSummary, RatioSummary, VariantSummary
from clickstats.store import EventStore
from clickstats.store.base import Filters, PreferenceSums, UserSums

Method = Literal["sequential", "fixed"]

#: Each metric as (per-user numerator, per-user denominator) of the store's USER_COLUMNS.
METRIC_COLUMNS: dict[str, tuple[str, str]] = {
    "search_ctr": ("clicked_searches", "searches"),
    "clicks_per_search": ("clicks", "searches"),
    "mrr": ("rr", "searches"),
    "avg_click_position": ("rank_sum", "clicks"),
    "abandonment_rate": ("abandoned", "with_results"),
    "zero_result_rate": ("zero_results", "searches"),
    "time_to_first_click_ms": ("ttfc_ms", "clicked_searches"),
}
PAIRS = sorted(set(METRIC_COLUMNS.values()))


def _ratio(sums: UserSums, x: str, y: str) -> RatioSummary:
    return RatioSummary(
        users=sums.users,
        sum_x=sums.sums[x],
        sum_y=sums.sums[y],
        sum_x2=sums.squares[x],
        sum_y2=sums.squares[y],
        sum_xy=sums.products[x, y],
    )


# store -> {(generation, variants, since): sums}. The per-user aggregate is the one expensive
# query of an analysis (about 1.6 s over 10M impressions here); while the store has taken no
# write since, its answer is still exact, so repeated reads (a dashboard, several methods)
# reuse it. Entries go with their store.
_sums_cache: weakref.WeakKeyDictionary[EventStore, dict[Any, dict[str, UserSums]]] = (
    weakref.WeakKeyDictionary()
)
_sums_lock = threading.Lock()
_KEEP = 8  # windows and experiments kept per generation


def user_sums(
    store: EventStore, variants: list[str], f: Filters, max_searches: int | None = None
) -> dict[str, UserSums]:
    generation = store.generation()
    if generation is None:
        return store.user_sums(f, variants, PAIRS, max_searches=max_searches)
    key = (generation, tuple(variants), f.since, max_searches)
    with _sums_lock:
        cached = _sums_cache.setdefault(store, {}).get(key)
    if cached is None:
        cached = store.user_sums(f, variants, PAIRS, max_searches=max_searches)
        with _sums_lock:
            entries = _sums_cache.setdefault(store, {})
            for old in [k for k in entries if k[0] != generation or len(entries) >= _KEEP]:
                del entries[old]  # other generations are of no further use
            entries[key] = cached
    return cached


def window(f: Filters) -> Filters:
    """An experiment's window starts on a whole minute: stable for a minute, so that repeated
    reads can share one aggregate."""
    return Filters(since=f.since.replace(second=0, microsecond=0))


def experiment_summary(store: EventStore, experiment: Experiment, f: Filters) -> ExperimentSummary:
    """The experiment's sufficient statistics (variants without users are left out), after
    leaving out the users the outlier rule finds (`clickstats.stats.outliers`)."""
    names = list(experiment.variants)
    histograms = store.searches_per_user(f, names)
    rule = outliers.apply({name: histograms.get(name, {}) for name in names}, experiment.outlier_z)
    sums = user_sums(store, names, f, rule.max_searches if rule.total_excluded else None)
    variants = tuple(
        VariantSummary(
            name=name,
            users=sums[name].users,
            metrics={m: _ratio(sums[name], x, y) for m, (x, y) in METRIC_COLUMNS.items()},
        )
        for name in experiment.variants
        if name in sums
    )
    return ExperimentSummary(
        variants=variants,
        weights=dict(experiment.variants),
        control=experiment.control,
        experiment=experiment.name,
        outliers=rule,
    )


def experiment_results(
    store: EventStore,
    experiment: Experiment,
    f: Filters,
    method: Method = "sequential",
    *,
    response_time: bool = True,
) -> dict[str, Any]:
    """Comparisons against the control, health and the decision, JSON-ready; with
    `response_time`, the variants' (descriptive) response times too."""
    from clickstats.stats.analysis import analyze  # imports statsmodels: ~1 s the first time

    summary = experiment_summary(store, experiment, f)
    result = analyze(summary, method=method, primary_metric=experiment.primary_metric)
    latency = store.latency_by_variant(f) if response_time else {}
    return {
        "experiment": experiment.name,
        "status": experiment.status.value,
        **result.to_dict(),
        # Descriptive only: response time is not tested (it is not a user-level ratio).
        "response_time": {
            name: {"avg_ms": stats.mean, "p95_ms": stats.p95, "searches": stats.count}
            for name, stats in sorted(latency.items())
            if name in experiment.variants
        },
    }


def decision_block(results: dict[str, Any]) -> dict[str, Any]:
    """The short form of `experiment_results`: the decision and the primary metric per variant."""
    primary = results["primary_metric"]
    variants = {}
    for variant in results["variants"]:
        metric = variant["metrics"].get(primary, {})
        comparison = metric.get("comparison") or {}
        variants[variant["name"]] = {
            "users": variant["users"],
            "estimate": metric.get("estimate"),
            "absolute_ci": comparison.get("absolute_ci"),
            "relative": comparison.get("relative"),
            "relative_ci": comparison.get("relative_ci"),
            "p_value": comparison.get("p_value_adjusted", comparison.get("p_value")),
            "significant": comparison.get("significant"),
        }
    decision = results["decision"]
    return {
        "experiment": results["experiment"],
        "method": results["method"],
        "primary_metric": primary,
        "control": results["control"],
        "winner": decision["winner"],
        "leader": decision["leader"],
        "summary": decision["summary"],
        "blocked_by": decision["blocked_by"],
        "health_passed": (results["health"] or {}).get("passed", False),
        "variants": variants,
    }


def _preference_summary(sums: PreferenceSums) -> PreferenceSummary:
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
    store: EventStore, experiment: Experiment, f: Filters, top_queries: int = 10
) -> dict[str, Any]:
    """Wins of each ranker, the preference for B with its interval (users as the unit), the
    verdict; and the same per query for the most frequent queries (units: users in a query)."""
    ranker_a, ranker_b = experiment.variants
    names = (ranker_a, ranker_b)
    overall = analyze_preference(
        _preference_summary(store.preference_sums(f, experiment.name)), names=names
    )
    by_query = store.preference_sums_by_query(f, experiment.name, top_queries)
    return {
        "experiment": experiment.name,
        "status": experiment.status.value,
        "rankers": {"A": ranker_a, "B": ranker_b},
        **dataclasses.asdict(overall),
        "by_query": [
            {
                "query": query,
                **dataclasses.asdict(analyze_preference(_preference_summary(s), names=names)),
            }
            for query, s in by_query.items()
        ],
    }
