"""Event stores, chosen by URL.

- ``duckdb:///abs/path.duckdb``, ``duckdb://rel/path.duckdb`` (or a bare path): the embedded default.
- ``mongodb://...`` and ``mongodb+srv://...``: a MongoDB deployment (docs/SCALING.md); the
  database is the URI's path (default ``clickstats``).
- ``mongomock://host/db``: an in-process mongomock database, for tests and demos only: the
  data lives in this process's memory, shared by every mongomock:// store with that host.
"""

from __future__ import annotations

from datetime import timedelta

from clickstats.store.base import DEFAULT_ATTRIBUTION_WINDOW, EventStore, ReadTimeout, StoreError

__all__ = ["EventStore", "ReadTimeout", "StoreError", "open_store"]

USAGE = (
    "use duckdb:///path/to/file.duckdb, mongodb://host/database (or mongodb+srv://), "
    "or mongomock://host/database (tests and demos only)"
)


def open_store(
    url: str,
    *,
    read_timeout_s: float | None = None,
    attribution_window: timedelta = DEFAULT_ATTRIBUTION_WINDOW,
) -> EventStore:
    """Build (not yet open) the store a URL names; a bare path means a DuckDB file. A read
    that takes longer than `read_timeout_s` is stopped (ReadTimeout); None: no limit.
    `attribution_window`: how long after a click a conversion counts for its search."""
    store = _store(url, read_timeout_s)
    store.attribution_window = attribution_window
    return store


def _store(url: str, read_timeout_s: float | None) -> EventStore:
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "duckdb", url
    if scheme == "duckdb":
        if not rest:
            raise ValueError(f"store URL {url!r} names no file: use duckdb:///path/to/file.duckdb")
        from clickstats.store.duckdb import DuckDBStore

        return DuckDBStore(rest, read_timeout_s=read_timeout_s)
    if scheme in ("mongodb", "mongodb+srv"):
        from clickstats.store.mongo import MongoStore

        return MongoStore(url, read_timeout_s=read_timeout_s)
    if scheme == "mongomock":
        from clickstats.store.mongo import MongoStore, mongomock_client

        return MongoStore(url, client_factory=mongomock_client, read_timeout_s=read_timeout_s)
    raise ValueError(f"unknown store {url!r}: {USAGE}")
