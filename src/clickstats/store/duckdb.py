"""The embedded default store: one DuckDB file, one writer thread, group commits.

Every write goes through the single thread of a GroupWriter (DuckDB allows one writer);
each batch is one INSERT per table, and its commit syncs DuckDB's WAL before any caller
hears "stored". Reads use their own cursor per thread and see
committed data only.

A full disk: when the file cannot be opened for writing (full disk, read-only file system) the
store opens it read-only; reads go on and writes raise StoreFull. A write that fails for want
of space raises StoreFull too; if DuckDB's checkpoint after it failed (which makes DuckDB refuse
every further query), the database is opened again, read-only, and reads go on.
Error messages name the file, never its path (they reach HTTP answers); logs keep the path.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from clickstats.events import DEFAULT_VARIANT, ClickEvent, SearchImpression, utcnow
from clickstats.store.base import (
    LATENCY_EDGES_MS,
    P95,
    Activity,
    Counts,
    Deleted,
    EventRow,
    EventStore,
    Filters,
    Grouping,
    LatencyStats,
    PreferenceSums,
    ProductClicks,
    RankHistogram,
    SearchesHistogram,
    SearchTotals,
    Selection,
    StoreError,
    StoreFull,
    TotalsOrder,
    UserSums,
    without_paths,
)
from clickstats.store.writer import GroupWriter, GroupWritten
from clickstats.timezones import utc_offsets

SCHEMA = """
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
CREATE INDEX IF NOT EXISTS impressions_user ON impressions (user_id);
CREATE INDEX IF NOT EXISTS click_events_user ON click_events (user_id);
-- interleaving: the team (A or B) of each position; added after the first release
ALTER TABLE impressions ADD COLUMN IF NOT EXISTS teams VARCHAR[];
"""
#: Files created before clicks could omit their variant have click_events.variant NOT NULL.
#: DuckDB alters no column of a table with an index on it: the user index goes and comes back.
_NULLABLE_CLICK_VARIANT = """
BEGIN;
DROP INDEX click_events_user;
ALTER TABLE click_events ALTER COLUMN variant DROP NOT NULL;
CREATE INDEX click_events_user ON click_events (user_id);
COMMIT;
"""

log = logging.getLogger("clickstats.store")

#: Why a store cannot take writes (the start of its 507 answers).
DISK_FULL = "the disk is full"
NOT_WRITABLE = "the store's file cannot be written"
_READ_ONLY = {
    DISK_FULL: "the store is read-only: the disk is full. Reads go on; free space on the "
    "server and restart it to store events again.",
    NOT_WRITABLE: "the store is read-only: its file cannot be written. Reads go on; make it "
    "writable and restart the server to store events again.",
}
_FULL = tuple(os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT))
_REFUSED = tuple(os.strerror(code) for code in (errno.EROFS, errno.EACCES, errno.EPERM))
#: DuckDB's words for a database that answers nothing more after a fatal error
_INVALIDATED = "database has been invalidated"


def _unwritable(exc: BaseException) -> str | None:
    """DISK_FULL or NOT_WRITABLE when `exc` says that the file system refused a write
    (DuckDB reports the system's error text, e.g. "No space left on device")."""
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return DISK_FULL
        return NOT_WRITABLE if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) else None
    text = str(exc)
    if any(words in text for words in _FULL):
        return DISK_FULL
    return NOT_WRITABLE if any(words in text for words in _REFUSED) else None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# A table's share of a batch is one INSERT statement, fed one of two ways:
# - small batches (single events under load) as list parameters, one list per column,
#   zipped back into rows by unnest: DuckDB converts the lists in one go and then runs
#   without the GIL. An Arrow scan calls back into Python per chunk, and under load each
#   call-back waits behind the busy event loop.
# - large batches as an Arrow table: converting lists costs DuckDB about 3 times more per
#   row than scanning Arrow, which dominates once a batch has hundreds of rows.
# Columns: (name, SQL type of one value); TIMESTAMP values travel as epoch microseconds.
ARROW_MIN_ROWS = 256
CLICK_COLUMNS = (
    ("event_id", "VARCHAR"), ("search_id", "VARCHAR"), ("user_id", "VARCHAR"),
    ("session_id", "VARCHAR"), ("product_id", "VARCHAR"), ("rank", "INTEGER"),
    ("search_query", "VARCHAR"), ("variant", "VARCHAR"), ("response_time_ms", "DOUBLE"),
    ("source", "VARCHAR"), ("ts", "TIMESTAMP"),
)  # fmt: skip
IMPRESSION_COLUMNS = (
    ("event_id", "VARCHAR"), ("search_id", "VARCHAR"), ("user_id", "VARCHAR"),
    ("session_id", "VARCHAR"), ("query", "VARCHAR"), ("variant", "VARCHAR"),
    ("results_count", "INTEGER"), ("response_time_ms", "DOUBLE"), ("results", "VARCHAR[]"),
    ("teams", "VARCHAR[]"), ("ts", "TIMESTAMP"),
)  # fmt: skip
_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "VARCHAR[]": pa.list_(pa.string()),
    "TIMESTAMP": pa.timestamp("us"),
}


