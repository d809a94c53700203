"""Event stores, chosen by URL: ``duckdb:///abs/path.duckdb``, ``duckdb://rel/path.duckdb``."""

from __future__ import annotations

from clickstats.store.base import EventStore, StoreError

__all__ = ["EventStore", "StoreError", "open_store"]


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
    raise ValueError(f"unknown store {url!r}: use duckdb:///path/to/file.duckdb")
