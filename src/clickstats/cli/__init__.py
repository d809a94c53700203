"""The `clickstats` command: one group, thin commands that parse, build and call."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from clickstats import __version__
from clickstats.cli.judgments import judgments
from clickstats.cli.keys import check_exposure, keys
from clickstats.cli.options import opened_store, server_options, store_option, store_or_server
from clickstats.cli.privacy import RETENTION_DAYS, delete_user, prune
from clickstats.settings import Settings
from clickstats.simulate import simulate_command

if TYPE_CHECKING:
    from rich.progress import Progress


@click.group()
@click.version_option(__version__, prog_name="clickstats")
def main() -> None:
    """clickstats: search click tracking and analytics."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, envvar="PORT", help="Port [env PORT].")
@store_option
@click.option(
    "--allow-reset",
    is_flag=True,
    envvar="CLICKSTATS_ALLOW_RESET",
    help="Let DELETE /analytics/reset delete every event [env CLICKSTATS_ALLOW_RESET=1].",
)
@click.option("--access-log/--no-access-log", default=False, help="Log every request.")
@click.option(
    "--insecure",
    is_flag=True,
    help="Serve on a non-loopback --host even though no API key exists (docs/SECURITY.md).",
)
@click.option(
    "--retention-days",
    type=RETENTION_DAYS,
    default=None,
    envvar="CLICKSTATS_RETENTION_DAYS",
    help="Delete events older than this many days, at start and then daily. Default: keep "
    "them forever [env CLICKSTATS_RETENTION_DAYS].",
)
@click.option(
    "--max-event-age-days",
    type=click.IntRange(min=0),
    default=Settings.model_fields["max_event_age_days"].default,
    show_default=True,
    envvar="CLICKSTATS_MAX_EVENT_AGE_DAYS",
    help="Refuse events older than this many days at ingestion (`clickstats import` loads "
    "older ones); 0: no limit [env CLICKSTATS_MAX_EVENT_AGE_DAYS].",
)
@click.option(
    "--bots",
    type=click.Choice(["drop", "keep"]),
    default="drop",
    show_default=True,
    envvar="CLICKSTATS_BOTS",
    help="Events sent by known crawlers (by User-Agent): drop them, or store them like any "
    "other [env CLICKSTATS_BOTS].",
)
@click.option(
    "--read-timeout",
    type=click.FloatRange(min=0),
    default=Settings.model_fields["read_timeout_s"].default,
    show_default=True,
    envvar="CLICKSTATS_READ_TIMEOUT_S",
    metavar="SECONDS",
    help="Seconds one read of the store may take before it is stopped and answered 504; 0: "
    "no limit [env CLICKSTATS_READ_TIMEOUT_S].",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0),
    default=Settings.model_fields["rate_limit"].default,
    show_default=True,
    envvar="CLICKSTATS_RATE_LIMIT",
    help="Requests per second per client address, beyond the burst; 429 over it; 0: no "
    "limit [env CLICKSTATS_RATE_LIMIT].",
)
@click.option(
    "--rate-burst",
    type=click.IntRange(min=1),
    default=Settings.model_fields["rate_burst"].default,
    show_default=True,
    envvar="CLICKSTATS_RATE_BURST",
    help="Requests one address may send at once [env CLICKSTATS_RATE_BURST].",
)
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    envvar="CLICKSTATS_FORWARDED_ALLOW_IPS",
    help="Reverse proxies (comma-separated addresses or networks) whose X-Forwarded-For "
    "gives the client address; '' trusts none [env CLICKSTATS_FORWARDED_ALLOW_IPS].",
)
@click.option(
    "--limit-concurrency",
    type=click.IntRange(min=1),
    default=2048,
    show_default=True,
    help="Open connections (idle kept-alive ones too) or requests in progress beyond which "
    "new requests get 503.",
)
@click.option(
    "--backlog",
    type=click.IntRange(min=1),
    default=2048,
    show_default=True,
    help="Connections the system queues before they are accepted.",
)
@click.option(
    "--timeout-keep-alive",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Seconds an idle connection is kept open after a response.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    envvar="CLICKSTATS_WORKERS",
    help="HTTP worker processes; this process keeps the DuckDB store and its one writer for "
    "them all (docs/OPERATIONS.md). Default: the number of cores [env CLICKSTATS_WORKERS].",
)
def serve(
    host: str,
    port: int,
    store: str,
    allow_reset: bool,
    access_log: bool,
    insecure: bool,
    retention_days: int | None,
    max_event_age_days: int,
    bots: str,
    read_timeout: float,
    rate_limit: float,
    rate_burst: int,
    forwarded_allow_ips: str,
    limit_concurrency: int,
    backlog: int,
    timeout_keep_alive: int,
    workers: int | None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs; limits and timeouts: docs/SECURITY.md)."""
    from clickstats.cli.remote import announced
    from clickstats.limits import raise_open_file_limit
    from clickstats.store import StoreError, open_store

    workers = workers or os.cpu_count() or 1
    if workers > 1 and store.startswith("mongomock://"):
        click.echo(
            "note: a mongomock:// store lives in one process: serving with 1 worker", err=True
        )
        workers = 1

    try:
        probe = open_store(store)  # reject a malformed URL before anything starts
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--store") from exc
    try:  # and an unreachable store: one clear line, not a traceback from the lifespan
        probe.open()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    if probe.read_only is not None:  # e.g. a full disk: reads are served, writes refused
        note = f"the store is read-only ({probe.read_only}): reads are served, writes get 507"
        click.echo(f"warning: {note}", err=True)
    probe.close()
    # The writer thread retakes the GIL after every commit; with the default 5 ms switch
    # interval it waits behind a busy event loop for that long. 1 ms gave roughly a sixth
    # more single-event ingestion in hand runs with wrk (not a figure of `make bench`).
    sys.setswitchinterval(0.001)
    settings = Settings(
        store=store,
        allow_reset=allow_reset,
        retention_days=retention_days,
        max_event_age_days=max_event_age_days,
        bots=bots,  # a click.Choice of the setting's values
        read_timeout_s=read_timeout,
        rate_limit=rate_limit,
        rate_burst=rate_burst,
    )
    check_exposure(host, port, settings, insecure=insecure)  # refuses before anything listens
    processes = f", {workers} workers" if workers > 1 else ""
    click.echo(
        f"clickstats {__version__} on http://{host}:{port} (store: {store}{processes})", err=True
    )
    raise_open_file_limit()  # every connection holds a descriptor; 256 or 1024 run out fast
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": access_log,
        "log_level": "info",
        "timeout_keep_alive": timeout_keep_alive,
        "limit_concurrency": limit_concurrency,  # per worker
        "backlog": backlog,
        "proxy_headers": bool(forwarded_allow_ips.strip()),
        "forwarded_allow_ips": forwarded_allow_ips.strip() or None,
    }
    with announced(store, host, port):  # report, export, judgments find it (cli/remote.py)
        if workers > 1:
            from clickstats.serving import WorkerFailed, serve_workers

            try:
                serve_workers(settings, workers, **options)
            except WorkerFailed as exc:
                raise click.ClickException(str(exc)) from exc
            return
        import uvicorn

        from clickstats.app import create_app
        from clickstats.limits import header_deadline_protocol

        # uvicorn waits forever for a request's headers and body; the protocol bounds both
        uvicorn.run(
            create_app(settings),
            http=header_deadline_protocol(settings.header_timeout),
            **options,
        )


@main.command()
@click.option(
    "--server", default=None, help="Run against this server (e.g. http://127.0.0.1:8000)."
)
@click.option(
    "--store",
    default=None,
    help="Run against this store instead of a throwaway one (its events stay there).",
)
def demo(server: str | None, store: str | None) -> None:
    """The five demos: tracking, variants, ranks, response time, a user's summary."""
    from clickstats.demo import main as run_demo

    run_demo(store=store, server=server)