@dataclass(frozen=True)
class _Table:
    name: str
    columns: tuple[tuple[str, str], ...]

    @cached_property
    def arrow_schema(self) -> pa.Schema:
        fields = [*self.columns, ("received_at", "TIMESTAMP")]
        return pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in fields])

    @cached_property
    def sql(self) -> dict[tuple[bool, bool], str]:
        """(from Arrow?, only new ids?) -> INSERT statement."""
        names = ", ".join([*(name for name, _ in self.columns), "received_at"])
        lists = [
            f"make_timestamp(unnest(${i}::BIGINT[]))"
            if kind == "TIMESTAMP"
            else f"unnest(${i}::{kind}[])"
            for i, (_, kind) in enumerate(self.columns, start=1)
        ]
        from_lists = f"SELECT {', '.join(lists)}, make_timestamp(${len(lists) + 1}::BIGINT)"
        out = {}
        for arrow, source in ((False, from_lists), (True, f"SELECT {names} FROM incoming")):
            plain = f"INSERT INTO {self.name} ({names}) {source}"
            out[arrow, False] = plain
            out[arrow, True] = f"{plain} ON CONFLICT DO NOTHING RETURNING event_id"
        return out


CLICKS = _Table("click_events", CLICK_COLUMNS)
IMPRESSIONS = _Table("impressions", IMPRESSION_COLUMNS)


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICROSECOND


