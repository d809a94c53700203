"""`clickstats report`: the overview and each experiment's verdict, as tables in a terminal.

Rich prints plain text when the output is not a terminal (a pipe, a file, a test), so the
same report can be read, grepped and asserted on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.console import Console
from rich.table import Table

from clickstats.experiments import (
    Experiment,
    ExperimentManager,
    ExperimentStatus,
    ExperimentType,
    UnknownExperiment,
)
from clickstats.metrics import METRICS
from clickstats.reports.experiment import ExperimentResults, Method
from clickstats.reports.interleaving import InterleavingResults
from clickstats.reports.overview import Figures, Overview
from clickstats.stats.compare import Comparison
from clickstats.tracking import ClickTrackingService

FIRST_EVENT = """\
Send a first event, for example to a running server (clickstats serve):

  curl -s -H 'Content-Type: application/json' -d '{{"query": "running shoes", \
"user_id": "user-42"}}' http://127.0.0.1:8000/analytics/log-impression

or fill the store with simulated traffic:  clickstats simulate --store {store}
or import a file of events:                clickstats import --store {store} events.jsonl"""


def pick_experiments(names: Sequence[str], manager: ExperimentManager) -> list[Experiment]:
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


def _figure_metrics(figures: Figures) -> list[str]:
    """The registry's metrics the overview's figures carry, in registry order."""
    present = set(type(figures).model_fields) | set(figures.model_extra or {})
    return [name for name in METRICS if name in present]


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


def _value(metric: str, value: float | None, digits: int = 3) -> str:
    spec = METRICS.get(metric)
    if spec is not None and spec.percent:
        return _pct(value)
    if metric.endswith("_ms"):
        return _num(value, ",.0f") + " ms" if value is not None else "-"
    return _num(value, f".{digits}f")


def _difference(metric: str, value: float) -> str:
    """An absolute difference in the metric's unit: percentage points for a rate."""
    spec = METRICS.get(metric)
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


def _change(metric: str, c: Comparison | None) -> tuple[str, str]:
    """The difference (in the metric's unit) and the relative change, each with its interval."""
    if c is None:
        return "-", "-"
    absolute = _with_interval(c.absolute, c.absolute_ci, lambda x: _difference(metric, x))
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
            difference, relative = _change(metric, c)
            p = None if c is None else c.p_value_adjusted
            table.add_row(
                label,
                variant.name,
                _value(metric, None if m is None else m.estimate),
                _value(metric, control_value) if base is not None else "-",
                difference,
                relative,
                "-" if p is None else f"{p:.3g}",
                "yes" if c is not None and c.significant else "no",
            )
    return table


def _experiment_notes(results: ExperimentResults) -> list[str]:
    lines = []
    if results.variants:
        users = ", ".join(f"{v.name} {plural(v.users, 'user')}" for v in results.variants)
        lines.append(f"Users: {users}.")
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
    service: ClickTrackingService,
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
        if activity.last_seen is None:
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
