"""The DuckDB tables, and their stored columns derived from the event models.

The CREATE TABLE statements are the layout of the first release, which existing files have;
every stored field (`clickstats.store.fields`) they lack is added by ALTER TABLE, so that a
field added to an event model becomes a column without another edit. The event time is the
SQL column ``ts``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from clickstats.store.base import EventRow
from clickstats.store.fields import (
    ACTION_FIELDS,
    CLICK_FIELDS,
    CONVERSION_FIELDS,
    IMPRESSION_FIELDS,
    Field,
    Kind,
)

_CREATE = """
CREATE TABLE IF NOT EXISTS impressions (
    event_id         VARCHAR PRIMARY KEY,
    search_id        VARCHAR NOT NULL,
    user_id          VARCHAR NOT NULL,
    session_id       VARCHAR,
    query            VARCHAR NOT NULL,
    variant          VARCHAR NOT NULL,
    results_count    INTEGER NOT NULL,
    response_time_ms DOUBLE,
    results          VARCHAR[],
    ts               TIMESTAMP NOT NULL,  -- event time, UTC
    received_at      TIMESTAMP NOT NULL   -- server time of the commit, UTC
);
CREATE TABLE IF NOT EXISTS click_events (
    event_id         VARCHAR PRIMARY KEY,
    search_id        VARCHAR,
    user_id          VARCHAR NOT NULL,
    session_id       VARCHAR,
    product_id       VARCHAR NOT NULL,
    rank             INTEGER NOT NULL,
    search_query     VARCHAR NOT NULL,
    variant          VARCHAR,  -- NULL: not sent; reports take the cited search's
    response_time_ms DOUBLE,
    source           VARCHAR NOT NULL,
    ts               TIMESTAMP NOT NULL,
    received_at      TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS conversions (
    event_id         VARCHAR PRIMARY KEY,
    user_id          VARCHAR NOT NULL,
    ts               TIMESTAMP NOT NULL,
    received_at      TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
    event_id         VARCHAR PRIMARY KEY,
    user_id          VARCHAR NOT NULL,
    ts               TIMESTAMP NOT NULL,
    received_at      TIMESTAMP NOT NULL
);
CREATE INDEX IF NOT EXISTS impressions_user ON impressions (user_id);
CREATE INDEX IF NOT EXISTS click_events_user ON click_events (user_id);
"""

#: The SQL type of each stored kind.
SQL_TYPES: dict[Kind, str] = {
    "text": "VARCHAR",
    "integer": "INTEGER",
    "number": "DOUBLE",
    "texts": "VARCHAR[]",
    "integers": "INTEGER[]",
    "numbers": "DOUBLE[]",
    "time": "TIMESTAMP",
}
_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "VARCHAR[]": pa.list_(pa.string()),
    "INTEGER[]": pa.list_(pa.int32()),
    "DOUBLE[]": pa.list_(pa.float64()),
    "TIMESTAMP": pa.timestamp("us"),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(value: datetime) -> int:
    """TIMESTAMP values travel as epoch microseconds."""
    return (value - _EPOCH) // _MICROSECOND


@dataclass(frozen=True)
class Column:
    """A stored field as a column: its SQL name and the SQL type of one value."""

    field: Field

    @property
    def name(self) -> str:
        return "ts" if self.field.name == "timestamp" else self.field.name

    @property
    def type(self) -> str:
        return SQL_TYPES[self.field.kind]

    def values(self, events: Sequence[BaseModel]) -> list[Any]:
        values = self.field.values(events)
        if self.field.kind == "time":
            return [(value - _EPOCH) // _MICROSECOND for value in values]  # micros(), inline
        return values


@dataclass(frozen=True)
class Table:
    name: str
    fields: tuple[Field, ...]

    @cached_property
    def columns(self) -> tuple[Column, ...]:
        return tuple(Column(f) for f in self.fields)

    def values(self, events: Sequence[BaseModel]) -> list[list[Any]]:
        """The events' values, one list per column."""
        return [c.values(events) for c in self.columns]

    @cached_property
    def arrow_schema(self) -> pa.Schema:
        types = [*((c.name, c.type) for c in self.columns), ("received_at", "TIMESTAMP")]
        return pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in types])

    @cached_property
    def sql(self) -> dict[tuple[bool, bool], str]:
        """(from Arrow?, only new ids?) -> INSERT statement."""
        names = ", ".join([*(c.name for c in self.columns), "received_at"])
        lists = [
            f"make_timestamp(unnest(${i}::BIGINT[]))"
            if c.type == "TIMESTAMP"
            else f"unnest(${i}::{c.type}[])"
            for i, c in enumerate(self.columns, start=1)
        ]
        from_lists = f"SELECT {', '.join(lists)}, make_timestamp(${len(lists) + 1}::BIGINT)"
        out = {}
        for arrow, source in ((False, from_lists), (True, f"SELECT {names} FROM incoming")):
            plain = f"INSERT INTO {self.name} ({names}) {source}"
            out[arrow, False] = plain
            out[arrow, True] = f"{plain} ON CONFLICT DO NOTHING RETURNING event_id"
        return out

    def event_row(self, kind: str, row: Sequence[Any]) -> EventRow:
        """A stored row (its columns in `columns` order) as an exported event."""
        out: EventRow = {"type": kind}
        for column, value in zip(self.columns, row, strict=True):
            out[column.field.name] = value
        out["timestamp"] = out["timestamp"].replace(tzinfo=UTC)
        return out


