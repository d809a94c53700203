"""`clickstats report`: the overview, its conversions and revenue, the queries that earn and
those that convert nothing, and each experiment's verdict, as tables in a terminal.

Rich prints plain text when the output is not a terminal (a pipe, a file, a test), so the
same report can be read, grepped and asserted on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

from rich.console import Console
from rich.table import Table

from clickstats.experiments import (
    Experiment,
    ExperimentManager,
    ExperimentStatus,
    ExperimentType,
    UnknownExperiment,
)
from clickstats.metrics import CONVERSION_FACTS, METRICS, needed_facts
from clickstats.reports.conversions import ConversionFigures
from clickstats.reports.experiment import ExperimentResults, Method
from clickstats.reports.interleaving import InterleavingResults
from clickstats.reports.overview import Figures, Overview
from clickstats.reports.queries import QueriesReport, QueryFigures
from clickstats.stats.compare import Comparison
from clickstats.store.base import Activity

#: Rows of each queries table.
QUERY_ROWS = 10
CENT = Decimal("0.01")

FIRST_EVENT = """\
Send a first event, for example to a running server (clickstats serve):

  curl -s -H 'Content-Type: application/json' -d '{{"query": "running shoes", \
"user_id": "user-42"}}' http://127.0.0.1:8000/analytics/log-impression

or fill the store with simulated traffic:  clickstats simulate --store {store}
or import a file of events:                clickstats import --store {store} events.jsonl"""


class ReportSource(Protocol):
    """What the report reads: a `ClickTrackingService` on the store, or cli/remote.py's
    `RemoteService` on a running server's API (activity: None, it has no such read)."""

    def get_overview(self, *, days: int) -> Overview: ...
    def get_activity(self) -> Activity | None: ...
    def get_queries(self, *, days: int, limit: int) -> QueriesReport: ...
    def get_interleaving_results(
        self, experiment: Experiment, *, days: int
    ) -> InterleavingResults: ...
    def get_experiment_results(
        self, experiment: Experiment, *, days: int, method: Method
    ) -> ExperimentResults: ...


class ExperimentSource(Protocol):
    """An `ExperimentManager`, or cli/remote.py's `RemoteExperiments`."""

    @property
    def where(self) -> str: ...

    def list(self) -> list[Experiment]: ...


def pick_experiments(
    names: Sequence[str], manager: ExperimentManager | ExperimentSource
) -> list[Experiment]:
    """The experiments named, else every running one, of `manager` (a report opens it with
    create=False: it writes nothing)."""
    known = manager.list()
    by_name = {e.name: e for e in known}
    if names:
        missing = [name for name in names if name not in by_name]
        if missing:
            raise UnknownExperiment(missing[0])
        return [by_name[name] for name in names]
    return [e for e in known if e.status is ExperimentStatus.RUNNING]


def plural(count: float, one: str, many: str | None = None) -> str:
    """'1 user', '2 users', '1,500 searches'."""
    return f"{count:,} {one if count == 1 else many or one + 's'}"


def definition(metric: str) -> str:
    """One line: 'search CTR: searches with at least one click / searches (higher is better)'."""
    spec = METRICS.get(metric)
    if spec is None:
        return metric
    unit = "a percentage; " if spec.percent else ""
    better = "higher" if spec.higher_is_better else "lower"
    return f"{spec.label}: {spec.x} / {spec.y} ({unit}{better} is better)"


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}%}"