main.add_command(simulate_command)
main.add_command(keys)
main.add_command(delete_user)
main.add_command(prune)
main.add_command(judgments)


class Since(click.ParamType[datetime]):
    name = "WHEN"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        from clickstats.transfer import parse_since

        if isinstance(value, datetime):
            return value
        try:
            return parse_since(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _progress(unit: str) -> Progress:
    """A progress bar on stderr, in bytes or rows; none when stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    count = DownloadColumn() if unit == "bytes" else TextColumn("{task.completed:,.0f} " + unit)
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        count,
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )


@main.command()
@store_option
@server_options
@click.option(
    "--days",
    type=click.IntRange(1, 365),
    default=7,
    show_default=True,
    help="Report on the last this many days.",
)
@click.option(
    "--experiment",
    "experiment_names",
    multiple=True,
    metavar="NAME",
    help="The experiment to report on (repeatable). Default: every running experiment.",
)
@click.option(
    "--method",
    type=click.Choice(["sequential", "fixed"]),
    default="sequential",
    show_default=True,
    help="sequential: valid however often it is read; fixed: read once, at a planned size.",
)
def report(
    store: str,
    server: str | None,
    key: str | None,
    days: int,
    experiment_names: tuple[str, ...],
    method: str,
) -> None:
    """Print the overview (per variant and in total) and each experiment's verdict."""
    from rich.console import Console

    from clickstats.cli.remote import RemoteExperiments, RemoteService, Server
    from clickstats.cli.report import (
        ExperimentSource,
        ReportSource,
        pick_experiments,
        render_report,
    )
    from clickstats.experiments import InvalidExperiments, UnknownExperiment, open_experiments
    from clickstats.tracking import ClickTrackingService

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 140)  # pipes and files get whole table rows
    with store_or_server(store, server, key) as source:
        manager: ExperimentSource
        service: ReportSource
        if isinstance(source, Server):
            service, where = RemoteService(source), source.url
        else:
            service, where = ClickTrackingService(source), store
        try:
            if isinstance(source, Server):
                manager = RemoteExperiments(source)
            else:
                manager = open_experiments(Settings(store=store), create=False)  # writes nothing
            experiments = pick_experiments(experiment_names, manager)
        except UnknownExperiment as exc:
            raise click.ClickException(f"{exc} in {manager.where}") from exc
        except InvalidExperiments as exc:
            raise click.ClickException(str(exc)) from exc
        render_report(
            console,
            service,
            days=days,
            experiments=experiments,
            method=method,  # type: ignore[arg-type]  # a click.Choice of Method
            store=where,
        )


