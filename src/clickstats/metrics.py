"""The metric registry: every search metric, declared once.

A metric is a ratio of two sums over searches, x / y: each per-search value is an expression
over the search's facts (below), and a user's x and y are the sums over that user's searches.
Each backend compiles these expressions into its own query (SQL for DuckDB, an aggregation
pipeline for MongoDB); the statistics, the reports, the dashboard, the CLI and the metric table
of docs/STATISTICS.md all read this registry. Adding a metric is one `Metric(...)` in `METRICS`
(with a new `Column` if its sums are new) and its tests: docs/ARCHITECTURE.md, "Add a metric".

The facts of one search (an impression), with the clicks linked to it by search_id in the
window:

- ``clicks``: how many clicks (0 without one)
- ``first_rank``: the rank of its first click (the earliest; the lower rank on a tie); null
  without a click
- ``rank_sum``: the sum of the ranks of its clicks (0 without one)
- ``results_count``: how many results the search returned
- ``ms_to_first_click``: milliseconds from the search to its first click; null without a click

and with the conversions in the window attributed to it (docs/CLICK_TRACKING.md, "Attribution"):

- ``conversions``: how many conversions (of any subtype)
- ``add_to_carts``, ``purchases``: how many of subtype add_to_cart, purchase
- ``revenue``: the sum of the values of its purchases in the analysis currency (a query's
  currency: amounts in different currencies are never added)
- ``orders``: its purchases with a value in the analysis currency
- ``units``: the product units of its purchases (quantities summed; 1 per product without)
"""

from __future__ import annotations

import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

Fact = Literal[
    "clicks",
    "first_rank",
    "rank_sum",
    "results_count",
    "ms_to_first_click",
    "conversions",
    "add_to_carts",
    "purchases",
    "revenue",
    "orders",
    "units",
]
FACTS: tuple[Fact, ...] = typing.get_args(Fact)
#: The facts that come from attributed conversions (a store links those only when read).
CONVERSION_FACTS: frozenset[Fact] = frozenset(
    ("conversions", "add_to_carts", "purchases", "revenue", "orders", "units")
)

Op = Literal[">", ">=", "<", "<=", "="]


@dataclass(frozen=True, slots=True)
class Of:
    """A fact of the search."""

    fact: Fact


@dataclass(frozen=True, slots=True)
class Num:
    value: int | float


@dataclass(frozen=True, slots=True)
class Compare:
    """`left op right`: 1 when it holds, else 0 (a fact that is null never holds)."""

    left: Expr
    op: Op
    right: Expr


@dataclass(frozen=True, slots=True)
class AllOf:
    """1 when every condition holds, else 0."""

    conditions: tuple[Compare, ...]


@dataclass(frozen=True, slots=True)
class Divide:
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Minus:
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class When:
    """`then` where the condition holds, else 0 (so that facts that are null there, such as
    first_rank without a click, are never read)."""

    condition: Compare | AllOf
    then: Expr


Expr = Of | Num | Compare | AllOf | Divide | Minus | When

CLICKED = Compare(Of("clicks"), ">", Num(0))
HAS_RESULTS = Compare(Of("results_count"), ">", Num(0))


@dataclass(frozen=True, slots=True)
class Column:
    """A per-search value summed over searches (per user, per variant, per day...).

    `integer`: every per-search value is a whole number, so its sums are counts (shown as
    integers); `description` says what is summed, in the words of docs/STATISTICS.md.
    `per_user`: the value is the user's, not a sum over searches (`users`: 1 per user).
    `cap`: the percentile its per-user values are capped at by default in an experiment
    (heavy-tailed amounts; None: not capped)."""

    name: str
    value: Expr
    description: str
    integer: bool = True
    per_user: bool = False
    cap: float | None = None


def _columns(*columns: Column) -> dict[str, Column]:
    return {c.name: c for c in columns}


