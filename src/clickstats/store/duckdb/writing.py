"""What the store's one writer thread runs: inserts of a batch, and deletions.

A table's share of a batch is one INSERT statement, fed one of two ways:
- small batches (single events under load) as list parameters, one list per column, zipped
  back into rows by unnest: DuckDB converts the lists in one go and then runs without the GIL.
  An Arrow scan calls back into Python per chunk, and under load each call-back waits behind
  the busy event loop.
- large batches as an Arrow table: converting lists costs DuckDB about 3 times more per row
  than scanning Arrow, which dominates once a batch has hundreds of rows.
"""

from __future__ import annotations

import contextlib
from typing import Any

import duckdb
import pyarrow as pa

from clickstats.store.base import Batch, Deleted, Selection
from clickstats.store.duckdb import rollup
from clickstats.store.duckdb.schema import TABLES, Table
from clickstats.store.fields import naive_utc

ARROW_MIN_ROWS = 256


def write(con: duckdb.DuckDBPyConnection, batch: Batch, received_at: int) -> dict[str, set[str]]:
    """Store a batch in one transaction, whose commit syncs DuckDB's WAL to disk once: every
    table's events are stored together, or none of them. `received_at` (epoch microseconds):
    the batch's server time, later than every earlier batch's (the click rollup's watermark
    relies on it).

    First every table is inserted plainly; should some event_id be stored already (a retry),
    DuckDB refuses the statement, and the batch is stored again, keeping only the new events
    of each table. Callers hear back only after the commit.
    """
    parts = [
        (kind, TABLES[kind], TABLES[kind].values(events))
        for kind, events in batch.items()
        if events
    ]
    # One table (single events under load, mostly): its one statement is its own transaction,
    # without BEGIN and COMMIT (a quarter of a millisecond less per commit).
    alone = len(parts) == 1
    for only_new in (False, True):
        fresh: dict[str, set[str]] = {kind: set() for kind in batch}
        try:
            if not alone:
                con.begin()
            for kind, table, columns in parts:
                fresh[kind] = _insert(con, table, columns, received_at, only_new=only_new)
            if not alone:
                con.commit()
            return fresh
        except duckdb.ConstraintException:
            _rollback(con)
            if only_new:
                raise
        except Exception:
            _rollback(con)
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _insert(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    columns: list[list[Any]],
    received_at: int,
    *,
    only_new: bool,
) -> set[str]:
    """One table's share of a batch, in the caller's transaction (`only_new`: ids stored
    before are skipped, not refused). Returns the ids stored now."""
    arrow = len(columns[0]) >= ARROW_MIN_ROWS
    params: list[Any] | None
    if arrow:
        rows = [*columns, [received_at] * len(columns[0])]
        con.register("incoming", pa.Table.from_arrays(rows, schema=table.arrow_schema))
        params = None
    else:
        params = [*columns, received_at]
    try:
        if only_new:
            fresh = {row[0] for row in con.execute(table.sql[arrow, True], params).fetchall()}
        else:
            con.execute(table.sql[arrow, False], params)
            fresh = set(
                columns[next(n for n, c in enumerate(table.columns) if c.name == "event_id")]
            )
        return fresh
    finally:
        if arrow:  # refused in a failed transaction: the caller's rollback drops it then
            with contextlib.suppress(duckdb.Error):
                con.unregister("incoming")


def warm(con: duckdb.DuckDBPyConnection) -> None:
    """Register (and drop) a one-row Arrow table on `con`, then close it: DuckDB's first
    registration imports its optional data-frame modules (pandas: seconds), which would
    otherwise stall the first large batch a server takes."""
    try:
        con.register("warm", pa.table({"x": [1]}))
        con.unregister("warm")
    except duckdb.Error:  # the store closed meanwhile: nothing to warm
        pass
    finally:
        with contextlib.suppress(duckdb.Error):
            con.close()


def delete(con: duckdb.DuckDBPyConnection, selection: Selection) -> Deleted:
    """Every table in one transaction: a user's clicks never outlive their searches."""
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if selection.user_id is not None:
        conditions.append("user_id = $user")
        params["user"] = selection.user_id
    if selection.before is not None:
        conditions.append("ts < $before")
        params["before"] = naive_utc(selection.before)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    try:
        con.begin()
        # the searches whose clicks go: their rollup rows are recomputed after the deletion
        con.execute(
            "CREATE OR REPLACE TEMP TABLE touched AS SELECT DISTINCT search_id "
            f"FROM click_events{where or ' WHERE true'} AND search_id IS NOT NULL",
            params,
        )
        deleted = {
            kind: _scalar(con.execute(f"DELETE FROM {table.name}{where}", params).fetchone())
            for kind, table in TABLES.items()
        }
        con.execute(rollup.RECOMPUTE)
        con.execute("DROP TABLE touched")
        con.commit()
    except Exception:
        _rollback(con)
        raise
    return Deleted(
        clicks=deleted["click"],
        impressions=deleted["impression"],
        conversions=deleted["conversion"],
        actions=deleted["action"],
    )


def _scalar(row: tuple[Any, ...] | None) -> int:
    return int(row[0]) if row else 0


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):  # no transaction was open: nothing to undo
        con.rollback()
    with contextlib.suppress(duckdb.Error):  # a batch's table left registered by a failure
        con.unregister("incoming")
