"""An A/B experiment's results: the store's per-user sums become summaries, the statistics decide.

The store reduces an experiment's events to per-variant sums over users (one aggregate query,
on any backend), one set of sums per column of the metric registry (`clickstats.metrics`);
`clickstats.stats.analysis.analyze` turns them into comparisons, health checks and a decision.
The answer is `ExperimentResults`, the response model of /experiments/{name}/results; its
short form, `DecisionBlock`, is the `stats` of /analytics/variants-comparison.

The experiment's settings become the store's `SumOptions`: the currency of the revenue metrics,
the caps of heavy-tailed columns (`Experiment.column_caps`), and CUPED's pre-exposure sums for
the numerators of per-user means. The results say, per metric, the cap used and whether CUPED
was applied (`MetricAdjustments`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from clickstats import metrics
from clickstats.experiments import Experiment, ExperimentStatus
from clickstats.reports.base import Report, cached
from clickstats.stats import capping, cuped, outliers
from clickstats.stats.analysis import ExperimentResult, Health, VariantResult, analyze
from clickstats.stats.capping import CapSpec
from clickstats.stats.decision import Decision
from clickstats.stats.multiple import Correction
from clickstats.stats.outliers import OutlierRule
from clickstats.stats.summary import ExperimentSummary, PreSummary, RatioSummary, VariantSummary
from clickstats.store.base import EventStore, Filters, SumOptions, UserSums

#: How the comparisons are tested: sequential (valid however often it is read) or fixed.
Method = Literal["sequential", "fixed"]

__all__ = [
    "CapUsed",
    "CupedUsed",
    "DecisionBlock",
    "ExperimentResults",
    "Method",
    "MetricAdjustments",
    "PrimaryMetric",
    "ResponseTime",
    "analysis_currency",
    "decision_block",
    "experiment_results",
    "experiment_summary",
    "sum_options",
    "user_sums",
    "window",
]


def window(f: Filters) -> datetime:
    """An experiment's window starts on a whole minute: stable for a minute, so that repeated
    reads can share one aggregate."""
    return f.since.replace(second=0, microsecond=0)


def _ratio(sums: UserSums, metric: metrics.Metric) -> RatioSummary:
    x, y = metric.numerator, metric.denominator
    pre = sums.pre.get(x)
    return RatioSummary(
        users=sums.users,
        sum_x=sums.sums[x],
        sum_y=sums.sums[y],
        sum_x2=sums.squares[x],
        sum_y2=sums.squares[y],
        sum_xy=sums.products[x, y],
        pre=None if pre is None else PreSummary(pre.users, pre.sum, pre.squares, pre.products),
        cap=sums.caps.get(x),
    )


def is_per_user_mean(metric: metrics.Metric) -> bool:
    """A per-user mean: its denominator is 1 per user (revenue per user). CUPED applies."""
    column = metrics.COLUMNS.get(metric.denominator)
    return column is not None and column.per_user


def sum_options(experiment: Experiment, currency: str | None) -> SumOptions | None:
    """What the store sums beyond the plain sums for `experiment`: the revenue currency, the
    caps of the columns it computes, CUPED's pre-exposure sums of the per-user means'
    numerators; None when that is nothing (the plain sums)."""
    computed = metrics.columns()
    caps = experiment.column_caps()
    # Without a currency no revenue is counted: its pre-exposure sums would be zeros, and on
    # millions of searches they are a second pass over the history (a third of the read).
    pre = (
        sorted(
            {
                m.numerator
                for m in metrics.METRICS.values()
                if is_per_user_mean(m) and (currency is not None or not m.currency)
            }
        )
        if experiment.cuped
        else []
    )
    options = SumOptions(
        currency=currency,
        caps=tuple((c, caps[c]) for c in computed if c in caps),
        pre_days=experiment.cuped_days if pre else 0,
        pre_columns=tuple(pre),
    )
    return None if options == SumOptions() else options


def analysis_currency(store: EventStore, experiment: Experiment, since: datetime) -> str | None:
    """The currency of the revenue metrics: the experiment's (`Experiment.currency`), else the
    currency of most purchases in the window (ties: the first in alphabetical order); None when
    no purchase has one (then no revenue is counted)."""
    if experiment.currency is not None:
        return experiment.currency
    key = ("purchases_by_currency", since)
    totals = cached(store, key, lambda: store.conversion_totals(Filters(since=since)))
    purchases = {currency: t.purchases for (currency,), t in totals.items() if currency}
    best = max(purchases.values(), default=0)
    return min(c for c, n in purchases.items() if n == best) if best else None


def user_sums(
    store: EventStore,
    since: datetime,
    variants: list[str],
    max_searches: int | None = None,
    options: SumOptions | None = None,
) -> dict[str, UserSums]:
    """`store.user_sums`, reused while the store takes no write: the per-user aggregate is the
    one expensive query of an analysis (about 1.6 s over 10M impressions), and a dashboard or
    several methods read it repeatedly. The registry is part of the key: a metric added at run
    time (a test) is summed at once."""
    key = (
        "user_sums",
        tuple(variants),
        since,
        max_searches,
        options,
        tuple(metrics.METRICS.values()),
    )
    return cached(store, key, lambda: store.user_sums(since, variants, max_searches, options))


def experiment_summary(
    store: EventStore, experiment: Experiment, since: datetime, currency: str | None = None
) -> ExperimentSummary:
    """The experiment's sufficient statistics, one `RatioSummary` per metric of the registry
    (variants without users are left out), after leaving out the users the outlier rule finds
    (`clickstats.stats.outliers`); revenue in `currency`, capped and with CUPED's sums as the
    experiment says (`sum_options`)."""
    names = list(experiment.variants)
    histograms = store.searches_per_user(since, names)
    rule = outliers.apply({name: histograms.get(name, {}) for name in names}, experiment.outlier_z)
    sums = user_sums(
        store,
        since,
        names,
        rule.max_searches if rule.total_excluded else None,
        sum_options(experiment, currency),
    )
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


class CapUsed(BaseModel):
    """The cap applied to each user's value of a metric's numerator before it was summed."""

    model_config = ConfigDict(frozen=True)

    column: str
    setting: CapSpec = Field(description='as configured: "p99" (a percentile) or a number')
    source: Literal["default", "experiment"] = Field(
        description="the registry's default, or the experiment's `caps`"
    )
    value: float = Field(description="the cap applied, in the column's unit")
    label: str = Field(description='in words, e.g. "p99 = 123.4 EUR"')


class CupedUsed(BaseModel):
    """CUPED on one metric: whether it was applied (to every comparison it could), and why not."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = Field(description="the experiment's `cuped`")
    applied: bool
    pre_days: int = Field(description="days before each user's first exposure it reads")
    users_with_history: dict[str, int] = Field(
        description="per variant: users with a search in their pre-exposure window"
    )
    theta: dict[str, float] = Field(
        description="per treatment it was applied to: the coefficient, pooled with the control"
    )
    reason: str | None = Field(description="why it was not applied, if so")


