"""The original design's reports (/analytics/ctr, rank-metrics, response-time,
variants-comparison, reset), what logging an event answers, and the metric registry as served
by /analytics/metrics: each report a function of the store and a typed query (`Filters`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from clickstats import metrics
from clickstats.reports.base import Report, cached, ratio
from clickstats.reports.experiment import DecisionBlock
from clickstats.stats.ranks import summarize_ranks
from clickstats.store.base import Counts, EventStore, Filters, Key, LatencyStats


class LogResult(Report):
    status: Literal["success", "dropped_bot"] = Field(
        "success",
        description="success: stored; dropped_bot: sent by a known crawler, not stored "
        "(docs/SECURITY.md, Bots)",
    )
    event_id: str
    timestamp: datetime
    duplicate: bool = Field(
        False, description="true when an event with this event_id was already stored"
    )
    search_id: str | None = Field(
        None, description="the impression's search id (for a click: the one it cites, if any)"
    )


CLICKS_PER_SEARCH = (
    "clicks per search: clicks / impressions (named `ctr` as in the original design, kept for "
    "compatibility; not search CTR, the share of searches with a click); null without "
    "impressions"
)


class VariantCtr(Report):
    ctr: float | None = Field(description=CLICKS_PER_SEARCH)
    clicks: int
    impressions: int


class CtrReport(Report):
    ctr: float | None = Field(description=CLICKS_PER_SEARCH)
    total_clicks: int
    total_impressions: int
    by_variant: dict[str, VariantCtr]


class RankReport(Report):
    avg_rank: float | None
    median_rank: float | None
    min_rank: int | None
    max_rank: int | None
    clicks_by_rank: dict[str, int] = Field(description='{"1": clicks at rank 1, ...}')
    total_clicks: int


class ResponseTimeReport(Report):
    avg_ms: float | None
    min_ms: float | None
    max_ms: float | None
    p95_ms: float | None = Field(description="95th percentile, linear interpolation")
    count: int = Field(description="searches with a response time")


class UserSummary(Report):
    user_id: str
    days: int
    impressions: int
    clicks: int
    ctr: float | None = Field(description=CLICKS_PER_SEARCH)
    avg_rank: float | None
    response_time: ResponseTimeReport
    by_variant: dict[str, VariantCtr]
    first_seen: datetime | None
    last_seen: datetime | None


class VariantStats(Report):
    impressions: int
    clicks: int
    ctr: float | None = Field(description=CLICKS_PER_SEARCH)
    avg_rank: float | None
    avg_response_ms: float | None
    p95_response_ms: float | None


class VariantComparison(Report):
    days: int
    variants: dict[str, VariantStats]
    winner: str | None = Field(
        description="the experiment's decision, as stats.winner: a variant only when its "
        "improvement in the primary metric is significant and the health checks pass; null "
        "otherwise, however far apart the variants are"
    )
    leader: str | None = Field(
        description="the variant with the strictly most clicks per search (`ctr`); null without "
        "data or on a "
        "tie (what `winner` meant before; it names a leader in A/A tests too)"
    )
    stats: DecisionBlock | None = Field(
        None,
        description="the experiment's decision: a winner only when its improvement in the "
        "primary metric is significant at the user level and the health checks pass",
    )


class ResetReport(Report):
    status: Literal["success"] = "success"
    deleted_clicks: int
    deleted_impressions: int
    deleted_conversions: int = 0
    deleted_actions: int = 0


class MetricInfo(Report):
    """One metric of the registry (clickstats.metrics): what it is and how it reads."""

    name: str
    label: str
    definition: str = Field(description="'label: x / y', as docs/STATISTICS.md says it")
    x: str = Field(description="per user x: what is summed over a user's searches")
    y: str = Field(description="per user y")
    unit: str = Field(description="one unit of y, in words ('search')")
    percent: bool = Field(description="a rate, shown as a percentage")
    higher_is_better: bool
    dashboard: bool = Field(
        description="shown in the dashboard's figures (a field of /analytics/overview's figures)"
    )
    currency: bool = Field(
        False,
        description="an amount in the report's currency (revenue): never added across currencies",
    )


class MetricsReport(Report):
    metrics: list[MetricInfo] = Field(description="every metric, in the order reports show them")


def metric_registry() -> MetricsReport:
    """The registry as it is now (a metric added to it is served too)."""
    return MetricsReport(
        metrics=[
            MetricInfo(
                name=m.name,
                label=m.label,
                definition=m.definition,
                x=m.x,
                y=m.y,
                unit=m.unit,
                percent=m.percent,
                higher_is_better=m.higher_is_better,
                dashboard=m.dashboard,
                currency=m.currency,
            )
            for m in metrics.METRICS.values()
        ]
    )


# -- the reports ----------------------------------------------------------------------------------


def variant_ctr(counts: Counts) -> VariantCtr:
    return VariantCtr(
        ctr=ratio(counts.clicks, counts.impressions),
        clicks=counts.clicks,
        impressions=counts.impressions,
    )


def response_time_report(stats: LatencyStats) -> ResponseTimeReport:
    return ResponseTimeReport(
        avg_ms=stats.mean,
        min_ms=stats.minimum,
        max_ms=stats.maximum,
        p95_ms=stats.p95,
        count=stats.count,
    )


def counts_by_variant(store: EventStore, f: Filters) -> dict[str, Counts]:
    """Impressions and clicks per variant (cached: the CTR and the user summary share it)."""
    per: Mapping[Key, Counts] = cached(
        store, ("counts", f, "variant"), lambda: store.counts(f, by=("variant",))
    )
    return {name: c for (name,), c in per.items()}


def ctr(store: EventStore, f: Filters) -> CtrReport:
    per_variant = counts_by_variant(store, f)
    clicks = sum(c.clicks for c in per_variant.values())
    impressions = sum(c.impressions for c in per_variant.values())
    return CtrReport(
        ctr=ratio(clicks, impressions),
        total_clicks=clicks,
        total_impressions=impressions,
        by_variant={v: variant_ctr(c) for v, c in sorted(per_variant.items())},
    )


def rank_metrics(store: EventStore, f: Filters) -> RankReport:
    histogram = cached(store, ("ranks", f), lambda: store.rank_histogram(f)).get((), {})
    summary = summarize_ranks(histogram)
    return RankReport(
        avg_rank=summary.mean,
        median_rank=summary.median,
        min_rank=summary.minimum,
        max_rank=summary.maximum,
        clicks_by_rank={str(rank): histogram[rank] for rank in sorted(histogram)},
        total_clicks=summary.total,
    )


def response_time(store: EventStore, f: Filters) -> ResponseTimeReport:
    stats = cached(store, ("latency", f), lambda: store.latency(f)).get((), LatencyStats())
    return response_time_report(stats)


def pick_leader(ctr_by_variant: Mapping[str, float | None]) -> str | None:
    """The variant with the strictly highest CTR; None without data or on a tie."""
    rates = sorted(((c, v) for v, c in ctr_by_variant.items() if c is not None), reverse=True)
    if not rates or (len(rates) > 1 and rates[0][0] == rates[1][0]):
        return None
    return rates[0][1]


def variants_comparison(
    store: EventStore, f: Filters, days: int, stats: DecisionBlock
) -> VariantComparison:
    """Per-variant figures over `f`; `stats` is the experiment's decision block (computed by
    the experiment report), whose winner is the answer's."""

    def compute() -> tuple[Mapping[Key, Counts], Mapping[Key, Any], Mapping[Key, LatencyStats]]:
        by: tuple[Literal["variant"]] = ("variant",)
        return store.counts(f, by=by), store.rank_histogram(f, by=by), store.latency(f, by=by)

    counts, ranks, latency = cached(store, ("variants-comparison", f), compute)
    variants: dict[str, VariantStats] = {}
    for (name,) in sorted(counts):
        c = counts[(name,)]
        lat = latency.get((name,), LatencyStats())
        variants[name] = VariantStats(
            impressions=c.impressions,
            clicks=c.clicks,
            ctr=ratio(c.clicks, c.impressions),
            avg_rank=summarize_ranks(ranks.get((name,), {})).mean,
            avg_response_ms=lat.mean,
            p95_response_ms=lat.p95,
        )
    return VariantComparison(
        days=days,
        variants=variants,
        # One answer, one verdict: the top-level winner is the decision's, never a CTR lead
        # the statistics have not confirmed.
        winner=stats.winner,
        leader=pick_leader({name: v.ctr for name, v in variants.items()}),
        stats=stats,
    )