def _num(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def _figure_metrics(figures: Figures, *, conversions: bool = False) -> list[str]:
    """The registry's metrics the overview's figures carry, in registry order: those of
    searches and clicks, or (`conversions`) those of attributed conversions."""
    present = set(type(figures).model_fields) | set(figures.model_extra or {})
    return [name for name in METRICS if name in present and _of_conversions(name) == conversions]


def _of_conversions(metric: str) -> bool:
    """Whether a metric reads attributed conversions (conversion rate, revenue per search)."""
    m = METRICS[metric]
    return bool(needed_facts([m.numerator, m.denominator]) & CONVERSION_FACTS)


def _money(value: float | None, currency: str | None) -> str:
    """'1,234.50 EUR': an amount with its currency (amounts are never added across them),
    rounded half up from its shortest decimal form, as the dashboard's Intl.NumberFormat does
    (110.485 is 110.49 on both, where Python's format gives 110.48)."""
    if value is None or not currency:
        return "-"
    return f"{Decimal(repr(value)).quantize(CENT, ROUND_HALF_UP):,.2f} {currency}"


def overview_table(overview: Overview) -> Table:
    table = Table(
        title=f"Searches in the last {overview.days} days "
        f"(since {overview.since:%Y-%m-%d} {overview.tz})",
        title_justify="left",
    )
    table.add_column("variant")
    table.add_column("searches", justify="right")
    table.add_column("users", justify="right")
    shown = _figure_metrics(overview.totals)
    for metric in shown:
        table.add_column(METRICS[metric].label, justify="right")
    table.add_column("p95 latency", justify="right")

    def row(name: str, f: Figures, *, end_section: bool = False) -> None:
        table.add_row(
            name,
            f"{f.searches:,}",
            f"{f.users:,}",
            *(_value(metric, getattr(f, metric, None), digits=2) for metric in shown),
            _ms(f.p95_response_ms),
            end_section=end_section,
        )

    variants = sorted(overview.by_variant.items())
    for n, (name, figures) in enumerate(variants):
        row(name, figures, end_section=n == len(variants) - 1)
    row("total", overview.totals)
    table.caption = (
        "search CTR: the share of searches with at least one click; "
        "clicks per search: clicks / searches (an average, not a percentage)"
    )
    table.caption_justify = "left"
    return table


def _currency_said(currency: str | None) -> str:
    return (
        f"revenue in {currency}, the currency of most purchases"
        if currency
        else "no purchase with a currency: no revenue"
    )


def conversions_table(overview: Overview) -> Table:
    """Per variant and in total: the conversion metrics of the figures, with their numerators."""
    currency = overview.currency
    table = Table(
        title=f"Conversions of the searches of the last {overview.days} days "
        f"({_currency_said(currency)})",
        title_justify="left",
    )
    for name in ("variant", "searches", "converted searches"):
        table.add_column(name, justify="left" if name == "variant" else "right")
    shown = _figure_metrics(overview.totals, conversions=True)
    for metric in shown:
        table.add_column(METRICS[metric].label, justify="right")
        if metric == "conversion_rate":
            table.add_column("revenue", justify="right")

    def row(name: str, f: Figures, *, end_section: bool = False) -> None:
        cells = []
        for metric in shown:
            cells.append(_value(metric, getattr(f, metric, None), digits=2, currency=currency))
            if metric == "conversion_rate":
                cells.append(_money(f.revenue, currency))
        table.add_row(
            name, f"{f.searches:,}", f"{f.converted_searches:,}", *cells, end_section=end_section
        )

    variants = sorted(overview.by_variant.items())
    for n, (name, figures) in enumerate(variants):
        row(name, figures, end_section=n == len(variants) - 1)
    row("total", overview.totals)
    table.caption = (
        "a search converts with at least one attributed conversion; revenue: of the purchases "
        "attributed to these searches"
    )
    table.caption_justify = "left"
    return table


def actions_table(overview: Overview) -> Table:
    """The period's other actions (views, UBI's action names) by name."""
    table = Table(title=f"Other actions of the last {overview.days} days", title_justify="left")
    table.add_column("action")
    for name in ("events", "users", "products"):
        table.add_column(name, justify="right")
    for a in overview.actions:
        table.add_row(a.name, f"{a.events:,}", f"{a.users:,}", f"{a.products:,}")
    return table


def currencies_table(overview: Overview) -> Table:
    """The period's conversions per currency, and under each its variants: amounts in the row's
    currency, never added across currencies."""
    c = overview.conversions
    table = Table(
        title=f"Conversions of the last {overview.days} days by currency and variant",
        title_justify="left",
    )
    table.add_column("currency / variant")
    for name in (
        "conversions", "add to carts", "purchases", "units", "revenue", "average order",
        "attributed", "revenue of searches", "per search",
    ):  # fmt: skip
        table.add_column(name, justify="right")

    def row(name: str, f: ConversionFigures, *, end_section: bool = False) -> None:
        amount = f.currency or None
        table.add_row(
            name,
            f"{f.conversions:,}",
            f"{f.add_to_carts:,}",
            f"{f.purchases:,}",
            f"{f.units:,}",
            _money(f.revenue, amount),
            _money(f.average_order_value, amount),
            f"{f.attributed:,} of {f.conversions:,}",
            _money(f.search_revenue, amount),
            _money(f.revenue_per_search, amount),
            end_section=end_section,
        )

    for currency, figures in c.by_currency.items():
        variants = [
            (v, per[currency]) for v, per in sorted(c.by_variant.items()) if currency in per
        ]
        row(currency or "no currency", figures, end_section=not variants)
        for n, (variant, f) in enumerate(variants):
            row(f"  {variant}", f, end_section=n == len(variants) - 1)
    table.caption = (
        "revenue: every purchase of the period, attributed to a search or not; per search: the "
        "revenue of the purchases attributed to the period's searches (revenue of searches) / "
        "searches"
    )
    table.caption_justify = "left"
    return table


def revenue_queries_table(report: QueriesReport, days: int) -> Table:
    currency = report.currency
    table = Table(
        title=f"Top queries by revenue ({currency}), last {days} days", title_justify="left"
    )
    for name in ("query", "searches", "conversion rate", "revenue", "revenue per search"):
        table.add_column(name, justify="left" if name == "query" else "right")
    for q in report.revenue_queries:
        table.add_row(
            q.query,
            f"{q.searches:,}",
            _pct(q.conversion_rate),
            _money(q.revenue, currency),
            _money(q.revenue_per_search, currency),
        )
    return table


def unconverted_table(report: QueriesReport, days: int) -> Table:
    table = Table(
        title=f"Clicked, not converted: the most clicks on searches without a conversion, last "
        f"{days} days",
        title_justify="left",
    )
    for name in ("query", "clicks", "without a conversion", "converted searches"):
        table.add_column(name, justify="left" if name == "query" else "right")
    table.add_column("conversion rate", justify="right")
    rows: list[QueryFigures] = report.unconverted_queries
    for q in rows:
        table.add_row(
            q.query,
            f"{q.clicks:,}",
            f"{q.unconverted_clicks:,}",
            f"{q.converted_searches:,}",
            _pct(q.conversion_rate),
        )
    return table


def _value(metric: str, value: float | None, digits: int = 3, currency: str | None = None) -> str:
    spec = METRICS.get(metric)
    if spec is not None and spec.currency and currency:
        return _money(value, currency)
    if spec is not None and spec.percent:
        return _pct(value)
    if metric.endswith("_ms"):
        return _num(value, ",.0f") + " ms" if value is not None else "-"
    return _num(value, f".{digits}f")


def _difference(metric: str, value: float, currency: str | None = None) -> str:
    """An absolute difference in the metric's unit: percentage points for a rate, the currency
    for an amount."""
    spec = METRICS.get(metric)
    if spec is not None and spec.currency and currency:
        return ("+" if value >= 0 else "-") + _money(abs(value), currency)
    if spec is not None and spec.percent:
        return f"{100 * value:+.1f} pp"
    if metric.endswith("_ms"):
        return f"{value:+,.0f} ms"
    return f"{value:+.3f}"


def _with_interval(
    point: float | None, ci: tuple[float, float] | None, fmt: Callable[[float], str]
) -> str:
    """'+3.1 pp (+0.4 pp to +5.8 pp)': one unit for the point and both ends."""
    if point is None:
        return "-"
    return fmt(point) + ("" if ci is None else f" ({fmt(ci[0])} to {fmt(ci[1])})")


def _change(metric: str, c: Comparison | None, currency: str | None = None) -> tuple[str, str]:
    """The difference (in the metric's unit) and the relative change, each with its interval."""
    if c is None:
        return "-", "-"
    absolute = _with_interval(c.absolute, c.absolute_ci, lambda x: _difference(metric, x, currency))
    relative = _with_interval(c.relative, c.relative_ci, lambda x: f"{x:+.1%}")
    return absolute, relative


def experiment_table(results: ExperimentResults, days: int) -> Table:
    control = results.control
    table = Table(
        title=f"Experiment {results.experiment} ({results.status.value}): control {control}, "
        f"last {days} days, {results.method} test, primary metric {results.primary_metric}",
        title_justify="left",
    )
    table.add_column("metric")
    table.add_column("variant")
    table.add_column("value", justify="right")
    table.add_column(f"{control} (control)", justify="right")
    levels = [
        m.comparison.ci_level
        for v in results.variants
        for m in v.metrics.values()
        if m.comparison is not None and m.comparison.ci_level is not None
    ]
    level = f"{100 * levels[0]:.3g}% CI" if levels else "CI"
    table.add_column(f"difference ({level})", justify="right")
    table.add_column(f"relative change ({level})", justify="right")
    table.add_column("p", justify="right")
    table.add_column("significant")
    base = next((v for v in results.variants if v.is_control), None)
    treatments = [v for v in results.variants if not v.is_control]
    for metric in list(base.metrics) if base is not None else []:
        label = METRICS[metric].label if metric in METRICS else metric
        if metric == results.primary_metric:
            label += " *"
        control_value = base.metrics[metric].estimate if base is not None else None
        for variant in treatments:
            m = variant.metrics.get(metric)
            c = None if m is None else m.comparison
            difference, relative = _change(metric, c, results.currency)
            p = None if c is None else c.p_value_adjusted
            table.add_row(
                label,
                variant.name,
                _value(metric, None if m is None else m.estimate, currency=results.currency),
                _value(metric, control_value, currency=results.currency)
                if base is not None
                else "-",
                difference,
                relative,
                "-" if p is None else f"{p:.3g}",
                "yes" if c is not None and c.significant else "no",
            )
    return table


def _adjustment_notes(results: ExperimentResults) -> list[str]:
    """The currency of the amounts, the caps and CUPED in use, a line each."""
    metrics = list(results.variants[0].metrics) if results.variants else []
    lines = []
    amounts = [METRICS[m].label for m in metrics if m in METRICS and METRICS[m].currency]
    if amounts:
        lines.append(
            f"Amounts ({', '.join(amounts)}) in {results.currency}, counting only the purchases "
            f"in {results.currency}."
            if results.currency
            else f"No purchase with a currency: {', '.join(amounts)} count none."
        )
    adjusted = [(m, results.adjustments[m]) for m in metrics if m in results.adjustments]
    capped = [f"{METRICS[m].label} at {a.cap.label}" for m, a in adjusted if a.cap is not None]
    if capped:
        lines.append(f"Capped (each user's value, before the comparison): {'; '.join(capped)}.")
    cuped = [
        f"{METRICS[m].label} (theta "
        + ", ".join(f"{v} {theta:.3f}" if len(a.cuped.theta) > 1 else f"{theta:.3f}"
                    for v, theta in a.cuped.theta.items())
        + ")"
        for m, a in adjusted
        if a.cuped.applied
    ]  # fmt: skip
    if cuped:
        lines.append(
            f"CUPED (adjusted by each user's value before the experiment): {'; '.join(cuped)}."
        )
    return lines


def _experiment_notes(results: ExperimentResults) -> list[str]:
    lines = []
    if results.variants:
        users = ", ".join(f"{v.name} {plural(v.users, 'user')}" for v in results.variants)
        lines.append(f"Users: {users}.")
        lines.extend(_adjustment_notes(results))
    lines.append(f"Verdict: {results.decision.summary}")
    srm = results.health.srm if results.health is not None else None
    if srm is not None and srm.flagged:
        observed = ", ".join(f"{k} {plural(v, 'user')}" for k, v in srm.observed.items())
        expected = ", ".join(f"{k} {v:,.0f}" for k, v in srm.expected.items())
        lines.append(
            f"Warning: sample ratio mismatch (p = {srm.p_value or 0:.2g}): {observed}; "
            f"expected {expected}. Find out why users are missing from a variant (assignment, "
            "tracking, bots) before trusting any result."
        )
    elif srm is not None and not srm.checked:
        lines.append(f"Sample ratio not checked yet ({srm.reason}).")
    return lines


def interleaving_table(results: InterleavingResults, days: int) -> Table:
    rankers = results.rankers
    table = Table(
        title=f"Interleaving experiment {results.experiment} ({results.status.value}): "
        f"A = {rankers.A}, B = {rankers.B}, last {days} days",
        title_justify="left",
    )
    for name in ("users", "searches with clicks", "A wins", "B wins", "ties"):
        table.add_column(name, justify="right")
    table.add_column("preference for B", justify="right")
    table.add_column("p", justify="right")
    low, high = results.ci_low, results.ci_high
    preference = _pct(results.preference)
    if low is not None and high is not None:
        preference += f" ({low:.1%} to {high:.1%})"
    p = results.p_value
    table.add_row(
        f"{results.users:,}",
        f"{results.searches_with_clicks:,}",
        f"{results.wins_a:,}",
        f"{results.wins_b:,}",
        f"{results.ties:,}",
        preference,
        "-" if p is None else f"{p:.3g}",
    )
    return table


def render_report(
    console: Console,
    service: ReportSource,
    *,
    days: int,
    experiments: Sequence[Experiment],
    method: Method = "sequential",
    store: str = "URL",
) -> None:
    """Print the overview, then each experiment's comparisons and verdict."""
    overview = service.get_overview(days=days)
    if not overview.totals.searches:
        activity = service.get_activity()
        if activity is None:
            console.print(
                f"No searches in the last {days} days on {store}. Try a longer period: --days 365.",
                highlight=False,
            )
        elif activity.last_seen is None:
            console.print(f"The store {store} holds no events yet.", highlight=False)
            console.print(FIRST_EVENT.format(store=store), highlight=False, soft_wrap=True)
        else:
            console.print(
                f"No searches in the last {days} days; the latest event is from "
                f"{activity.last_seen:%Y-%m-%d %H:%M} UTC. Try a longer period: --days 365.",
                highlight=False,
            )
        return
    console.print(overview_table(overview))
    console.print()
    console.print(conversions_table(overview))
    if overview.conversions.by_currency:
        console.print()
        console.print(currencies_table(overview))
    if overview.actions:
        console.print()
        console.print(actions_table(overview))
    queries = service.get_queries(days=days, limit=QUERY_ROWS)
    if queries.revenue_queries:
        console.print()
        console.print(revenue_queries_table(queries, days))
    if queries.unconverted_queries:
        console.print()
        console.print(unconverted_table(queries, days))
    shown: dict[str, None] = {}  # the metrics the experiment tables name, to define them once
    for experiment in experiments:
        console.print()
        if experiment.type is ExperimentType.INTERLEAVING:
            preference = service.get_interleaving_results(experiment, days=days)
            console.print(interleaving_table(preference, days))
            console.print(f"Verdict: {preference.verdict}", highlight=False, soft_wrap=True)
            continue
        results = service.get_experiment_results(experiment, days=days, method=method)
        if results.variants:
            console.print(experiment_table(results, days))
            console.print("* the primary metric, on which the verdict is made", highlight=False)
            shown.update(dict.fromkeys(results.variants[0].metrics))
        else:
            reason = results.reason or "no variant has data in this period"
            console.print(
                f"Experiment {experiment.name}: nothing to compare in the last "
                f"{plural(days, 'day')}: {reason}.",
                highlight=False,
                soft_wrap=True,
            )
        for line in _experiment_notes(results):
            console.print(line, highlight=False, soft_wrap=True)
    if shown:
        console.print()
        console.print("Metrics (x / y, summed over each variant's users):", highlight=False)
        for metric in shown:
            console.print(f"  {definition(metric)}", highlight=False, soft_wrap=True)