def _naive_utc(value: datetime) -> datetime:
    """TIMESTAMP columns hold UTC wall-clock time."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None else None


def click_columns(events: Sequence[ClickEvent]) -> list[list[Any]]:
    return [
        [e.event_id for e in events],
        [e.search_id for e in events],
        [e.user_id for e in events],
        [e.session_id for e in events],
        [e.product_id for e in events],
        [e.rank for e in events],
        [e.search_query for e in events],
        [e.variant for e in events],
        [e.response_time_ms for e in events],
        [e.source.value for e in events],
        [_micros(e.timestamp) for e in events],
    ]


def impression_columns(events: Sequence[SearchImpression]) -> list[list[Any]]:
    return [
        [e.event_id for e in events],
        [e.search_id for e in events],
        [e.user_id for e in events],
        [e.session_id for e in events],
        [e.query for e in events],
        [e.variant for e in events],
        [e.results_count for e in events],
        [e.response_time_ms for e in events],
        [e.results for e in events],
        [e.teams for e in events],
        [_micros(e.timestamp) for e in events],
    ]


class DuckDBStore(GroupWritten, EventStore):
    kind = "duckdb"

    def __init__(self, path: str | Path, *, max_batch_rows: int = 50_000) -> None:
        self.path = str(path)
        self.name = Path(self.path).name  # in messages: the file, not where it is
        self.label = f"the DuckDB store {self.name}"
        self.max_batch_rows = max_batch_rows
        self._db: duckdb.DuckDBPyConnection | None = None
        self._writer: GroupWriter | None = None
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        #: why the database must be opened again (a fatal DuckDB error), None while it is fine
        self._broken: str | None = None
        self._reopen_lock = threading.Lock()
        self._past_commits = 0  # of the writers before a reopen: generation() never repeats

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        if self._db is None:
            self._connect(read_only=None)

    def _connect(self, read_only: str | None) -> None:
        """Open for writing unless `read_only` says why not; fall back to read-only when the
        file system refuses the writes that opening needs (full disk, read-only mount)."""
        if read_only is None:
            try:
                self._open_writable()
                return
            except (duckdb.Error, OSError) as exc:
                read_only = _unwritable(exc)
                if read_only is None or self.path == ":memory:" or not Path(self.path).is_file():
                    log.error("cannot open the DuckDB store %s: %s", self.path, exc)
                    reason = read_only or without_paths(str(exc))
                    raise StoreError(f"cannot open {self.label}: {reason}") from exc
                log.warning("%s opened read-only (%s): %s", self.path, read_only, exc)
        try:
            self._db = duckdb.connect(self.path, read_only=True)
        except duckdb.Error as exc:
            log.error("cannot open the DuckDB store %s read-only: %s", self.path, exc)
            raise StoreError(f"cannot open {self.label}: {read_only}") from exc
        self.read_only = read_only

    def _open_writable(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = duckdb.connect(self.path)
        try:  # the schema's changes are writes too: on a full disk they fail here
            db.execute(SCHEMA)
            if db.execute(
                "SELECT is_nullable FROM information_schema.columns "
                "WHERE table_name = 'click_events' AND column_name = 'variant'"
            ).fetchall() == [("NO",)]:
                db.execute(_NULLABLE_CLICK_VARIANT)
        except duckdb.Error:
            with contextlib.suppress(duckdb.Error):
                db.close()
            raise
        self._db, self.read_only = db, None
        con = db.cursor()  # the writer's own connection, used by its thread only
        self._writer = GroupWriter(
            f"duckdb:{self.name}",
            lambda clicks, impressions: self._store_batch(con, clicks, impressions),
            lambda selection: self._delete_batch(con, selection),
            max_batch_rows=self.max_batch_rows,
            on_exit=con.close,
        )
        self._writer.start()

    def close(self) -> None:
        if self._db is not None:
            self._shutdown(checkpoint=self.read_only is None and self._broken is None)

    def _shutdown(self, *, checkpoint: bool) -> None:
        if self._writer is not None:
            self._writer.stop()
            self._past_commits += self._writer.commits
            self._writer = None
        self._past_commits += 1  # a reopened database may differ: caches made before go
        with self._cursors_lock:
            for cursor in self._cursors:
                with contextlib.suppress(duckdb.Error):
                    cursor.close()
            self._cursors.clear()
        db, self._db = self._db, None
        self._local = threading.local()
        if db is None:
            return
        if checkpoint:
            try:
                db.execute("CHECKPOINT")
            except duckdb.Error as exc:  # e.g. a full disk: the write-ahead log keeps it all
                log.warning("%s: no checkpoint at close: %s", self.path, exc)
        with contextlib.suppress(duckdb.Error):
            db.close()

    def _recover(self) -> None:
        """After a fatal error DuckDB answers nothing until the database is opened again:
        open it again, read-only when the file system refused the write."""
        with self._reopen_lock:
            broken = self._broken
            if broken is None or self._db is None:
                return
            log.warning(
                "%s: opening the database again after a fatal error (%s)", self.path, broken
            )
            self._shutdown(checkpoint=False)
            self._broken = None
            self._connect(read_only=broken if broken in (DISK_FULL, NOT_WRITABLE) else None)

    def _fatal(self, exc: duckdb.Error) -> bool:
        """Note a fatal error (the database refuses everything from now on); True if it was."""
        if not isinstance(exc, duckdb.FatalException) and _INVALIDATED not in str(exc):
            return False
        self._broken = _unwritable(exc) or "fatal error"
        return True

    # -- writes: everything goes through the one writer thread ----------------------------------

    def _group_writer(self) -> GroupWriter:
        if self._broken is not None:
            self._recover()
        if self.read_only is not None:
            raise StoreFull(_READ_ONLY.get(self.read_only, self.read_only))
        return super()._group_writer()

    def _store_batch(
        self,
        con: duckdb.DuckDBPyConnection,
        clicks: list[ClickEvent],
        impressions: list[SearchImpression],
    ) -> tuple[set[str], set[str]]:
        try:
            return _write(con, clicks, impressions)
        except duckdb.Error as exc:
            raise self._write_failed(exc, "storing the events") from exc

    def _delete_batch(self, con: duckdb.DuckDBPyConnection, selection: Selection) -> Deleted:
        try:
            return _delete(con, selection)
        except duckdb.Error as exc:
            raise self._write_failed(exc, "deleting events") from exc

    def _write_failed(self, exc: duckdb.Error, what: str) -> StoreError:
        """The error a failed write raises: StoreFull (507) when the disk is full."""
        log.warning("%s: %s failed: %s", self.path, what, exc)
        fatal = self._fatal(exc)
        reason = _unwritable(exc)
        if reason is None:  # the writer says what failed
            return StoreError(without_paths(str(exc)))
        if fatal:
            return StoreFull(
                f"{reason}: {what} failed, and the store is read-only until the server "
                "restarts; reads go on. Free space on the server, then restart it."
            )
        return StoreFull(f"{reason}: {what} failed. Free space on the server, then try again.")

    def generation(self) -> int | None:
        # This process is the file's only writer, and every write goes through its writer
        # (read-only: nobody writes). Reopening adds to the count, so it never repeats.
        if self._db is None:
            return None
        return self._past_commits + (self._writer.commits if self._writer is not None else 0)

    # -- reads: one cursor per thread ------------------------------------------------------

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        if self._broken is not None:
            self._recover()
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            if self._db is None:
                raise StoreError(f"{self.label} is not open")
            cursor = self._db.cursor()
            self._local.cursor = cursor
            with self._cursors_lock:
                self._cursors.append(cursor)
        return cursor

    def _query(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[tuple[Any, ...]]:
        try:
            return self._cursor().execute(sql, params).fetchall()
        except duckdb.Error as exc:
            if not self._fatal(exc):
                raise StoreError(f"query failed: {without_paths(str(exc))}") from exc
        try:  # the database was invalidated (by a failed checkpoint): once more, reopened
            return self._cursor().execute(sql, params).fetchall()
        except duckdb.Error as exc:
            self._fatal(exc)
            raise StoreError(f"query failed: {without_paths(str(exc))}") from exc

    def ping(self) -> None:
        self._query("SELECT 1", ())

    def counts_by_variant(self, f: Filters) -> dict[str, Counts]:
        scope = _Scope(f)
        rows = self._query(
            f"""
            {scope.with_clause("impressions", "click_events")}
            SELECT variant, sum(impressions)::BIGINT, sum(clicks)::BIGINT FROM (
                SELECT variant, count(*) AS impressions, 0 AS clicks
                FROM {scope.rows("impressions")} GROUP BY variant
                UNION ALL
                SELECT variant, 0, count(*) FROM {scope.clicks(by_variant=True)} GROUP BY variant
            ) GROUP BY variant
            """,
            scope.params,
        )
        return {variant: Counts(impressions=i, clicks=c) for variant, i, c in rows}

    def rank_histogram(self, f: Filters) -> RankHistogram:
        scope = _Scope(f)
        rows = self._query(
            f"""{scope.with_clause("click_events")}
            SELECT rank, count(*) FROM {scope.clicks()} GROUP BY rank""",
            scope.params,
        )
        return dict(rows)

    def rank_histogram_by_variant(self, f: Filters) -> dict[str, RankHistogram]:
        scope = _Scope(f)
        rows = self._query(
            f"""{scope.with_clause("click_events")}
            SELECT variant, rank, count(*) FROM {scope.clicks(by_variant=True)} GROUP BY ALL""",
            scope.params,
        )
        out: dict[str, RankHistogram] = {}
        for variant, rank, n in rows:
            out.setdefault(variant, {})[rank] = n
        return out

    _LATENCY = (
        "count(response_time_ms), avg(response_time_ms), min(response_time_ms), "
        f"max(response_time_ms), quantile_cont(response_time_ms, {P95})"
    )

    def latency(self, f: Filters) -> LatencyStats:
        scope = _Scope(f)
        (row,) = self._query(
            f"""{scope.with_clause("impressions")}
            SELECT {self._LATENCY} FROM {scope.rows("impressions")}""",
            scope.params,
        )
        return _latency(row)

    def latency_by_variant(self, f: Filters) -> dict[str, LatencyStats]:
        scope = _Scope(f)
        rows = self._query(
            f"""{scope.with_clause("impressions")}
            SELECT variant, {self._LATENCY} FROM {scope.rows("impressions")} GROUP BY variant""",
            scope.params,
        )
        return {row[0]: _latency(row[1:]) for row in rows}

    def activity(self, f: Filters) -> Activity:
        scope = _Scope(f)
        (row,) = self._query(
            f"""
            {scope.with_clause("impressions", "click_events")}
            SELECT min(first), max(last) FROM (
                SELECT min(ts) AS first, max(ts) AS last FROM {scope.rows("impressions")}
                UNION ALL
                SELECT min(ts), max(ts) FROM {scope.clicks()}
            )
            """,
            scope.params,
        )
        return Activity(first_seen=_aware(row[0]), last_seen=_aware(row[1]))

    def preference_sums(self, f: Filters, label: str) -> PreferenceSums:
        sql = _PREFERENCE.format(unit="user_id", outer="", tail="")
        (row,) = self._query(sql, {"since": _naive_utc(f.since), "label": label})
        return _preference(row)

    def preference_sums_by_query(
        self, f: Filters, label: str, top: int
    ) -> dict[str, PreferenceSums]:
        tail = "GROUP BY query ORDER BY sum(wa + wb + t) DESC, query LIMIT $top"
        sql = _PREFERENCE.format(unit="user_id, query", outer="query,", tail=tail)
        rows = self._query(sql, {"since": _naive_utc(f.since), "label": label, "top": top})
        return {row[0]: _preference(row[1:]) for row in rows}

    def user_sums(
        self,
        f: Filters,
        variants: Sequence[str],
        pairs: Sequence[tuple[str, str]],
        max_searches: int | None = None,
    ) -> dict[str, UserSums]:
        params: dict[str, Any] = {"since": _naive_utc(f.since), "variants": list(variants)}
        if max_searches is not None:
            params["max_searches"] = max_searches
        out: dict[str, UserSums] = {}
        columns = list(_PER_USER)
        sql = _user_sums_sql(pairs, capped=max_searches is not None)
        for variant, users, *totals in self._query(sql, params):
            k = len(columns)
            out[variant] = UserSums(
                users=users,
                sums=dict(zip(columns, totals[:k], strict=True)),
                squares=dict(zip(columns, totals[k : 2 * k], strict=True)),
                products=dict(zip(pairs, totals[2 * k :], strict=True)),
            )
        return out

    def searches_per_user(
        self, f: Filters, variants: Sequence[str]
    ) -> dict[str, SearchesHistogram]:
        rows = self._query(
            """
            SELECT variant, searches, count(*) FROM (
                SELECT variant, count(*) AS searches FROM impressions
                WHERE ts >= $since AND list_contains($variants, variant)
                GROUP BY variant, user_id
            ) GROUP BY ALL
            """,
            {"since": _naive_utc(f.since), "variants": list(variants)},
        )
        out: dict[str, SearchesHistogram] = {}
        for variant, searches, users in sorted(rows):
            out.setdefault(variant, {})[searches] = users
        return out

    def search_totals(self, f: Filters, grouping: Grouping) -> dict[tuple[str, ...], SearchTotals]:
        return self.search_totals_many(f, [grouping])[0]

    def search_totals_many(
        self, f: Filters, groupings: Sequence[Grouping]
    ) -> list[dict[tuple[str, ...], SearchTotals]]:
        """One scan and one join for all of them: GROUPING SETS over every grouping's keys,
        then each grouping's rows (ranked ones ordered and cut) from that one result."""
        if not groupings:
            return []
        scope = _Scope(f)
        params: dict[str, Any] = dict(scope.params)
        # Each distinct key expression is one column a<n>; each grouping is a set of them.
        columns: dict[str, str] = {}
        sets: list[list[str]] = []
        for g in groupings:
            aliases = []
            for key in g.by:
                sql = _local_day(g.tz, f.since) if key == "day" else _GROUP_KEYS[key]
                aliases.append(columns.setdefault(sql, f"a{len(columns)}"))
            sets.append(aliases)
        names = list(columns.values())
        # GROUPING() has a bit per column, the first the highest, set where it is not a key.
        flags = [
            sum(1 << (len(names) - 1 - n) for n, a in enumerate(names) if a not in aliases)
            for aliases in sets
        ]
        parts = []
        for n, (g, aliases) in enumerate(zip(groupings, sets, strict=True)):
            where = f"flags = {flags[n]} AND searches > 0"  # no row for an empty window
            if g.order is not None:
                where += f" AND {g.order} > 0"
            order = [*([f"{g.order} DESC"] if g.order else []), *aliases]
            part = f"SELECT {n} AS grouping, * FROM g WHERE {where}"
            if g.top is not None:  # a top-k, cheaper than numbering every group
                part += f" ORDER BY {', '.join(order)} LIMIT {int(g.top)}"
            parts.append(f"({part})")
        # One user's searches are few: link only their clicks, found through those searches.
        linked = "AND search_id IN (SELECT search_id FROM i)" if f.user_id is not None else ""
        selected = "".join(f"{sql} AS {alias}, " for sql, alias in columns.items())
        grouping_flags = f"GROUPING({', '.join(names)})" if names else "0"
        # Each set once: a set named twice would give each of its groups twice.
        distinct = dict.fromkeys(f"({', '.join(sorted(aliases))})" for aliases in sets)
        grouping_sets = ", ".join(distinct)
        sql = f"""
            {scope.with_clause("impressions")}{"," if f.user_id else "WITH"}
            i AS (
                SELECT search_id, user_id, variant, query, results_count, ts
                FROM {scope.rows("impressions")}
            ),
            c AS (
                SELECT search_id, count(*) AS n, sum(rank) AS rank_sum FROM click_events
                WHERE ts >= $since AND search_id IS NOT NULL {linked} GROUP BY search_id
            ),
            g AS MATERIALIZED (
                SELECT {selected} {grouping_flags} AS flags,
                    count(*) AS searches, count(DISTINCT i.user_id) AS users,
                    count(c.n) AS clicked_searches, coalesce(sum(c.n), 0)::BIGINT AS clicks,
                    coalesce(sum(c.rank_sum), 0)::BIGINT AS rank_sum,
                    count(*) FILTER (WHERE i.results_count = 0) AS zero_results,
                    count(*) FILTER (WHERE i.results_count > 0 AND c.n IS NULL) AS abandoned
                FROM i LEFT JOIN c USING (search_id)
                GROUP BY GROUPING SETS ({grouping_sets})
            )
            {" UNION ALL ".join(parts)}
        """
        rows: list[list[tuple[tuple[str, ...], SearchTotals]]] = [[] for _ in groupings]
        for row in self._query(sql, params):
            n, values = row[0], dict(zip(names, row[1 : len(names) + 1], strict=True))
            group = tuple(str(values[a]) for a in sets[n])
            rows[n].append((group, SearchTotals(*row[len(names) + 2 :])))
        # UNION ALL promises no order: each grouping's rows are put in theirs here.
        return [
            dict(sorted(r, key=_sort_key(g.order))) for g, r in zip(groupings, rows, strict=True)
        ]

    def top_products(self, f: Filters, top: int) -> list[ProductClicks]:
        scope = _Scope(f)
        rows = self._query(
            f"""{scope.with_clause("click_events")}
            SELECT product_id, count(*) AS clicks, count(DISTINCT user_id), sum(rank)::BIGINT
            FROM {scope.clicks()}
            GROUP BY product_id ORDER BY clicks DESC, product_id LIMIT $top""",
            {**scope.params, "top": top},
        )
        return [ProductClicks(*row) for row in rows]

    def latency_histogram(self, f: Filters) -> dict[float, int]:
        scope = _Scope(f)
        cases = " ".join(
            f"WHEN response_time_ms < {upper} THEN {n}"
            for n, upper in enumerate(LATENCY_EDGES_MS[1:])
        )
        rows = self._query(
            f"""{scope.with_clause("impressions")}
            SELECT CASE {cases} ELSE {len(LATENCY_EDGES_MS) - 1} END AS bucket, count(*)
            FROM {scope.rows("impressions")} WHERE response_time_ms IS NOT NULL
            GROUP BY bucket""",
            scope.params,
        )
        counts = dict(rows)
        return {edge: counts.get(n, 0) for n, edge in enumerate(LATENCY_EDGES_MS)}

    def export(
        self, since: datetime | None = None, batch_rows: int = 10_000
    ) -> Iterator[list[EventRow]]:
        # Its own cursor: the export is read lazily, and other reads on this thread must not
        # replace the result it is fetching from.
        if self._broken is not None:
            self._recover()
        if self._db is None:
            raise StoreError(f"{self.label} is not open")
        cursor = self._db.cursor()
        try:
            for table, kind in ((IMPRESSIONS, "impression"), (CLICKS, "click")):
                names = [name for name, _ in table.columns]
                cursor.execute(
                    f"SELECT {', '.join(names)} FROM {table.name} WHERE ts >= $since "
                    "ORDER BY ts, event_id",
                    {"since": _naive_utc(since) if since else datetime(1, 1, 1)},
                )
                while rows := cursor.fetchmany(batch_rows):
                    yield [_event_row(kind, names, row) for row in rows]
        except duckdb.Error as exc:
            self._fatal(exc)
            raise StoreError(f"export failed: {without_paths(str(exc))}") from exc
        finally:
            cursor.close()


