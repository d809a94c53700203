"""The dashboard's overview of a period: totals, per variant, per day, clicks by rank, a
latency histogram and the period's conversions and revenue, from the store's aggregates.

The dashboard's period is whole days in the viewer's time zone: "7 days" is today and the six
days before it, from local midnight, so that every point of a daily series is a whole day.

The metric fields of the figures come from the registry (`clickstats.metrics.METRICS`): those
the models declare are computed by `metrics.ratio` over the summed columns, and a dashboard
metric the models do not declare (one added to the registry later) is added to every figure as
an extra field, so that it reaches /analytics/overview (and /analytics/queries) without an edit.

Revenue is an amount in one currency: the figures' `revenue` and `revenue_per_search` are in the
overview's currency (the one asked for, else the one of most purchases in the period), and the
conversions section gives every currency its own figures; amounts in different currencies are
never added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ConfigDict, Field

from clickstats import metrics
from clickstats.events import utcnow
from clickstats.reports.base import Report, cached
from clickstats.reports.conversions import Conversions, by_day, conversions, default_currency
from clickstats.store.base import (
    LATENCY_EDGES_MS,
    ActionTotal,
    EventStore,
    Filters,
    Grouping,
    Key,
    LatencyStats,
    RankHistogram,
    SearchTotals,
)
from clickstats.timezones import check_tz


def definition(metric: str) -> str:
    """'search CTR: searches with at least one click / searches', from the registry."""
    return metrics.METRICS[metric].definition


SEARCH_CTR = definition("search_ctr")
CLICKS_PER_SEARCH = definition("clicks_per_search") + " (an average, not a percentage)"
CONVERSION_RATE = definition("conversion_rate")
REVENUE_PER_SEARCH = definition("revenue_per_search") + " (in the answer's `currency`)"
CONVERTED_SEARCHES = metrics.COLUMNS["converted_searches"].description
REVENUE = (
    "revenue of the purchases attributed to these searches, in the answer's `currency` (0 "
    "without one)"
)


class Figures(Report):
    """Figures of a group of searches. Besides the declared fields, one field per dashboard
    metric of the registry that is not declared here (a metric added later), after them."""

    model_config = ConfigDict(extra="allow")

    searches: int
    users: int
    clicked_searches: int = Field(description="searches with at least one click")
    clicks: int = Field(description="clicks on these searches (linked by search_id)")
    search_ctr: float | None = Field(description=SEARCH_CTR)
    clicks_per_search: float | None = Field(description=CLICKS_PER_SEARCH)
    avg_click_position: float | None = Field(description="mean rank of those clicks")
    zero_results: int
    zero_result_rate: float | None
    abandonment_rate: float | None = Field(description="searches with results and no click")
    avg_response_ms: float | None
    p95_response_ms: float | None
    conversion_rate: float | None = Field(description=CONVERSION_RATE)
    revenue_per_search: float | None = Field(description=REVENUE_PER_SEARCH)
    converted_searches: int = Field(description=CONVERTED_SEARCHES)
    revenue: float = Field(description=REVENUE)


class DayFigures(Report):
    """One day's figures (and, as in Figures, the registry's undeclared dashboard metrics)."""

    model_config = ConfigDict(extra="allow")

    searches: int
    users: int
    clicked_searches: int
    clicks: int = Field(description="clicks on this day's searches")
    zero_results: int
    search_ctr: float | None = Field(description=SEARCH_CTR)
    zero_result_rate: float | None
    conversion_rate: float | None = Field(description=CONVERSION_RATE)
    revenue_per_search: float | None = Field(description=REVENUE_PER_SEARCH)


def added_metrics() -> list[metrics.Metric]:
    """The registry's dashboard metrics that the figures do not declare (added later), in
    registry order: each is an extra field of every figure."""
    return [
        m for m in metrics.METRICS.values() if m.dashboard and m.name not in Figures.model_fields
    ]


def sums(t: SearchTotals) -> dict[str, int | float]:
    """Every column search totals sum (0 for a column an empty group lacks)."""
    return {name: t[name] for name in metrics.columns(dashboard=True)}


def metric_fields(t: SearchTotals, model: type[Report]) -> dict[str, float | None]:
    """The model's declared metric fields and the added dashboard metrics, from the registry."""
    s = sums(t)
    declared = [m for m in metrics.METRICS.values() if m.name in model.model_fields]
    return {m.name: metrics.ratio(s, m) for m in [*declared, *added_metrics()]}


def figures(t: SearchTotals, latency: LatencyStats) -> Figures:
    return Figures(
        searches=t.searches,
        users=t.users,
        clicked_searches=int(t["clicked_searches"]),
        clicks=int(t["clicks"]),
        zero_results=int(t["zero_results"]),
        avg_response_ms=latency.mean,
        p95_response_ms=latency.p95,
        converted_searches=int(t["converted_searches"]),
        revenue=float(t["revenue"]),
        **metric_fields(t, Figures),
    )


def day_figures(t: SearchTotals) -> DayFigures:
    return DayFigures(
        searches=t.searches,
        users=t.users,
        clicked_searches=int(t["clicked_searches"]),
        clicks=int(t["clicks"]),
        zero_results=int(t["zero_results"]),
        **metric_fields(t, DayFigures),
    )


class DailySeries(Report):
    days: list[date] = Field(description="every day of the period in the time zone, oldest first")
    by_variant: dict[str, list[DayFigures]] = Field(description="one entry per day of `days`")


class LatencyBucket(Report):
    from_ms: float
    to_ms: float | None = Field(description="exclusive; null for the open-ended last bucket")
    count: int


