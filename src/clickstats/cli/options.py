"""Options shared by the `clickstats` commands, defined once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from clickstats.settings import DEFAULT_STORE

if TYPE_CHECKING:
    from clickstats.cli.remote import Server
    from clickstats.store.base import EventStore

F = TypeVar("F", bound=Callable[..., Any])

STORE_HELP = (
    "Event store: duckdb:///abs/path.duckdb, duckdb://relative/path.duckdb, "
    "mongodb://host/database or mongodb+srv://... (docs/SCALING.md) [env CLICKSTATS_STORE]"
)


def store_option_with(help: str) -> Callable[[F], F]:
    """`--store` (env CLICKSTATS_STORE) with this help text."""

    def decorate(func: F) -> F:
        return click.option(
            "--store",
            envvar="CLICKSTATS_STORE",
            default=DEFAULT_STORE,
            show_default=True,
            help=help,
        )(func)

    return decorate


store_option = store_option_with(STORE_HELP)


def _open(url: str, busy: str) -> EventStore:
    from clickstats.settings import Settings
    from clickstats.store import StoreError, open_store

    try:
        window = timedelta(hours=Settings().attribution_window_hours)
        store = open_store(url, attribution_window=window)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--store") from exc
    try:
        store.open()
    except StoreError as exc:
        raise click.ClickException(f"{exc}\nIs a server running on this store? {busy}") from exc
    return store


@contextmanager
def _closing(store: EventStore) -> Iterator[EventStore]:
    from clickstats.store import StoreError

    try:
        yield store
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()


@contextmanager
def opened_store(
    url: str, busy: str = "Stop it first (DuckDB allows one process at a time)."
) -> Iterator[EventStore]:
    """The store a --store URL names, open; its problems as one line each (`busy`: what to do
    when another process holds it)."""
    with _closing(_open(url, busy)) as store:
        yield store


SERVER_HELP = (
    "Read through this running server's HTTP API (e.g. http://127.0.0.1:8000) instead of "
    "opening the store; found by itself when `clickstats serve` holds the store "
    "[env CLICKSTATS_SERVER]"
)
KEY_HELP = "A read (or admin) API key for the server, when its keys are on [env CLICKSTATS_KEY]"


def server_options(func: F) -> F:
    """`--server URL` (env CLICKSTATS_SERVER) and `--key KEY` (env CLICKSTATS_KEY)."""
    func = click.option(
        "--key", envvar="CLICKSTATS_KEY", default=None, metavar="KEY", help=KEY_HELP
    )(func)
    return click.option(
        "--server", envvar="CLICKSTATS_SERVER", default=None, metavar="URL", help=SERVER_HELP
    )(func)


BUSY = (
    "Stop it first, or read through it: --server URL (clickstats serve records its address "
    "beside the store; docs/CLI.md)."
)


@contextmanager
def store_or_server(
    store: str, server: str | None, key: str | None
) -> Iterator[EventStore | Server]:
    """The server given, else the store open, else (the store held by `clickstats serve`)
    the server that holds it: a read-only command runs beside a live server."""
    from clickstats.cli.remote import Server, held, holder, recorded_server

    if server is None:
        quiet = logging.getLogger("clickstats.store")  # the error below says it all, once
        was, quiet.disabled = quiet.disabled, True
        try:
            event_store = _open(store, BUSY)
        except click.ClickException as exc:
            quiet.disabled = was
            if exc.__cause__ is None or not held(exc.__cause__):
                raise
            server = recorded_server(store, holder(exc.__cause__))
            if server is None:
                raise
            click.echo(f"the store is held by the server at {server}: reading through it", err=True)
        else:
            quiet.disabled = was
            with _closing(event_store) as opened:
                yield opened
            return
    remote = Server(server, key)
    try:
        yield remote
    finally:
        remote.close()