CLICKS = Table("click_events", CLICK_FIELDS)
IMPRESSIONS = Table("impressions", IMPRESSION_FIELDS)
CONVERSIONS = Table("conversions", CONVERSION_FIELDS)
ACTIONS = Table("actions", ACTION_FIELDS)
#: Each event type's table, in the order of store.base.EVENT_TYPES.
TABLES: dict[str, Table] = {
    "impression": IMPRESSIONS,
    "click": CLICKS,
    "conversion": CONVERSIONS,
    "action": ACTIONS,
}


def _created(table: str) -> set[str]:
    """The columns `table` has in _CREATE."""
    body = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \((.*?)\n\);", _CREATE, re.S)
    assert body is not None
    return set(re.findall(r"^\s+(\w+)\s", body.group(1), re.M))


def _added(table: Table) -> list[str]:
    """ALTER TABLE statements for the stored fields the first release's table lacks."""
    created = _created(table.name)
    return [
        f"ALTER TABLE {table.name} ADD COLUMN IF NOT EXISTS {c.name} {c.type};"
        for c in table.columns
        if c.name not in created
    ]


#: The whole schema, run at every open (each statement is a no-op when done before). The
#: interleaving teams came after the first release, hence the ALTER TABLE; conversions are
#: created with their ids and times, and the rest of their fields added the same way.
SCHEMA = (
    _CREATE
    + "-- fields added after the first release (interleaving: the team, A or B, of each position)\n"
    + "".join(f"{statement}\n" for table in TABLES.values() for statement in _added(table))
    + "CREATE INDEX IF NOT EXISTS conversions_user ON conversions (user_id);\n"
    + "CREATE INDEX IF NOT EXISTS actions_user ON actions (user_id);\n"
)

#: Columns NOT NULL in the first release that may be null now: a click's variant (a click may
#: omit it) and a search's results_count (a client may not know it: a UBI query without hit
#: ids). Each is (table, column, the table's user index).
NULLABLE = (
    ("click_events", "variant", "click_events_user"),
    ("impressions", "results_count", "impressions_user"),
)


def nullable(table: str, column: str, index: str) -> str:
    """The statements that drop a column's NOT NULL. DuckDB alters no column of a table with an
    index on it: the user index goes and comes back (seconds on millions of rows, once)."""
    return f"""
BEGIN;
DROP INDEX {index};
ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL;
CREATE INDEX {index} ON {table} (user_id);
COMMIT;
"""
