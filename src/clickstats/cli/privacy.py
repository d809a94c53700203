"""`clickstats delete-user` and `clickstats prune`: erase one user, apply a retention period.

Both work on the store directly. A DuckDB file allows one process at a time: while a server
runs on it, use `DELETE /analytics/users/{user_id}` instead (its retention is
`serve --retention-days`). MongoDB stores take them while servers run.
"""

from __future__ import annotations

import click

from clickstats.cli.options import opened_store, store_option
from clickstats.events import MAX_ID_LENGTH

RETENTION_DAYS = click.IntRange(min=1)


@click.command("delete-user")
@store_option
@click.argument("user_id")
def delete_user(store: str, user_id: str) -> None:
    """Delete every click and impression of USER_ID (a request to erase their data)."""
    from clickstats.privacy import describe

    if not 1 <= len(user_id) <= MAX_ID_LENGTH:
        raise click.BadParameter(
            f"must be 1 to {MAX_ID_LENGTH} characters, got {len(user_id)}", param_hint="USER_ID"
        )
    with opened_store(store) as event_store:
        deleted = event_store.delete_user(user_id)
    click.echo(f"deleted user {user_id!r}: {describe(deleted)}")


@click.command()
@store_option
@click.option(
    "--retention-days",
    type=RETENTION_DAYS,
    required=True,
    envvar="CLICKSTATS_RETENTION_DAYS",
    help="Delete the events older than this many days (by event time) "
    "[env CLICKSTATS_RETENTION_DAYS].",
)
def prune(store: str, retention_days: int) -> None:
    """Delete the events older than --retention-days days, once (a server applies its
    `serve --retention-days` itself, at start and daily)."""
    from clickstats.privacy import describe, retention_cutoff

    cutoff = retention_cutoff(retention_days)
    with opened_store(store) as event_store:
        deleted = event_store.delete_before(cutoff)
    when = cutoff.isoformat(timespec="seconds").replace("+00:00", "Z")
    click.echo(f"deleted {describe(deleted)} older than {retention_days} days (before {when})")
