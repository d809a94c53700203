"""Options shared by the `clickstats` commands, defined once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from clickstats.settings import DEFAULT_STORE

if TYPE_CHECKING:
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


@contextmanager
def opened_store(
    url: str, busy: str = "Stop it first (DuckDB allows one process at a time)."
) -> Iterator[EventStore]:
    """The store a --store URL names, open; its problems as one line each (`busy`: what to do
    when another process holds it)."""
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
    try:
        yield store
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