#: search_totals' group keys as SQL over the impression `i`.
_GROUP_KEYS = {"variant": "i.variant", "query": "i.query"}


def _sort_key(
    order: TotalsOrder | None,
) -> Callable[[tuple[tuple[str, ...], SearchTotals]], tuple[Any, ...]]:
    """search_totals' order: the most `order` first, then by key."""
    if order is None:
        return lambda item: item[0]
    return lambda item: (-getattr(item[1], order), item[0])


def _local_day(tz: str, since: datetime) -> str:
    """The local date of i.ts (UTC wall-clock time) in `tz`, as SQL: the zone's UTC offsets
    over the window, from zoneinfo, are added by stretches. About twice as fast as DuckDB's
    ICU conversion of every row (AT TIME ZONE), and the same answer."""
    stretches = utc_offsets(tz, since, utcnow() + timedelta(days=1))
    offset = str(stretches[0][1])
    for start, seconds in stretches[1:]:
        instant = _naive_utc(start).isoformat(sep=" ")
        offset = f"CASE WHEN i.ts >= TIMESTAMP '{instant}' THEN {seconds} ELSE {offset} END"
    return f"(i.ts + to_seconds({offset}))::DATE"


#: Stored column -> event field, where they differ.
_FIELDS = {"ts": "timestamp"}


