"""The `clickstats` command: one group, thin commands that parse, build and call."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from clickstats import __version__
from clickstats.settings import DEFAULT_STORE, Settings
from clickstats.simulate import simulate_command

F = TypeVar("F", bound=Callable[..., Any])


def store_option(func: F) -> F:
    return click.option(
        "--store",
        envvar="CLICKSTATS_STORE",
        default=DEFAULT_STORE,
        show_default=True,
        help="Event store: duckdb:///abs/path.duckdb, duckdb://relative/path.duckdb, "
        "mongodb://host/database or mongodb+srv://... (docs/SCALING.md) [env CLICKSTATS_STORE]",
    )(func)


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
def serve(host: str, port: int, store: str, allow_reset: bool, access_log: bool) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from clickstats.app import create_app
    from clickstats.store import StoreError, open_store

    try:
        probe = open_store(store)  # reject a malformed URL before anything starts
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--store") from exc
    try:  # and an unreachable store: one clear line, not a traceback from the lifespan
        probe.open()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    probe.close()
    # The writer thread retakes the GIL after every commit; with the default 5 ms switch
    # interval it waits behind a busy event loop for that long. 1 ms gave roughly a sixth
    # more single-event ingestion in hand runs with wrk (not a figure of `make bench`).
    sys.setswitchinterval(0.001)
    settings = Settings(store=store, allow_reset=allow_reset)
    click.echo(f"clickstats {__version__} on http://{host}:{port} (store: {store})", err=True)
    uvicorn.run(create_app(settings), host=host, port=port, access_log=access_log, log_level="info")


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
