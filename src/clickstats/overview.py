"""The dashboard's figures: an overview of a period (totals, per variant, per day) and the
query and product tables, each computed from the store's aggregates.

The dashboard's period is whole days in the viewer's time zone: "7 days" is today and the six
days before it, from local midnight, so that every point of a daily series is a whole day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import Field

from clickstats.events import utcnow
from clickstats.reports.base import Report, ratio
from clickstats.stats.summary import METRICS
from clickstats.store import EventStore
from clickstats.store.base import (
    LATENCY_EDGES_MS,
    Filters,
    Grouping,
    LatencyStats,
    SearchTotals,
    TotalsOrder,
)
from clickstats.timezones import check_tz

MAX_LIMIT = 100


def definition(metric: str) -> str:
    """'search CTR: searches with at least one click / searches', from `METRICS`."""
    spec = METRICS[metric]
    return f"{spec.label}: {spec.x} / {spec.y}"


SEARCH_CTR = definition("search_ctr")
CLICKS_PER_SEARCH = definition("clicks_per_search") + " (an average, not a percentage)"


class DayFigures(Report):
    searches: int
    users: int
    clicked_searches: int
    clicks: int = Field(description="clicks on this day's searches")
    zero_results: int
    search_ctr: float | None = Field(description=SEARCH_CTR)
    zero_result_rate: float | None


class Figures(Report):
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


class DailySeries(Report):
    days: list[date] = Field(description="every day of the period in the time zone, oldest first")
    by_variant: dict[str, list[DayFigures]] = Field(description="one entry per day of `days`")


class LatencyBucket(Report):
    from_ms: float
    to_ms: float | None = Field(description="exclusive; null for the open-ended last bucket")
    count: int


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


class QueryFigures(Report):
    query: str
    searches: int
    users: int
    clicked_searches: int
    clicks: int
    search_ctr: float | None = Field(description=SEARCH_CTR)
    avg_click_position: float | None
    zero_results: int
    zero_result_rate: float | None
    no_click_searches: int = Field(description="searches with results and no click")


class ProductFigures(Report):
    product_id: str
    clicks: int
    users: int
    avg_click_position: float


class QueriesReport(Report):
    days: int
    variant: str | None
    user_id: str | None
    limit: int
    top_queries: list[QueryFigures]
    zero_result_queries: list[QueryFigures]
    no_click_queries: list[QueryFigures]
    top_products: list[ProductFigures]


def local_days(days: int, tz: str, now: datetime | None = None) -> list[date]:
    """The last `days` calendar days in `tz`, today last."""
    today = (now or utcnow()).astimezone(ZoneInfo(tz)).date()
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


def period(days: int, tz: str, user_id: str | None, variant: str | None) -> Filters:
    first = local_days(days, tz)[0]
    since = datetime.combine(first, time(), tzinfo=ZoneInfo(tz))
    return Filters(since=since, user_id=user_id, variant=variant)


def _figures(t: SearchTotals, latency: LatencyStats) -> Figures:
    return Figures(
        searches=t.searches,
        users=t.users,
        clicked_searches=t.clicked_searches,
        clicks=t.clicks,
        search_ctr=ratio(t.clicked_searches, t.searches),
        clicks_per_search=ratio(t.clicks, t.searches),
        avg_click_position=t.rank_sum / t.clicks if t.clicks else None,
        zero_results=t.zero_results,
        zero_result_rate=ratio(t.zero_results, t.searches),
        abandonment_rate=ratio(t.abandoned, t.searches - t.zero_results),
        avg_response_ms=latency.mean,
        p95_response_ms=latency.p95,
    )


def _day(t: SearchTotals) -> DayFigures:
    return DayFigures(
        searches=t.searches,
        users=t.users,
        clicked_searches=t.clicked_searches,
        clicks=t.clicks,
        zero_results=t.zero_results,
        search_ctr=ratio(t.clicked_searches, t.searches),
        zero_result_rate=ratio(t.zero_results, t.searches),
    )


def overview(
    store: EventStore,
    days: int,
    tz: str = "UTC",
    variant: str | None = None,
    user_id: str | None = None,
) -> Overview:
    check_tz(tz)
    f = period(days, tz, user_id, variant)
    calendar = local_days(days, tz)
    totals, per_variant, per_day = store.search_totals_many(
        f, [Grouping(), Grouping(by=("variant",)), Grouping(by=("day", "variant"), tz=tz)]
    )
    latency = store.latency_by_variant(f)
    by_variant = {
        name: _figures(t, latency.get(name, LatencyStats())) for (name,), t in per_variant.items()
    }
    all_ranks = store.rank_histogram(f)
    daily = {
        name: [_day(per_day.get((d.isoformat(), name), SearchTotals())) for d in calendar]
        for name in by_variant
    }
    histogram = store.latency_histogram(f)
    uppers: list[float | None] = [*LATENCY_EDGES_MS[1:], None]
    return Overview(
        days=days,
        tz=tz,
        since=f.since.astimezone(UTC),
        until=utcnow(),
        variant=variant,
        user_id=user_id,
        totals=_figures(totals.get((), SearchTotals()), store.latency(f)),
        by_variant=by_variant,
        daily=DailySeries(days=calendar, by_variant=daily),
        clicks_by_rank={str(rank): all_ranks[rank] for rank in sorted(all_ranks)},
        latency_histogram=[
            LatencyBucket(from_ms=edge, to_ms=upper, count=histogram.get(edge, 0))
            for edge, upper in zip(LATENCY_EDGES_MS, uppers, strict=True)
        ],
    )


def _query(query: str, t: SearchTotals) -> QueryFigures:
    return QueryFigures(
        query=query,
        searches=t.searches,
        users=t.users,
        clicked_searches=t.clicked_searches,
        clicks=t.clicks,
        search_ctr=ratio(t.clicked_searches, t.searches),
        avg_click_position=t.rank_sum / t.clicks if t.clicks else None,
        zero_results=t.zero_results,
        zero_result_rate=ratio(t.zero_results, t.searches),
        no_click_searches=t.abandoned,
    )


def queries(
    store: EventStore,
    days: int,
    limit: int = 20,
    variant: str | None = None,
    user_id: str | None = None,
    tz: str = "UTC",
) -> QueriesReport:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    f = period(days, check_tz(tz), user_id, variant)

    orders: tuple[TotalsOrder, ...] = ("searches", "zero_results", "abandoned")
    groupings = [Grouping(by=("query",), order=order, top=limit) for order in orders]
    top, zero, no_click = (
        [_query(q, t) for (q,), t in groups.items()]
        for groups in store.search_totals_many(f, groupings)
    )
    return QueriesReport(
        days=days,
        variant=variant,
        user_id=user_id,
        limit=limit,
        top_queries=top,
        zero_result_queries=zero,
        no_click_queries=no_click,
        top_products=[
            ProductFigures(
                product_id=p.product_id,
                clicks=p.clicks,
                users=p.users,
                avg_click_position=p.rank_sum / p.clicks,
            )
            for p in store.top_products(f, limit)
        ],
    )