def _event_row(kind: str, names: list[str], row: tuple[Any, ...]) -> EventRow:
    out: EventRow = {"type": kind}
    for name, value in zip(names, row, strict=True):
        out[_FIELDS.get(name, name)] = value
    out["timestamp"] = out["timestamp"].replace(tzinfo=UTC)
    return out


# Per-user columns (base.USER_COLUMNS) over a user's searches, with their clicks linked by
# search_id and aggregated per search first (c.n is NULL for a search without a click). A
# search's first click is its earliest (the lower rank on a tie).
_PER_USER = {
    "searches": "count(*)",
    "clicked_searches": "count(c.n)",
    "clicks": "coalesce(sum(c.n), 0)",
    "rr": "coalesce(sum(1.0 / c.first_rank), 0)",
    "rank_sum": "coalesce(sum(c.rank_sum), 0)",
    "with_results": "count(*) FILTER (WHERE i.results_count > 0)",
    "abandoned": "count(*) FILTER (WHERE i.results_count > 0 AND c.n IS NULL)",
    "zero_results": "count(*) FILTER (WHERE i.results_count = 0)",
    "ttfc_ms": "coalesce(sum(epoch_ms(c.first_ts) - epoch_ms(i.ts)), 0)",
}


def _user_sums_sql(pairs: Sequence[tuple[str, str]], *, capped: bool = False) -> str:
    """`capped`: users with more than $max_searches searches are left out."""
    per_user = ",\n".join(f"({sql})::DOUBLE AS {name}" for name, sql in _PER_USER.items())
    totals = [f"sum({c})" for c in _PER_USER] + [f"sum({c} * {c})" for c in _PER_USER]
    totals += [f"sum({a} * {b})" for a, b in pairs]
    return f"""
        WITH c AS (
            SELECT search_id, count(*) AS n, arg_min(rank, (ts, rank)) AS first_rank,
                   sum(rank) AS rank_sum,
                   min(ts) AS first_ts
            FROM click_events WHERE ts >= $since AND search_id IS NOT NULL
            GROUP BY search_id
        ), per_user AS (
            SELECT i.variant, {per_user}
            FROM impressions AS i LEFT JOIN c USING (search_id)
            WHERE i.ts >= $since AND list_contains($variants, i.variant)
            GROUP BY i.variant, i.user_id
        )
        SELECT variant, count(*), {", ".join(totals)} FROM per_user
        {"WHERE searches <= $max_searches" if capped else ""}
        GROUP BY variant
    """


