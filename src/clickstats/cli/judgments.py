"""`clickstats judgments`: implicit relevance judgments from the store, as JSON, CSV or the
judgment import of the OpenSearch Search Relevance Workbench (GET /analytics/judgments)."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import click

from clickstats.cli.options import server_options, store_option, store_or_server
from clickstats.reports.judgments import (
    DEFAULT_MAX_RANK,
    DEFAULT_MIN_IMPRESSIONS,
    MAX_DAYS,
    MAX_RANK_LIMIT,
    Format,
)
from clickstats.stats.judgments import Model
from clickstats.text import plural


@click.command()
@store_option
@click.option(
    "--days",
    type=click.IntRange(1, MAX_DAYS),
    default=7,
    show_default=True,
    help="Read the searches of the last this many days.",
)
@click.option(
    "--min-impressions",
    type=click.IntRange(min=1),
    default=DEFAULT_MIN_IMPRESSIONS,
    show_default=True,
    help="Judge only the products shown in at least this many searches for the query.",
)
@click.option(
    "--max-rank",
    type=click.IntRange(1, MAX_RANK_LIMIT),
    default=DEFAULT_MAX_RANK,
    show_default=True,
    help="Read the results at ranks 1 to this.",
)
@click.option(
    "--model",
    type=click.Choice(get_args(Model)),
    default="coec",
    show_default=True,
    help="coec: clicks over the clicks expected at the ranks shown; pbm: the position-based "
    "model's attractiveness, fitted by EM.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(get_args(Format)),
    default="json",
    show_default=True,
    help="json (the report), csv (a row per query and product) or srw (the body of the "
    "Search Relevance Workbench's PUT /_plugins/_search_relevance/judgments).",
)
@click.option("--variant", default=None, help="Only the searches of this variant.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write to this file (default: standard output).",
)
@server_options
def judgments(
    store: str,
    days: int,
    min_impressions: int,
    max_rank: int,
    model: Model,
    fmt: Format,
    variant: str | None,
    output: Path | None,
    server: str | None,
    key: str | None,
) -> None:
    """For each (query, product), a relevance grade (0-3) from clicks corrected for position
    bias, with its interval and impressions."""
    from clickstats.cli.remote import RemoteService, Server
    from clickstats.reports.judgments import JudgmentsQuery, render
    from clickstats.reports.judgments import judgments as judge

    query = JudgmentsQuery(days, model, min_impressions, max_rank, variant)
    with store_or_server(store, server, key) as source:
        if isinstance(source, Server):  # the same report, rendered here in every format
            report = RemoteService(source).get_judgments(query)
        else:
            report = judge(source, query)
    text = render(report, fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
    queries = len({j.query for j in report.judgments})
    summary = (
        f"{plural(len(report.judgments), 'judgment')} ({model}) for {plural(queries, 'query', 'queries')}"
        + (f" written to {output}" if output is not None else "")
    )
    click.echo(summary if report.error is None else f"{summary}: {report.error}", err=True)