class ActionFigures(Report):
    """The period's actions of one name (views, hovers, UBI's other action names)."""

    name: str
    events: int
    users: int = Field(description="distinct users who did it")
    products: int = Field(description="distinct products it named")


class Overview(Report):
    days: int
    tz: str
    since: datetime = Field(description="local midnight starting the period, in UTC")
    until: datetime
    variant: str | None
    user_id: str | None
    totals: Figures
    by_variant: dict[str, Figures]
    daily: DailySeries
    clicks_by_rank: dict[str, int] = Field(
        description="every click of the period by rank, as /analytics/rank-metrics counts them"
    )
    latency_histogram: list[LatencyBucket]
    currency: str | None = Field(
        description="ISO 4217 code of the figures' revenue and revenue per search: the one "
        "asked for, else the currency of most purchases in the period (ties: the first "
        "alphabetically); null when no purchase of the period has one (no revenue is counted)"
    )
    conversions: Conversions = Field(
        description="the period's conversions and revenue, per currency, per variant and "
        "currency, and revenue per day"
    )
    actions: list[ActionFigures] = Field(
        default_factory=list,
        description="the period's other actions (product views, and any action name a client "
        "sends, e.g. through UBI) per name, most first; with a variant, those linked to a "
        "search of that variant",
    )


@dataclass(frozen=True, slots=True)
class Period:
    """The query of the overview and the queries tables: the last `days` whole days in the
    IANA time zone `tz`, optionally one variant's or one user's events; revenue in `currency`
    (None: the currency of most purchases in the period, `currency_of`)."""

    days: int
    tz: str = "UTC"
    variant: str | None = None
    user_id: str | None = None
    currency: str | None = None

    def filters(self, now: datetime | None = None) -> Filters:
        """The period's filters, with the currency asked for (None when none was)."""
        first = local_days(self.days, check_tz(self.tz), now)[0]
        since = datetime.combine(first, time(), tzinfo=ZoneInfo(self.tz))
        return Filters(
            since=since, user_id=self.user_id, variant=self.variant, currency=self.currency
        )


def currency_of(store: EventStore, query: Period, f: Filters) -> Filters:
    """`f` in the currency asked for, else in the currency of most purchases in the period."""
    if f.currency is not None:
        return f
    return replace(f, currency=default_currency(by_day(store, f, query.tz)))


def local_days(days: int, tz: str, now: datetime | None = None) -> list[date]:
    """The last `days` calendar days in `tz`, today last."""
    today = (now or utcnow()).astimezone(ZoneInfo(tz)).date()
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


def period(days: int, tz: str, user_id: str | None, variant: str | None) -> Filters:
    return Period(days, tz, variant, user_id).filters()


@dataclass(frozen=True, slots=True)
class _Aggregates:
    totals: Mapping[Key, SearchTotals]
    per_variant: Mapping[Key, SearchTotals]
    per_day: Mapping[Key, SearchTotals]
    latency: LatencyStats
    latency_by_variant: Mapping[Key, LatencyStats]
    ranks: RankHistogram
    histogram: dict[float, int]
    actions: list[ActionTotal]


def _aggregates(store: EventStore, f: Filters, tz: str) -> _Aggregates:
    totals, per_variant, per_day = store.search_totals_many(
        f, [Grouping(), Grouping(by=("variant",)), Grouping(by=("day", "variant"), tz=tz)]
    )
    return _Aggregates(
        totals=totals,
        per_variant=per_variant,
        per_day=per_day,
        latency=store.latency(f).get((), LatencyStats()),
        latency_by_variant=store.latency(f, by=("variant",)),
        ranks=store.rank_histogram(f).get((), {}),
        histogram=store.latency_histogram(f),
        actions=store.action_totals(f),
    )


def overview(store: EventStore, query: Period) -> Overview:
    f = currency_of(store, query, query.filters())
    calendar = local_days(query.days, query.tz)
    # The columns are part of the key: a metric added to the registry is a new aggregate.
    key: tuple[Any, ...] = ("overview", f, query.tz, tuple(metrics.columns()))
    a = cached(store, key, lambda: _aggregates(store, f, query.tz))
    by_variant = {
        name: figures(t, a.latency_by_variant.get((name,), LatencyStats()))
        for (name,), t in a.per_variant.items()
    }
    daily = {
        name: [day_figures(a.per_day.get((d.isoformat(), name), SearchTotals())) for d in calendar]
        for name in by_variant
    }
    uppers: list[float | None] = [*LATENCY_EDGES_MS[1:], None]
    searches = {**a.totals, **a.per_variant}
    return Overview(
        days=query.days,
        tz=query.tz,
        since=f.since.astimezone(UTC),
        until=utcnow(),
        variant=query.variant,
        user_id=query.user_id,
        totals=figures(a.totals.get((), SearchTotals()), a.latency),
        by_variant=by_variant,
        daily=DailySeries(days=calendar, by_variant=daily),
        clicks_by_rank={str(rank): a.ranks[rank] for rank in sorted(a.ranks)},
        latency_histogram=[
            LatencyBucket(from_ms=edge, to_ms=upper, count=a.histogram.get(edge, 0))
            for edge, upper in zip(LATENCY_EDGES_MS, uppers, strict=True)
        ],
        currency=f.currency,
        conversions=conversions(store, f, query.tz, calendar, searches),
        actions=[
            ActionFigures(name=t.name, events=t.events, users=t.users, products=t.products)
            for t in a.actions
        ],
    )
