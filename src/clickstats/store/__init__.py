"""Event stores, chosen by URL.

- ``duckdb:///abs/path.duckdb``, ``duckdb://rel/path.duckdb`` (or a bare path): the embedded default.
- ``mongodb://...`` and ``mongodb+srv://...``: a MongoDB deployment (docs/SCALING.md); the
  database is the URI's path (default ``clickstats``).
- ``mongomock://host/db``: an in-process mongomock database, for tests and demos only: the
  data lives in this process's memory, shared by every mongomock:// store with that host.
"""

from __future__ import annotations

from clickstats.store.base import EventStore, StoreError

__all__ = ["EventStore", "StoreError", "open_store"]

USAGE = (
    "use duckdb:///path/to/file.duckdb, mongodb://host/database (or mongodb+srv://), "
    "or mongomock://host/database (tests and demos only)"
)


def open_store(url: str) -> EventStore:
    """Build (not yet open) the store a URL names; a bare path means a DuckDB file."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "duckdb", url
    if scheme == "duckdb":
        if not rest:
            raise ValueError(f"store URL {url!r} names no file: use duckdb:///path/to/file.duckdb")
        from clickstats.store.duckdb import DuckDBStore

        return DuckDBStore(rest)
    if scheme in ("mongodb", "mongodb+srv"):
        from clickstats.store.mongo import MongoStore

        return MongoStore(url)
    if scheme == "mongomock":
        from clickstats.store.mongo import MongoStore, mongomock_client

        return MongoStore(url, client_factory=mongomock_client)
    raise ValueError(f"unknown store {url!r}: {USAGE}")