# Interleaved searches with at least one clicked position (a position clicked twice counts
# once), each credited to the teams of its clicked positions; then per unit the searches A
# won, B won, and ties.
_PREFERENCE = """
    WITH c AS (
        SELECT DISTINCT search_id, rank FROM click_events
        WHERE ts >= $since AND search_id IS NOT NULL
    ), s AS (
        SELECT any_value(i.user_id) AS user_id, any_value(i.query) AS query,
               count(*) FILTER (WHERE i.teams[c.rank] = 'A') AS a,
               count(*) FILTER (WHERE i.teams[c.rank] = 'B') AS b
        FROM impressions AS i JOIN c ON c.search_id = i.search_id
        WHERE i.ts >= $since AND i.variant = $label AND i.teams IS NOT NULL
        GROUP BY i.search_id
        HAVING a + b > 0
    ), u AS (
        SELECT {unit}, count(*) FILTER (WHERE a > b) AS wa, count(*) FILTER (WHERE b > a) AS wb,
               count(*) FILTER (WHERE a = b) AS t
        FROM s GROUP BY {unit}
    )
    SELECT {outer} count(*), sum(wa), sum(wb), sum(t), sum(wa * wa), sum(wb * wb), sum(wa * wb)
    FROM u {tail}
"""


def _preference(row: Sequence[Any]) -> PreferenceSums:
    units, *sums = row
    return PreferenceSums(units, *(float(v or 0) for v in sums))


