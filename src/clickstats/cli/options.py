"""Options shared by the `clickstats` commands, defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from clickstats.settings import DEFAULT_STORE

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