class MetricAdjustments(BaseModel):
    """What was done to a metric's per-user values before the comparison."""

    model_config = ConfigDict(frozen=True)

    cap: CapUsed | None = Field(description="null: not capped")
    cuped: CupedUsed


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
    currency: str | None = Field(
        description="ISO 4217 code of the revenue metrics; null: no revenue was counted"
    )
    adjustments: dict[str, MetricAdjustments] = Field(
        description="per metric: the cap and CUPED (docs/STATISTICS.md)"
    )

    @classmethod
    def of(
        cls,
        result: ExperimentResult,
        status: ExperimentStatus,
        response_time: dict[str, ResponseTime],
        currency: str | None = None,
        adjustments: dict[str, MetricAdjustments] | None = None,
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
            currency=currency,
            adjustments=adjustments or {},
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
    currency = analysis_currency(store, experiment, since)
    summary = experiment_summary(store, experiment, since, currency)
    result = analyze(
        summary, method=method, primary_metric=experiment.primary_metric, currency=currency
    )
    latency = store.latency(Filters(since=since), by=("variant",)) if response_time else {}
    return ExperimentResults.of(
        result,
        experiment.status,
        {
            name: ResponseTime(avg_ms=stats.mean, p95_ms=stats.p95, searches=stats.count)
            for (name,), stats in sorted(latency.items())
            if name in experiment.variants
        },
        currency,
        adjustments(experiment, summary, result, currency),
    )


def adjustments(
    experiment: Experiment,
    summary: ExperimentSummary,
    result: ExperimentResult,
    currency: str | None,
) -> dict[str, MetricAdjustments]:
    """Per metric of the results: the cap used and CUPED, in the registry's order."""
    names = [name for v in result.variants for name in v.metrics]
    return {
        name: MetricAdjustments(
            cap=_cap_used(experiment, summary, name, currency),
            cuped=_cuped_used(experiment, summary, result, name, currency),
        )
        for name in dict.fromkeys(names)
    }


def _cap_used(
    experiment: Experiment, summary: ExperimentSummary, name: str, currency: str | None
) -> CapUsed | None:
    metric = metrics.METRICS.get(name)
    if metric is None:
        return None
    column = metric.numerator
    cap = experiment.column_caps().get(column)
    value = next(
        (s.cap for v in summary.variants if (s := v.metrics.get(name)) and s.cap is not None),
        None,
    )
    if cap is None or value is None:
        return None
    named = {column, *(m.name for m in metrics.METRICS.values() if m.numerator == column)}
    return CapUsed(
        column=column,
        setting=capping.spec(cap),
        source="experiment" if named & set(experiment.caps) else "default",
        value=value,
        label=capping.describe(cap, value, currency if metric.currency else None),
    )


def _cuped_used(
    experiment: Experiment,
    summary: ExperimentSummary,
    result: ExperimentResult,
    name: str,
    currency: str | None,
) -> CupedUsed:
    metric = metrics.METRICS.get(name)
    history = {
        v.name: s.pre.users_with_history
        for v in summary.variants
        if (s := v.metrics.get(name)) is not None and s.pre is not None
    }
    fits = {
        v.name: c.cuped
        for v in result.variants
        if (m := v.metrics.get(name)) is not None
        and (c := m.comparison) is not None
        and c.cuped is not None
    }
    theta = {n: f.theta for n, f in fits.items() if f.applied and f.theta is not None}
    reason = None
    if not experiment.cuped:
        reason = "CUPED is off for this experiment"
    elif not theta and metric is not None and metric.currency and currency is None:
        reason = "no revenue is counted: no purchase in the window names a currency"
    elif not theta:
        # a ratio whose users all have y = 1 (one search each) is a mean, and is adjusted
        fallback = (
            cuped.RATIO_REASON
            if metric is None or not is_per_user_mean(metric)
            else "no comparison yet: nothing to adjust"
        )
        reason = next((f.reason for f in fits.values() if f.reason), fallback)
    return CupedUsed(
        enabled=experiment.cuped,
        applied=bool(theta),
        pre_days=experiment.cuped_days,
        users_with_history=history,
        theta=theta,
        reason=reason,
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
