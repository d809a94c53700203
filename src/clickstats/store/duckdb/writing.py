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

from clickstats.events import utcnow
from clickstats.store.base import Batch, Deleted, Selection
from clickstats.store.duckdb import rollup
from clickstats.store.duckdb.schema import CLICKS, TABLES, Table, micros
from clickstats.store.fields import naive_utc

ARROW_MIN_ROWS = 256


def write(con: duckdb.DuckDBPyConnection, batch: Batch) -> dict[str, set[str]]:
    """Store a batch: one transaction per table; each commit syncs DuckDB's WAL to disk.

    Callers hear back only after every commit. Should a later one fail, the earlier tables'
    events stay stored and the callers get an error: their retry then finds those events
    as duplicates, so nothing is lost or counted twice.
    """
    received_at = micros(utcnow())
    return {
        kind: _insert(con, TABLES[kind], TABLES[kind].values(events), received_at)
        if events
        else set()
        for kind, events in batch.items()
    }


def _insert(
    con: duckdb.DuckDBPyConnection, table: Table, columns: list[list[Any]], received_at: int
) -> set[str]:
    """One table's share of a batch in one transaction; for clicks, with the merge of the new
    ones into the per-search rollup (`rollup`), so that both commit together or not at all."""
    arrow = len(columns[0]) >= ARROW_MIN_ROWS
    params: list[Any] | None
    if arrow:
        rows = [*columns, [received_at] * len(columns[0])]
        con.register("incoming", pa.Table.from_arrays(rows, schema=table.arrow_schema))
        params = None
    else:
        params = [*columns, received_at]
    ids = _position(table, "event_id")
    try:
        try:
            con.begin()
            con.execute(table.sql[arrow, False], params)
            fresh = set(columns[ids])
        except duckdb.ConstraintException:
            # some event_id is stored already (a retry): store only the new ones
            _rollback(con)
            con.begin()
            fresh = {row[0] for row in con.execute(table.sql[arrow, True], params).fetchall()}
        if table is CLICKS and fresh:
            _merge_clicks(con, columns, fresh)
        con.commit()
        return fresh
    except Exception:
        _rollback(con)
        raise
    finally:
        if arrow:
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


def _position(table: Table, name: str) -> int:
    return next(n for n, c in enumerate(table.columns) if c.name == name)


def _merge_clicks(
    con: duckdb.DuckDBPyConnection, columns: list[list[Any]], fresh: set[str]
) -> None:
    """Merge the new clicks of a batch (their ids `fresh`) into the rollup."""
    ids, search_ids, ranks, times = (
        columns[_position(CLICKS, name)] for name in ("event_id", "search_id", "rank", "ts")
    )
    keep = [
        n
        for n, (event_id, search_id) in enumerate(zip(ids, search_ids, strict=True))
        if search_id is not None and event_id in fresh
    ]
    if not keep:
        return
    new = pa.table(
        {
            "search_id": pa.array([search_ids[n] for n in keep], pa.string()),
            "rank": pa.array([ranks[n] for n in keep], pa.int32()),
            "ts": pa.array([times[n] for n in keep], pa.timestamp("us")),
        }
    )
    con.register("new_clicks", new)
    try:
        con.execute(rollup.merge_sql("new_clicks"))
    finally:
        con.unregister("new_clicks")


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
