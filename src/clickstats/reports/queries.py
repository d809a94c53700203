"""The dashboard's query and product tables: top, zero-result and no-click queries, the queries
that earn the most revenue and those with the most clicks that led to no conversion, with their
figures (metric fields from the registry, as in the overview), and the most clicked products.
Revenue is in one currency, chosen as the overview's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ConfigDict, Field

from clickstats import metrics
from clickstats.reports.base import Report, cached
from clickstats.reports.overview import (
    CONVERSION_RATE,
    CONVERTED_SEARCHES,
    REVENUE,
    REVENUE_PER_SEARCH,
    SEARCH_CTR,
    Period,
    currency_of,
    metric_fields,
)
from clickstats.store.base import EventStore, Grouping, SearchTotals, TotalsOrder

MAX_LIMIT = 100


class QueryFigures(Report):
    """One query's figures; besides the declared fields, one field per dashboard metric of the
    registry that the overview's figures do not declare (a metric added later)."""

    model_config = ConfigDict(extra="allow")

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
    conversion_rate: float | None = Field(description=CONVERSION_RATE)
    revenue_per_search: float | None = Field(description=REVENUE_PER_SEARCH)
    converted_searches: int = Field(description=CONVERTED_SEARCHES)
    revenue: float = Field(description=REVENUE)
    unconverted_clicks: int = Field(description=metrics.COLUMNS["unconverted_clicks"].description)


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
    currency: str | None = Field(
        description="ISO 4217 code of every revenue figure, chosen as the overview's: the one "
        "asked for, else the currency of most purchases in the period; null: no revenue"
    )
    revenue_queries: list[QueryFigures] = Field(
        description="the queries whose searches earned the most revenue (purchases attributed "
        "to them, in `currency`), most first; those without revenue left out"
    )
    unconverted_queries: list[QueryFigures] = Field(
        description="the queries with the most clicks on searches that led to no conversion "
        "(`unconverted_clicks`), most first"
    )


@dataclass(frozen=True, slots=True)
class QueriesQuery:
    """The tables' period (as the overview's) and how many rows each table has."""

    period: Period
    limit: int = 20

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {self.limit}")


def query_figures(query: str, t: SearchTotals) -> QueryFigures:
    return QueryFigures(
        query=query,
        searches=t.searches,
        users=t.users,
        clicked_searches=int(t["clicked_searches"]),
        clicks=int(t["clicks"]),
        zero_results=int(t["zero_results"]),
        no_click_searches=int(t["abandoned"]),
        converted_searches=int(t["converted_searches"]),
        revenue=float(t["revenue"]),
        unconverted_clicks=int(t["unconverted_clicks"]),
        **metric_fields(t, QueryFigures),
    )


ORDERS: tuple[TotalsOrder, ...] = (
    "searches", "zero_results", "abandoned", "revenue", "unconverted_clicks",
)  # fmt: skip


def queries(store: EventStore, q: QueriesQuery) -> QueriesReport:
    f = currency_of(store, q.period, q.period.filters())
    groupings = [Grouping(by=("query",), order=order, top=q.limit) for order in ORDERS]
    key: tuple[Any, ...] = ("queries", f, q.limit, tuple(metrics.columns()))
    groups, products = cached(
        store,
        key,
        lambda: (store.search_totals_many(f, groupings), store.top_products(f, q.limit)),
    )
    top, zero, no_click, revenue, unconverted = (
        [query_figures(name, t) for (name,), t in g.items()] for g in groups
    )
    return QueriesReport(
        days=q.period.days,
        variant=q.period.variant,
        user_id=q.period.user_id,
        limit=q.limit,
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
            for p in products
        ],
        currency=f.currency,
        revenue_queries=revenue,
        unconverted_queries=unconverted,
    )
