"""`clickstats keys create|list|revoke`: API keys, kept beside the store (docs/SECURITY.md).

The keys document can change while a server runs on the store; the server sees the change
within about a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from clickstats.cli.options import store_option_with

if TYPE_CHECKING:
    from clickstats.settings import Settings
    from clickstats.state import StateStore

SCOPE_NOTES = {
    "ingest": "An ingest key is public: put it in the pages that send events.",
    "read": "A read key is a secret: give it only to those who may see the reports.",
    "admin": "An admin key is a secret: it can change experiments and delete data.",
}


def _state(store: str) -> StateStore:
    from clickstats.state import open_state

    try:
        return open_state(store)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--store") from exc


@click.group()
def keys() -> None:
    """Create, list and revoke API keys. With no key, the API is open to anyone who can
    reach it; once one exists, every API request needs a key."""


@keys.command()
@store_option_with("The store whose keys these are (they live beside it) [env CLICKSTATS_STORE].")
@click.option(
    "--scope",
    type=click.Choice(["ingest", "read", "admin"]),
    required=True,
    help="ingest: send events (public); read: read reports; admin: everything.",
)
@click.option("--name", required=True, help="Who or what uses the key (shown by `keys list`).")
@click.option(
    "--origin",
    "origins",
    multiple=True,
    metavar="URL",
    help="Ingest keys: accept the key only from pages of this origin (repeatable), "
    "e.g. https://shop.example.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Requests per second allowed with this key (default: the server's rate limit).",
)
def create(store: str, scope: str, name: str, origins: tuple[str, ...], rate: float | None) -> None:
    """Create a key and print it; it is shown this once and never stored."""
    from pydantic import ValidationError

    from clickstats.keys import create_key
    from clickstats.state import StateWriteError

    state = _state(store)
    try:
        key, plain = create_key(state, scope=scope, name=name, origins=origins, rate=rate)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise click.BadParameter(error["msg"], param_hint=f"--{field}") from None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except StateWriteError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {scope} key {key.id} ({key.name}) in {state.describe('keys')}", err=True)
    click.echo(plain)  # alone on stdout: KEY=$(clickstats keys create ...)
    click.echo(f"Copy it now: it is not shown again. {SCOPE_NOTES[scope]}", err=True)


@keys.command("list")
@store_option_with("The store whose keys these are (they live beside it) [env CLICKSTATS_STORE].")
def list_(store: str) -> None:
    """Every key with its id, name, scope and limits; never the key itself."""
    from rich.console import Console
    from rich.table import Table

    from clickstats.keys import list_keys

    found = list_keys(_state(store))
    if not found:
        click.echo("no API keys: the API is open; create one with `clickstats keys create`")
        return
    table = Table("id", "name", "scope", "origins", "rate/s", "created (UTC)", "status")
    for key in found:
        status = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        table.add_row(
            key.id,
            key.name,
            key.scope,
            ", ".join(key.origins) or "any",
            "default" if key.rate is None else f"{key.rate:g}",
            f"{key.created_at:%Y-%m-%d %H:%M}",
            status,
        )
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 140)  # pipes and files get whole rows
    console.print(table)


@keys.command()
@store_option_with("The store whose keys these are (they live beside it) [env CLICKSTATS_STORE].")
@click.argument("key_id", metavar="ID")
def revoke(store: str, key_id: str) -> None:
    """Revoke a key by its id (`keys list`); servers refuse it within a second."""
    from clickstats.keys import UnknownKey, list_keys, revoke_key
    from clickstats.state import StateWriteError

    state = _state(store)
    try:
        key = revoke_key(state, key_id)
    except UnknownKey as exc:
        raise click.ClickException(str(exc.args[0])) from None
    except StateWriteError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"revoked {key.scope} key {key.id} ({key.name}) at {key.revoked_at:%Y-%m-%d %H:%M} UTC"
    )
    if all(other.revoked for other in list_keys(state)):
        click.echo(
            "No active key is left: every API request is refused until you create one "
            "with `clickstats keys create` (keys stay required once one was created).",
            err=True,
        )


LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    import ipaddress

    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def check_exposure(host: str, port: int, settings: Settings, *, insecure: bool) -> None:
    """`serve`'s start-up rule: without keys, only this machine may reach the server, unless
    --insecure says otherwise. Raises click.ClickException to refuse."""
    from clickstats.keys import list_keys

    try:
        found = list_keys(_state(settings.store))
    except click.ClickException:
        raise
    except Exception as exc:  # a corrupt keys document: say so instead of serving open
        raise click.ClickException(f"cannot read the API keys: {exc}") from None
    active = sum(1 for key in found if not key.revoked)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if active:
        click.echo(f"API keys required ({active} active)", err=True)
        return
    if settings.require_keys or found:
        click.echo(
            "keys are required and none exists: every API request will be refused until "
            "you create one with `clickstats keys create`",
            err=True,
        )
        return
    if not is_loopback(host) and not insecure:
        raise click.ClickException(
            f"refusing to serve on {address} without API keys: anyone who can reach it could "
            "read and change everything. Create keys first (`clickstats keys create --scope "
            "admin --name NAME`, and an ingest key for your pages), or pass --insecure to "
            "serve it open anyway."
        )
    click.echo(
        f"no API keys: anyone who can reach {address} can read and change everything; "
        "create keys with `clickstats keys create`",
        err=True,
    )