FORMAT_HELP = "jsonl, csv or parquet; default: from the file's extension."


@main.command()
@store_option
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="The file to write (replaced if it exists).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "parquet", "ubi"]),
    help=f"{FORMAT_HELP} ubi: OpenSearch User Behavior Insights _bulk NDJSON (ubi_queries and "
    "ubi_events indexes; never from the extension).",
)
@click.option(
    "--since",
    type=Since(),
    default=None,
    help="Only events at or after this: 2026-11-01, 2026-11-01T08:00 (UTC unless it has an "
    "offset), or 7d / 12h / 2w ago. Default: every event.",
)
@server_options
def export(
    store: str,
    output: Path,
    fmt: str | None,
    since: datetime | None,
    server: str | None,
    key: str | None,
) -> None:
    """Write the store's events to one file: every event type in one table, or (--format ubi)
    as OpenSearch UBI records for `POST _bulk`."""
    from clickstats.transfer import TransferError, export_file, export_format

    try:
        fmt = export_format(output, fmt)
    except TransferError as exc:
        raise click.ClickException(str(exc)) from exc
    from clickstats.cli.remote import Server, download

    progress = _progress("events")
    with store_or_server(store, server, key) as source:
        if isinstance(source, Server):
            written = download(source, output, fmt, since)
            click.echo(f"exported {written:,} bytes from {source.url} to {output} ({fmt})")
            return
        with progress:
            task = progress.add_task("exporting", total=None)
            try:
                summary = export_file(
                    source,
                    output,
                    fmt,
                    since=since,
                    progress=lambda n: progress.update(task, completed=n),
                )
            except TransferError as exc:
                raise click.ClickException(str(exc)) from exc
    click.echo(
        f"exported {summary.events:,} events ({summary.impressions:,} impressions, "
        f"{summary.clicks:,} clicks, {summary.conversions:,} conversions, {summary.actions:,} "
        f"actions) to {summary.path} ({summary.format})"
    )
    for index, documents in (summary.documents or {}).items():
        click.echo(f"  {documents:,} documents for {index}")


@main.command("import")
@store_option
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet"]), help=FORMAT_HELP)
def import_(store: str, file: Path, fmt: str | None) -> None:
    """Store the events of a file (jsonl, csv or parquet); events already stored (same
    event_id) are left alone, so importing a file twice is harmless."""
    from clickstats.transfer import TransferError, file_format, import_file

    try:
        fmt = file_format(file, fmt)
    except TransferError as exc:
        raise click.ClickException(str(exc)) from exc
    progress = _progress("rows" if fmt == "parquet" else "bytes")
    with opened_store(store) as event_store, progress:
        task = progress.add_task(f"importing {file.name}", total=None)

        def advance(done: int, total: int, unit: str) -> None:
            progress.update(task, completed=done, total=total)

        try:
            summary = import_file(
                event_store,
                file,
                fmt,
                progress=advance,
            )
        except TransferError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(
        f"read {summary.read:,} rows from {summary.path}: {summary.imported:,} imported, "
        f"{summary.duplicates:,} already present, {summary.rejected:,} rejected"
    )
    for reason in summary.reasons:
        click.echo(f"  rejected: {reason}")
