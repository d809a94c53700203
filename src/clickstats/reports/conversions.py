"""The conversions of a period, per currency: what the overview's `conversions` section says.

Two aggregates meet here. `store.conversion_totals` counts the conversions made in the period
(by their own time), attributed to a search or not, per variant of that search, day and
currency. `store.search_totals` counts the revenue of the purchases attributed to the period's
searches (the registry's `revenue` column), which is what revenue per search divides. The two
revenues differ by the purchases attributed to searches made before the period began (and by
those attributed to none), so both are given, each under its own name.

Amounts are per currency and never added across currencies; counts are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date
from typing import Any

from pydantic import Field

from clickstats import metrics
from clickstats.reports.base import Report, cached
from clickstats.store.base import (
    ConversionTotals,
    EventStore,
    Filters,
    Grouping,
    Key,
    SearchTotals,
)

#: The key of conversions without a currency (add to carts usually have no amount).
NO_CURRENCY = ""

REVENUE_PER_SEARCH = metrics.METRICS["revenue_per_search"].definition


class ConversionCounts(Report):
    """How many conversions the period has (in any currency: counts add up, amounts do not)."""

    conversions: int = Field(description="conversions of any subtype made in the period")
    add_to_carts: int
    purchases: int
    orders: int = Field(description="purchases with a value")
    units: int = Field(description="product units purchased (quantities summed)")
    attributed: int = Field(description="conversions that count for a stored search")
    unattributed: int = Field(description="conversions attributed to no search")


class ConversionFigures(ConversionCounts):
    """The conversions of the period in one currency (of a variant: those attributed to its
    searches), with their amounts in `currency`."""

    currency: str = Field(
        description='ISO 4217 code; "" for the conversions sent without a currency (no amount)'
    )
    revenue: float = Field(
        description="the values of the purchases made in the period, attributed to a search or not"
    )
    average_order_value: float | None = Field(description="revenue / orders")
    search_revenue: float = Field(
        description="the revenue of the purchases attributed to the period's searches (the "
        "figures' `revenue` in this currency): what revenue per search divides"
    )
    revenue_per_search: float | None = Field(
        description="search_revenue / searches of the period (the figures' revenue per "
        f"search in this currency; {REVENUE_PER_SEARCH}); null without searches or without a "
        "currency"
    )


class RevenueSeries(Report):
    """Revenue per day in one currency, one entry per day of the overview's `daily.days`, by
    the day of the purchase."""

    revenue: list[float] = Field(description="every purchase of the day")
    by_variant: dict[str, list[float]] = Field(
        description="the purchases attributed to the variant's searches"
    )
    unattributed: list[float] = Field(description="the purchases attributed to no search")


class Conversions(Report):
    currencies: list[str] = Field(
        description="the currencies of the period's purchases, most purchases first (ties: "
        "alphabetical)"
    )
    totals: ConversionCounts = Field(description="every conversion of the period")
    by_currency: dict[str, ConversionFigures] = Field(
        description="every currency with a conversion in the period, as `currencies`, then "
        '"" (conversions without a currency)'
    )
    by_variant: dict[str, dict[str, ConversionFigures]] = Field(
        description="variant -> currency -> the conversions attributed to its searches"
    )
    revenue_by_day: dict[str, RevenueSeries] = Field(
        description="per currency of `currencies`: revenue per day"
    )


def _add(a: ConversionTotals, b: ConversionTotals) -> ConversionTotals:
    """Two groups' totals of one currency added (amounts of one currency only)."""
    return ConversionTotals(
        conversions=a.conversions + b.conversions,
        purchases=a.purchases + b.purchases,
        add_to_carts=a.add_to_carts + b.add_to_carts,
        revenue=a.revenue + b.revenue,
        orders=a.orders + b.orders,
        units=a.units + b.units,
        attributed=a.attributed + b.attributed,
    )


def _sum(groups: Iterable[tuple[Key, ConversionTotals]]) -> dict[Key, ConversionTotals]:
    """Totals added up per key (each key ends with its currency)."""
    out: dict[Key, ConversionTotals] = {}
    for key, t in groups:
        out[key] = _add(out.get(key, ConversionTotals()), t)
    return out


#: conversion_totals by (day, variant, currency): the one conversion aggregate of a period.
ByDay = Mapping[Key, ConversionTotals]


def by_day(store: EventStore, f: Filters, tz: str) -> ByDay:
    """The period's conversions per local day, variant and currency (cached: the overview and
    the queries tables of one period share it). `f.currency` plays no part."""
    f = replace(f, currency=None)
    return cached(
        store,
        ("conversion-totals", f, tz),
        lambda: store.conversion_totals(f, by=("day", "variant"), tz=tz),
    )