#: Every column a metric reads, by name, in the order the stores return them.
COLUMNS: dict[str, Column] = _columns(
    Column("searches", Num(1), "searches"),
    Column("clicked_searches", When(CLICKED, Num(1)), "searches with at least one click"),
    Column("clicks", Of("clicks"), "clicks"),
    Column(
        "rr",
        When(CLICKED, Divide(Num(1), Of("first_rank"))),
        "sum over searches of 1 / rank of the first click (0 for a search without a click)",
        integer=False,
    ),
    Column("rank_sum", Of("rank_sum"), "sum of the ranks of all clicks"),
    Column("with_results", When(HAS_RESULTS, Num(1)), "searches with at least one result"),
    Column(
        "abandoned",
        When(AllOf((HAS_RESULTS, Compare(Of("clicks"), "=", Num(0)))), Num(1)),
        "searches with at least one result and no click",
    ),
    Column(
        "zero_results",
        When(Compare(Of("results_count"), "=", Num(0)), Num(1)),
        "searches with no result",
    ),
    Column(
        "counted_searches",
        When(Compare(Of("results_count"), ">=", Num(0)), Num(1)),
        "searches whose number of results is known (all but those sent with a null count)",
    ),
    Column(
        "ttfc_ms",
        When(CLICKED, Of("ms_to_first_click")),
        "sum over searches with a click of (first click time - search time), in ms",
    ),
    Column("users", Num(1), "users (1 per user)", per_user=True),
    Column(
        "converted_searches",
        When(Compare(Of("conversions"), ">", Num(0)), Num(1)),
        "searches with at least one attributed conversion",
    ),
    Column(
        "cart_searches",
        When(Compare(Of("add_to_carts"), ">", Num(0)), Num(1)),
        "searches with at least one attributed add to cart",
    ),
    Column(
        "purchase_searches",
        When(Compare(Of("purchases"), ">", Num(0)), Num(1)),
        "searches with at least one attributed purchase",
    ),
    Column("purchases", Of("purchases"), "attributed purchases"),
    Column(
        "revenue",
        Of("revenue"),
        "revenue of attributed purchases, in the analysis currency",
        integer=False,
        cap=0.99,
    ),
    Column("orders", Of("orders"), "attributed purchases with a value in the analysis currency"),
    Column("units", Of("units"), "product units in attributed purchases"),
    Column(
        "unconverted_clicks",
        When(Compare(Of("conversions"), "=", Num(0)), Of("clicks")),
        "clicks on searches without an attributed conversion",
    ),
)


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric's meaning: x / y of two columns, which direction is better, how it reads.

    `dashboard`: shown in the dashboard's figures (and /analytics/overview's)."""

    name: str
    label: str
    numerator: str  # a COLUMNS name: per user x
    denominator: str  # a COLUMNS name: per user y
    higher_is_better: bool
    percent: bool  # a rate (shown as a percentage) rather than an amount
    unit: str = "search"  # one unit of y, counted in sentences ("150 searches")
    dashboard: bool = True
    currency: bool = False  # an amount in the analysis currency (revenue), never summed across

    @property
    def x(self) -> str:
        """What x is, in words ("searches with at least one click")."""
        column = COLUMNS.get(self.numerator)
        return column.description if column else self.numerator

    @property
    def y(self) -> str:
        column = COLUMNS.get(self.denominator)
        return column.description if column else self.denominator

    @property
    def definition(self) -> str:
        """'search CTR: searches with at least one click / searches'."""
        return f"{self.label}: {self.x} / {self.y}"


def _metrics(*metrics: Metric) -> dict[str, Metric]:
    return {m.name: m for m in metrics}


#: Every metric, by name, in the order reports show them.
METRICS: dict[str, Metric] = _metrics(
    Metric("search_ctr", "search CTR", "clicked_searches", "searches", True, True),
    Metric("clicks_per_search", "clicks per search", "clicks", "searches", True, False),
    Metric("mrr", "MRR", "rr", "searches", True, False, dashboard=False),
    Metric(
        "avg_click_position", "average click position", "rank_sum", "clicks", False, False,
        unit="click",
    ),
    Metric(
        "abandonment_rate", "abandonment rate", "abandoned", "with_results", False, True,
        unit="search with at least one result",
    ),
    Metric(
        "zero_result_rate", "zero-result rate", "zero_results", "counted_searches", False, True,
        unit="search whose number of results is known",
    ),
    Metric(
        "time_to_first_click_ms", "time to first click", "ttfc_ms", "clicked_searches", False,
        False, unit="search with a click", dashboard=False,
    ),
    Metric("conversion_rate", "conversion rate", "converted_searches", "searches", True, True),
    Metric(
        "add_to_cart_rate", "add-to-cart rate", "cart_searches", "searches", True, True,
        dashboard=False,
    ),
    Metric(
        "purchase_rate", "purchase rate", "purchase_searches", "searches", True, True,
        dashboard=False,
    ),
    Metric(
        "revenue_per_search", "revenue per search", "revenue", "searches", True, False,
        currency=True,
    ),
    Metric(
        "revenue_per_user", "revenue per user", "revenue", "users", True, False, unit="user",
        dashboard=False, currency=True,
    ),
    Metric(
        "average_order_value", "average order value", "revenue", "orders", True, False,
        unit="order", dashboard=False, currency=True,
    ),
    Metric(
        "products_per_purchase", "products per purchase", "units", "purchases", True, False,
        unit="purchase", dashboard=False,
    ),
)  # fmt: skip


def columns(*, dashboard: bool = False) -> list[str]:
    """The columns the stores compute, in COLUMNS order: every search-count column, and those
    the metrics read (with `dashboard`, only the dashboard metrics': what search totals sum,
    so that the dashboard's aggregate reads no more than it shows)."""
    used = {
        "searches", "clicked_searches", "clicks", "rank_sum", "zero_results", "abandoned",
        "unconverted_clicks",
    }  # fmt: skip
    for m in METRICS.values():
        if m.dashboard or not dashboard:
            used |= {m.numerator, m.denominator}
    return [name for name in COLUMNS if name in used]


def needed_facts(names: list[str]) -> set[Fact]:
    """The facts the columns `names` read (a store computes only those per search)."""
    return {fact for name in names for fact in facts(COLUMNS[name].value)}


def pairs() -> list[tuple[str, str]]:
    """The (x, y) column pairs of the metrics, each once: a store sums their products."""
    return sorted({(m.numerator, m.denominator) for m in METRICS.values()})


def facts(expr: Expr) -> Iterator[Fact]:
    """The facts an expression reads."""
    match expr:
        case Of(fact):
            yield fact
        case Num():
            return
        case Compare(left, _, right) | Divide(left, right) | Minus(left, right):
            yield from facts(left)
            yield from facts(right)
        case AllOf(conditions):
            for c in conditions:
                yield from facts(c)
        case When(condition, then):
            yield from facts(condition)
            yield from facts(then)


def ratio(sums: Mapping[str, float], metric: Metric) -> float | None:
    """The metric over summed columns: sum x / sum y, None when sum y is 0."""
    y = sums[metric.denominator]
    return sums[metric.numerator] / y if y else None


def doc_table() -> str:
    """The metric table of docs/STATISTICS.md, as Markdown."""
    lines = [
        "| metric | name | per user x | per user y | better |",
        "|---|---|---|---|---|",
    ]
    for m in METRICS.values():
        better = "higher" if m.higher_is_better else "lower"
        lines.append(f"| {m.label} | `{m.name}` | {m.x} | {m.y} | {better} |")
    return "\n".join(lines)