#: Days before a window in which the searches of its clicks are looked for first.
NEAR_DAYS = 1


class _Scope:
    """The rows a Filters selects, as SQL.

    DuckDB uses the user_id index only for a lone equality filter, and would merge the time
    window into the same scan. So one user's rows are fetched first, through the index, in a
    materialized CTE (which the optimizer does not merge), and the window applies to those.
    """

    def __init__(self, f: Filters) -> None:
        self.user = f.user_id
        self.variant = f.variant
        self.params: dict[str, Any] = {"since": _naive_utc(f.since)}
        conditions = ["ts >= $since"]
        if f.variant is not None:
            conditions.append("variant = $variant")
            self.params["variant"] = f.variant
        if f.user_id is not None:
            self.params["user"] = f.user_id
        self.condition = " AND ".join(conditions)

    def with_clause(self, *tables: str) -> str:
        if self.user is None:
            return ""
        ctes = (
            f"{t}_of_user AS MATERIALIZED (SELECT * FROM {t} WHERE user_id = $user)" for t in tables
        )
        return "WITH " + ", ".join(ctes)

    def rows(self, table: str) -> str:
        source = f"{table}_of_user" if self.user is not None else table
        return f"(SELECT * FROM {source} WHERE {self.condition})"

    def clicks(self, *, by_variant: bool = False) -> str:
        """The clicks in scope; when a report groups or filters them by variant, each with its
        variant resolved: as sent, else that of the search it cites, else the default.

        The clicks sent with a variant pass as they are; only those sent without one are
        joined to their searches. Those are looked for where they nearly always are first (the
        user's own searches, through the user index; else the searches from a day before the
        window on, which the time order of the table lets DuckDB read alone), and in the whole
        table only for the search ids still not found (a search that was never stored)."""
        if not by_variant and self.variant is None:
            return self.rows("click_events")
        source = "click_events_of_user" if self.user is not None else "click_events"
        sent = "" if self.variant is None else " AND variant = $variant"
        resolved = f"coalesce(cited.variant, '{DEFAULT_VARIANT}')"
        keep = "" if self.variant is None else f"WHERE {resolved} = $variant"
        unsent = f"(SELECT * FROM {source} WHERE ts >= $since AND variant IS NULL)"
        # Materialized, so that the user's searches come through the index (see the class).
        near = (
            "mine AS MATERIALIZED (SELECT * FROM impressions WHERE user_id = $user),"
            if self.user is not None
            else "mine AS (SELECT * FROM impressions "
            f"WHERE ts >= $since - INTERVAL {NEAR_DAYS} DAY),"
        )
        return f"""(
            SELECT * FROM {source} WHERE ts >= $since AND variant IS NOT NULL{sent}
            UNION ALL
            SELECT c.* REPLACE ({resolved} AS variant)
            FROM {unsent} AS c
            LEFT JOIN (
                WITH {near}
                ids AS (SELECT DISTINCT search_id FROM {unsent} WHERE search_id NOT NULL),
                near AS MATERIALIZED (
                    SELECT search_id, min(variant) AS variant FROM mine
                    WHERE search_id IN (SELECT search_id FROM ids) GROUP BY search_id
                )
                SELECT * FROM near
                UNION ALL
                SELECT search_id, min(variant) FROM impressions
                WHERE search_id IN (SELECT search_id FROM ids EXCEPT SELECT search_id FROM near)
                GROUP BY search_id
            ) AS cited ON c.search_id = cited.search_id
            {keep}
        )"""


