"""An A/B experiment's results: the store's per-user sums become summaries, the statistics decide.

The store reduces an experiment's events to per-variant sums over users (one aggregate query,
on any backend), one set of sums per column of the metric registry (`clickstats.metrics`);
`clickstats.stats.analysis.analyze` turns them into comparisons, health checks and a decision.
The answer is `ExperimentResults`, the response model of /experiments/{name}/results; its
short form, `DecisionBlock`, is the `stats` of /analytics/variants-comparison.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from clickstats import metrics
from clickstats.experiments import Experiment, ExperimentStatus
from clickstats.reports.base import Report, cached
from clickstats.stats import outliers
from clickstats.stats.analysis import ExperimentResult, Health, VariantResult, analyze
from clickstats.stats.decision import Decision
from clickstats.stats.multiple import Correction
from clickstats.stats.outliers import OutlierRule
from clickstats.stats.summary import ExperimentSummary, RatioSummary, VariantSummary
from clickstats.store.base import EventStore, Filters, UserSums

#: How the comparisons are tested: sequential (valid however often it is read) or fixed.
Method = Literal["sequential", "fixed"]

__all__ = [
    "DecisionBlock",
    "ExperimentResults",
    "Method",
    "PrimaryMetric",
    "ResponseTime",
    "decision_block",
    "experiment_results",
    "experiment_summary",
    "user_sums",
    "window",
]


def window(f: Filters) -> datetime:
    """An experiment's window starts on a whole minute: stable for a minute, so that repeated
    reads can share one aggregate."""
    return f.since.replace(second=0, microsecond=0)


def _ratio(sums: UserSums, metric: metrics.Metric) -> RatioSummary:
    x, y = metric.numerator, metric.denominator
    return RatioSummary(
        users=sums.users,
        sum_x=sums.sums[x],
        sum_y=sums.sums[y],
        sum_x2=sums.squares[x],
        sum_y2=sums.squares[y],
        sum_xy=sums.products[x, y],
    )


def user_sums(
    store: EventStore, since: datetime, variants: list[str], max_searches: int | None = None
) -> dict[str, UserSums]:
    """`store.user_sums`, reused while the store takes no write: the per-user aggregate is the
    one expensive query of an analysis (about 1.6 s over 10M impressions), and a dashboard or
    several methods read it repeatedly. The registry is part of the key: a metric added at run
    time (a test) is summed at once."""
    key = ("user_sums", tuple(variants), since, max_searches, tuple(metrics.METRICS.values()))
    return cached(store, key, lambda: store.user_sums(since, variants, max_searches))


def experiment_summary(
    store: EventStore, experiment: Experiment, since: datetime
) -> ExperimentSummary:
    """The experiment's sufficient statistics, one `RatioSummary` per metric of the registry
    (variants without users are left out), after leaving out the users the outlier rule finds
    (`clickstats.stats.outliers`)."""
    names = list(experiment.variants)
    histograms = store.searches_per_user(since, names)
    rule = outliers.apply({name: histograms.get(name, {}) for name in names}, experiment.outlier_z)
    sums = user_sums(store, since, names, rule.max_searches if rule.total_excluded else None)
    variants = tuple(
        VariantSummary(
            name=name,
            users=sums[name].users,
            metrics={m.name: _ratio(sums[name], m) for m in metrics.METRICS.values()},
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


class ResponseTime(BaseModel):
    """A variant's response times: descriptive only (not a user-level ratio, so not tested)."""

    model_config = ConfigDict(frozen=True)

    avg_ms: float | None
    p95_ms: float | None = Field(description="95th percentile, linear interpolation")
    searches: int = Field(description="searches with a response time")


class ExperimentResults(Report):
    """Every metric of every variant against the control, health and the decision
    (docs/STATISTICS.md); the fields after `status` are `stats.analysis.ExperimentResult`'s."""

    experiment: str
    status: ExperimentStatus
    method: Method
    alpha: float
    tuning: float = Field(
        description="N*: the total users where the sequential interval is tightest"
    )
    correction: Correction
    primary_metric: str
    control: str | None
    variants: tuple[VariantResult, ...]
    health: Health | None
    decision: Decision
    reason: str | None = Field(description="why there is nothing to compare, if so")
    outliers: OutlierRule | None
    response_time: dict[str, ResponseTime] = Field(
        description="per variant; empty when not asked for"
    )

    @classmethod
    def of(
        cls,
        result: ExperimentResult,
        status: ExperimentStatus,
        response_time: dict[str, ResponseTime],
    ) -> ExperimentResults:
        return cls(
            experiment=result.experiment,
            status=status,
            method=result.method,
            alpha=result.alpha,
            tuning=result.tuning,
            correction=result.correction,
            primary_metric=result.primary_metric,
            control=result.control,
            variants=result.variants,
            health=result.health,
            decision=result.decision,
            reason=result.reason,
            outliers=result.outliers,
            response_time=response_time,
        )

    def variant(self, name: str) -> VariantResult | None:
        return next((v for v in self.variants if v.name == name), None)


def experiment_results(
    store: EventStore,
    experiment: Experiment,
    since: datetime,
    method: Method = "sequential",
    *,
    response_time: bool = True,
) -> ExperimentResults:
    """Comparisons against the control, health and the decision over the events since
    `since`; with `response_time`, the variants' (descriptive) response times too."""
    summary = experiment_summary(store, experiment, since)
    result = analyze(summary, method=method, primary_metric=experiment.primary_metric)
    latency = store.latency(Filters(since=since), by=("variant",)) if response_time else {}
    return ExperimentResults.of(
        result,
        experiment.status,
        {
            name: ResponseTime(avg_ms=stats.mean, p95_ms=stats.p95, searches=stats.count)
            for (name,), stats in sorted(latency.items())
            if name in experiment.variants
        },
    )


class PrimaryMetric(BaseModel):
    """One variant on the primary metric; the comparison fields are None for the control."""

    model_config = ConfigDict(frozen=True)

    users: int
    estimate: float | None
    absolute_ci: tuple[float, float] | None
    relative: float | None
    relative_ci: tuple[float, float] | None
    p_value: float | None = Field(description="after the correction across variants")
    significant: bool | None


class DecisionBlock(Report):
    """The short form of `ExperimentResults`: the decision and the primary metric per variant."""

    experiment: str
    method: Method
    primary_metric: str
    control: str | None
    winner: str | None
    leader: str | None
    summary: str
    blocked_by: tuple[str, ...]
    health_passed: bool
    variants: dict[str, PrimaryMetric]


def decision_block(results: ExperimentResults) -> DecisionBlock:
    """The decision of `results` and each variant's primary metric."""
    primary = results.primary_metric
    variants: dict[str, PrimaryMetric] = {}
    for variant in results.variants:
        metric = variant.metrics.get(primary)
        c = None if metric is None else metric.comparison
        variants[variant.name] = PrimaryMetric(
            users=variant.users,
            estimate=None if metric is None else metric.estimate,
            absolute_ci=None if c is None else c.absolute_ci,
            relative=None if c is None else c.relative,
            relative_ci=None if c is None else c.relative_ci,
            p_value=None if c is None else c.p_value_adjusted,
            significant=None if c is None else c.significant,
        )
    decision = results.decision
    return DecisionBlock(
        experiment=results.experiment,
        method=results.method,
        primary_metric=primary,
        control=results.control,
        winner=decision.winner,
        leader=decision.leader,
        summary=decision.summary,
        blocked_by=decision.blocked_by,
        health_passed=results.health is not None and results.health.passed,
        variants=variants,
    )