def currencies(conversions: ByDay) -> list[str]:
    """The currencies of the period's purchases, most purchases first, ties alphabetical."""
    purchases: dict[str, int] = {}
    for (_, _, currency), t in conversions.items():
        if currency != NO_CURRENCY and t.purchases:
            purchases[currency] = purchases.get(currency, 0) + t.purchases
    return sorted(purchases, key=lambda c: (-purchases[c], c))


def default_currency(conversions: ByDay) -> str | None:
    """The currency of most purchases in the period (ties: the first alphabetically), as an
    experiment picks its analysis currency; None without a purchase in a currency."""
    found = currencies(conversions)
    return found[0] if found else None


def _in_currency(store: EventStore, f: Filters) -> dict[Key, SearchTotals]:
    """Search totals in `f.currency`, overall (key ()) and per variant: one more pass over the
    period's searches, for a currency other than the overview's."""
    key: tuple[Any, ...] = ("search-revenue", f, tuple(metrics.columns(dashboard=True)))

    def compute() -> dict[Key, SearchTotals]:
        total, variants = store.search_totals_many(f, [Grouping(), Grouping(by=("variant",))])
        return {**total, **variants}

    return cached(store, key, compute)


def _metric(t: SearchTotals, name: str) -> float | None:
    """A registry metric over a group's search totals."""
    m = metrics.METRICS[name]
    return metrics.ratio({c: t[c] for c in (m.numerator, m.denominator)}, m)


def counts(t: ConversionTotals) -> ConversionCounts:
    return ConversionCounts(
        conversions=t.conversions,
        add_to_carts=t.add_to_carts,
        purchases=t.purchases,
        orders=t.orders,
        units=t.units,
        attributed=t.attributed,
        unattributed=t.conversions - t.attributed,
    )


def figures(currency: str, t: ConversionTotals, searched: SearchTotals | None) -> ConversionFigures:
    """One currency's figures; `searched`: the group's search totals in that currency (None:
    no amounts, for the conversions without a currency)."""
    return ConversionFigures(
        **counts(t).model_dump(),
        currency=currency,
        revenue=t.revenue,
        average_order_value=t.revenue / t.orders if t.orders else None,
        search_revenue=float(searched["revenue"]) if searched is not None else 0.0,
        revenue_per_search=(None if searched is None else _metric(searched, "revenue_per_search")),
    )


def _order(names: Iterable[str], first: list[str]) -> list[str]:
    """`names`: those of `first` first, in its order, then the rest alphabetically, and the
    key of no currency last."""
    rest = sorted(n for n in names if n not in first)
    return [n for n in first if n in names] + [n for n in rest if n] + [n for n in rest if not n]


def conversions(
    store: EventStore,
    f: Filters,
    tz: str,
    calendar: list[date],
    searches: Mapping[Key, SearchTotals],
) -> Conversions:
    """The conversions section of the overview of `f` over the days of `calendar` (in `tz`);
    `searches`: the overview's search totals in `f.currency`, overall (key ()) and per
    variant, so that the overview's currency costs no second pass."""
    per_day = by_day(store, f, tz)
    found = currencies(per_day)
    per_variant = _sum(((variant, currency), t) for (_, variant, currency), t in per_day.items())
    per_currency = _sum(((currency,), t) for (_, currency), t in per_variant.items())
    everything = _sum(((), t) for t in per_currency.values())
    searched = {
        c: searches if c == f.currency else _in_currency(store, replace(f, currency=c))
        for c in found
    }

    def in_currency(currency: str, key: Key) -> SearchTotals | None:
        if currency == NO_CURRENCY:
            return None
        if currency in searched:
            return searched[currency].get(key, SearchTotals())
        # No purchase in this currency: no revenue, over the group's searches.
        return SearchTotals(sums={"searches": searches.get(key, SearchTotals()).searches})

    variants = sorted({v for v, _ in per_variant if v})
    days = [d.isoformat() for d in calendar]

    def series(currency: str, variant: str | None) -> list[float]:
        """Revenue per day: of a variant's searches ("": of none), or of all (None)."""
        if variant is not None:
            return [per_day.get((d, variant, currency), ConversionTotals()).revenue for d in days]
        daily = _sum(((d, c), t) for (d, _, c), t in per_day.items() if c == currency)
        return [daily.get((d, currency), ConversionTotals()).revenue for d in days]

    return Conversions(
        currencies=found,
        totals=counts(everything.get((), ConversionTotals())),
        by_currency={
            c: figures(c, per_currency[(c,)], in_currency(c, ()))
            for c in _order({c for (c,) in per_currency}, found)
        },
        by_variant={
            v: {
                c: figures(c, per_variant[(v, c)], in_currency(c, (v,)))
                for c in _order({c for w, c in per_variant if w == v}, found)
            }
            for v in variants
        },
        revenue_by_day={
            c: RevenueSeries(
                revenue=series(c, None),
                by_variant={v: series(c, v) for v in variants if (v, c) in per_variant},
                unattributed=series(c, NO_CURRENCY),
            )
            for c in found
        },
    )