def _write(
    con: duckdb.DuckDBPyConnection, clicks: list[ClickEvent], impressions: list[SearchImpression]
) -> tuple[set[str], set[str]]:
    """Store a batch: one transaction per table; each commit syncs DuckDB's WAL to disk.

    Callers hear back only after both commits. Should the second fail, the first table's
    events stay stored and the callers get an error: their retry then finds those events
    as duplicates, so nothing is lost or counted twice.
    """
    received_at = _micros(utcnow())
    return (
        _insert(con, CLICKS, click_columns(clicks), received_at) if clicks else set(),
        _insert(con, IMPRESSIONS, impression_columns(impressions), received_at)
        if impressions
        else set(),
    )


def _insert(
    con: duckdb.DuckDBPyConnection, table: _Table, columns: list[list[Any]], received_at: int
) -> set[str]:
    arrow = len(columns[0]) >= ARROW_MIN_ROWS
    params: list[Any] | None
    if arrow:
        rows = [*columns, [received_at] * len(columns[0])]
        con.register("incoming", pa.Table.from_arrays(rows, schema=table.arrow_schema))
        params = None
    else:
        params = [*columns, received_at]
    try:
        try:
            con.execute(table.sql[arrow, False], params)  # one statement: its own transaction
            return set(columns[0])
        except duckdb.ConstraintException:
            pass  # some event_id is stored already (a retry): store only the new ones
        return {row[0] for row in con.execute(table.sql[arrow, True], params).fetchall()}
    finally:
        if arrow:
            con.unregister("incoming")


def _delete(con: duckdb.DuckDBPyConnection, selection: Selection) -> Deleted:
    """Both tables in one transaction: a user's clicks never outlive their searches."""
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if selection.user_id is not None:
        conditions.append("user_id = $user")
        params["user"] = selection.user_id
    if selection.before is not None:
        conditions.append("ts < $before")
        params["before"] = _naive_utc(selection.before)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    try:
        con.begin()
        clicks = _scalar(con.execute(f"DELETE FROM click_events{where}", params).fetchone())
        impressions = _scalar(con.execute(f"DELETE FROM impressions{where}", params).fetchone())
        con.commit()
    except Exception:
        _rollback(con)
        raise
    return Deleted(clicks=clicks, impressions=impressions)


def _latency(row: Sequence[Any]) -> LatencyStats:
    count, mean, minimum, maximum, p95 = row
    return LatencyStats(count=count, mean=mean, minimum=minimum, maximum=maximum, p95=p95)


def _scalar(row: tuple[Any, ...] | None) -> int:
    return int(row[0]) if row else 0


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):  # no transaction was open: nothing to undo
        con.rollback()
