"""The embedded default store: one DuckDB file, one writer thread, group commits.

Every write goes through the single thread of a GroupWriter (DuckDB allows one writer);
each batch is one transaction (an INSERT per table), whose commit syncs the WAL before any caller
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
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from clickstats.events import utcnow
from clickstats.store.base import (
    LATENCY_EDGES_MS,
    ActionTotal,
    Activity,
    Batch,
    ByVariant,
    ConversionKey,
    ConversionTotals,
    Counts,
    Deleted,
    EventRow,
    EventStore,
    Filters,
    Grouping,
    JudgmentCount,
    JudgmentCounts,
    Key,
    LatencyStats,
    Outcome,
    PreferenceSums,
    PreSums,
    ProductClicks,
    RankHistogram,
    ReadTimeout,
    SearchesHistogram,
    SearchTotals,
    Selection,
    StoreError,
    StoreFull,
    SumOptions,
    UserSums,
    ranked_actions,
    without_paths,
)
from clickstats.store.duckdb import queries, rollup
from clickstats.store.duckdb.queries import Scope
from clickstats.store.duckdb.schema import NULLABLE, SCHEMA, TABLES, micros, nullable
from clickstats.store.duckdb.writing import delete, warm, write
from clickstats.store.fields import aware, naive_utc
from clickstats.store.writer import GroupWriter, GroupWritten

__all__ = ["DISK_FULL", "NOT_WRITABLE", "SCHEMA", "DuckDBStore"]


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


class DuckDBStore(GroupWritten, EventStore):
    kind = "duckdb"

    def __init__(
        self,
        path: str | Path,
        *,
        max_batch_rows: int = 50_000,
        read_timeout_s: float | None = None,
    ) -> None:
        self.path = str(path)
        self.name = Path(self.path).name  # in messages: the file, not where it is
        self.label = f"the DuckDB store {self.name}"
        self.max_batch_rows = max_batch_rows
        self.read_timeout_s = read_timeout_s
        self._db: duckdb.DuckDBPyConnection | None = None
        self._writer: GroupWriter | None = None
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        #: why the database must be opened again (a fatal DuckDB error), None while it is fine
        self._broken: str | None = None
        self._reopen_lock = threading.Lock()
        self._past_commits = 0  # of the writers before a reopen: generation() never repeats
        self._received_at = 0  # the last batch's server time (epoch microseconds)
        self._unmerged = 0  # clicks stored since the rollup's last merge (about)
        #: whether the writer merges the rollup's tail whenever it is idle (tests turn it off
        #: to read with a tail); it merges past rollup.MERGE_ROWS anyway
        self.merge_when_idle = True
        #: whether reads take each search's clicks from the rollup (store/duckdb/rollup.py):
        #: always once opened for writing; read-only, when the file's rollup is complete
        self.use_rollup = False

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
        self.use_rollup = rollup.usable(self._db)

    def _open_writable(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = duckdb.connect(self.path)
        try:  # the schema's changes are writes too: on a full disk they fail here
            db.execute(SCHEMA)
            rollup.ensure(db)
            for table, column, index in NULLABLE:
                if db.execute(
                    "SELECT is_nullable FROM information_schema.columns "
                    "WHERE table_name = $table AND column_name = $column",
                    {"table": table, "column": column},
                ).fetchall() == [("NO",)]:
                    db.execute(nullable(table, column, index))
        except duckdb.Error:
            with contextlib.suppress(duckdb.Error):
                db.close()
            raise
        self._db, self.read_only, self.use_rollup = db, None, True
        con = db.cursor()  # the writer's own connection, used by its thread only
        row = db.execute(
            "SELECT greatest((SELECT max(received_at) FROM click_events), "
            "(SELECT max(received_at) FROM impressions), (SELECT watermark FROM rollup_state))"
        ).fetchone()
        last = row[0] if row else None
        self._received_at = micros(last.replace(tzinfo=UTC)) if last is not None else 0
        self._unmerged = 1  # whatever a crash left in the tail is merged at the first chance
        self._writer = GroupWriter(
            f"duckdb:{self.name}",
            lambda batch: self._store_batch(con, batch),
            lambda selection: self._delete_batch(con, selection),
            max_batch_rows=self.max_batch_rows,
            on_exit=con.close,
            idle=lambda: self._merge(con) if self.merge_when_idle else None,
        )
        self._writer.start()

    def warm(self) -> None:
        """DuckDB's first Arrow registration imports pandas (seconds): done now, on a thread of
        its own, so that a server's first large batch does not wait for it."""
        if self._db is not None and self.read_only is None:
            cursor = self._db.cursor()
            threading.Thread(target=warm, args=(cursor,), name="duckdb-warm", daemon=True).start()

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

    def _store_batch(self, con: duckdb.DuckDBPyConnection, batch: Batch) -> dict[str, set[str]]:
        # every batch a later server time than the last, whatever the clock does (the click
        # rollup's watermark counts on it)
        self._received_at = max(micros(utcnow()), self._received_at + 1)
        try:
            fresh = write(con, batch, self._received_at)
        except duckdb.Error as exc:
            raise self._write_failed(exc, "storing the events") from exc
        self._unmerged += len(fresh["click"])
        if self._unmerged >= rollup.MERGE_ROWS:  # a busy writer merges now and then too
            self._merge(con)
        return fresh

    def _merge(self, con: duckdb.DuckDBPyConnection) -> None:
        """Merge the click rollup's tail (the writer thread, between batches); a failure is
        logged and left for the next try: the reads count the tail meanwhile."""
        if not self._unmerged:
            return
        try:
            rollup.merge(con)
            self._unmerged = 0
        except duckdb.Error as exc:
            self._fatal(exc)
            log.warning("%s: merging the click rollup failed: %s", self.path, exc)

    def _delete_batch(self, con: duckdb.DuckDBPyConnection, selection: Selection) -> Deleted:
        try:
            deleted = delete(con, selection)  # the tail is merged there
            self._unmerged = 0
            return deleted
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
            return self._run(sql, params)
        except duckdb.Error as exc:
            if not self._fatal(exc):
                raise StoreError(f"query failed: {without_paths(str(exc))}") from exc
        try:  # the database was invalidated (by a failed checkpoint): once more, reopened
            return self._run(sql, params)
        except duckdb.Error as exc:
            self._fatal(exc)
            raise StoreError(f"query failed: {without_paths(str(exc))}") from exc

    def _run(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[tuple[Any, ...]]:
        """One read on this thread's cursor, stopped (ReadTimeout) past read_timeout_s. The
        interrupt stops this cursor's query only: the writer's connection and the other
        threads' cursors go on, and this cursor takes the next query."""
        cursor = self._cursor()
        limit = self.read_timeout_s
        if limit is None:
            return cursor.execute(sql, params).fetchall()
        with _Watch(cursor, limit) as watch:
            try:
                return cursor.execute(sql, params).fetchall()
            except duckdb.InterruptException as exc:
                if watch.fired:
                    raise ReadTimeout(limit) from exc
                raise

    def ping(self) -> None:
        self._query("SELECT 1", ())

    def counts(self, f: Filters, by: ByVariant = ()) -> dict[Key, Counts]:
        scope = Scope(f)
        keyed = bool(by)
        key = "variant" if keyed else "NULL"
        rows = self._query(
            f"""
            {scope.with_clause("impressions", "click_events")}
            SELECT {key}, sum(impressions)::BIGINT, sum(clicks)::BIGINT FROM (
                SELECT {key}, count(*) AS impressions, 0 AS clicks
                FROM {scope.rows("impressions")} GROUP BY ALL
                UNION ALL
                SELECT {key}, 0, count(*) FROM {scope.clicks(by_variant=keyed)} GROUP BY ALL
            ) GROUP BY ALL
            """,
            scope.params,
        )
        out = {_key(by, v): Counts(impressions=i or 0, clicks=c or 0) for v, i, c in rows}
        return out if keyed else {(): out.get((), Counts())}

    def rank_histogram(self, f: Filters, by: ByVariant = ()) -> dict[Key, RankHistogram]:
        scope = Scope(f)
        keyed = bool(by)
        rows = self._query(
            f"""{scope.with_clause("click_events")}
            SELECT {"variant" if keyed else "NULL"}, rank, count(*)
            FROM {scope.clicks(by_variant=keyed)} GROUP BY ALL""",
            scope.params,
        )
        out: dict[Key, RankHistogram] = {} if keyed else {(): {}}
        for variant, rank, n in rows:
            out.setdefault(_key(by, variant), {})[rank] = n
        return out

    def latency(self, f: Filters, by: ByVariant = ()) -> dict[Key, LatencyStats]:
        scope = Scope(f)
        if not by:
            (row,) = self._query(
                f"""{scope.with_clause("impressions")}
                SELECT {queries.LATENCY} FROM {scope.rows("impressions")}""",
                scope.params,
            )
            return {(): queries.latency(row)}
        rows = self._query(
            f"""{scope.with_clause("impressions")}
            SELECT variant, {queries.LATENCY} FROM {scope.rows("impressions")}
            GROUP BY variant""",
            scope.params,
        )
        return {(row[0],): queries.latency(row[1:]) for row in rows}

    def activity(self, f: Filters) -> Activity:
        scope = Scope(f)
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
        return Activity(first_seen=aware(row[0]), last_seen=aware(row[1]))

    def preference_sums(
        self,
        since: datetime,
        label: str,
        top_queries: int | None = None,
        outcome: Outcome = "clicks",
    ) -> dict[Key, PreferenceSums]:
        params: dict[str, Any] = {"since": naive_utc(since), "label": label}
        if outcome == "purchases":
            params["window_ms"] = self._window_ms()
        if top_queries is None:
            (row,) = self._query(queries.preference_sql(outcome, by_query=False), params)
            return {(): queries.preference(row)}
        sql = queries.preference_sql(outcome, by_query=True)
        rows = self._query(sql, {**params, "top": top_queries})
        return {(row[0],): queries.preference(row[1:]) for row in rows}

    def user_sums(
        self,
        since: datetime,
        variants: Sequence[str],
        max_searches: int | None = None,
        options: SumOptions | None = None,
    ) -> dict[str, UserSums]:
        options = options or SumOptions()
        params: dict[str, Any] = {"since": naive_utc(since), "variants": list(variants)}
        if max_searches is not None:
            params["max_searches"] = max_searches
        pre_since = naive_utc(since) - timedelta(days=options.pre_days)
        query = queries.user_sums_query(
            options,
            outliers=max_searches is not None,
            rollup=self.use_rollup,
            recompute_at=self._recompute_at({"$since": params["since"], "$pre_since": pre_since}),
        )
        if queries.reads_conversions(query.columns):
            params |= {"currency": options.currency or "", "window_ms": self._window_ms()}
        if query.pre:
            params |= {
                "pre_days": options.pre_days,
                "pre_since": pre_since,
            }
        out: dict[str, UserSums] = {}
        k, p, c = len(query.columns), len(query.pairs), len(query.caps)
        for variant, users, *totals in self._query(query.sql, params):
            rest = totals[2 * k + p + c :]
            out[variant] = UserSums(
                users=users,
                sums=dict(zip(query.columns, totals[:k], strict=True)),
                squares=dict(zip(query.columns, totals[k : 2 * k], strict=True)),
                products=dict(zip(query.pairs, totals[2 * k : 2 * k + p], strict=True)),
                caps={
                    name: float(cap)
                    for name, cap in zip(query.caps, totals[2 * k + p :], strict=False)
                    if cap is not None
                },
                pre={
                    name: PreSums(
                        int(rest[4 * n]), *(float(v) for v in rest[4 * n + 1 : 4 * n + 4])
                    )
                    for n, name in enumerate(query.pre)
                },
            )
        return out

    def _recompute_at(self, starts: dict[str, datetime]) -> frozenset[str]:
        """Of the window starts (SQL parameter -> naive UTC time), those at which some search
        must be recomputed from its clicks (store/duckdb/rollup.py): a scan of the rollup's two
        time columns and of the clicks received since its watermark."""
        if not self.use_rollup:
            return frozenset()
        return frozenset(
            name
            for name, at in starts.items()
            if self._query(rollup.NEEDS_RECOMPUTE, {"at": at})[0][0]
        )

    def _window_ms(self) -> int:
        return int(self.attribution_window.total_seconds() * 1000)

    def searches_per_user(
        self, since: datetime, variants: Sequence[str]
    ) -> dict[str, SearchesHistogram]:
        rows = self._query(
            queries.SEARCHES_PER_USER, {"since": naive_utc(since), "variants": list(variants)}
        )
        out: dict[str, SearchesHistogram] = {}
        for variant, searches, users in sorted(rows):
            out.setdefault(variant, {})[searches] = users
        return out

    def search_totals_many(
        self, f: Filters, groupings: Sequence[Grouping]
    ) -> list[dict[Key, SearchTotals]]:
        if not groupings:
            return []
        query = queries.SearchTotalsQuery(
            f,
            groupings,
            self._window_ms(),
            rollup=self.use_rollup,
            recompute=bool(self._recompute_at({"$since": naive_utc(f.since)})),
        )
        return query.answers(self._query(query.sql, query.params))

    def conversion_totals(
        self, f: Filters, by: tuple[ConversionKey, ...] = (), tz: str = "UTC"
    ) -> dict[Key, ConversionTotals]:
        params: dict[str, Any] = {"since": naive_utc(f.since), "window_ms": self._window_ms()}
        if f.user_id is not None:
            params["user"] = f.user_id
        if f.variant is not None:
            params["variant"] = f.variant
        rows = self._query(queries.conversion_totals_sql(f, by, tz), params)
        k = len(by) + 1
        out: dict[Key, ConversionTotals] = {}
        for row in rows:
            conversions, purchases, carts, revenue, orders, units, attributed = row[k:]
            out[tuple(str(v) for v in row[:k])] = ConversionTotals(
                conversions=conversions,
                purchases=purchases,
                add_to_carts=carts,
                revenue=float(revenue),
                orders=orders,
                units=units,
                attributed=attributed,
            )
        return out

    def action_totals(self, f: Filters) -> list[ActionTotal]:
        params: dict[str, Any] = {"since": naive_utc(f.since)}
        where = ["a.ts >= $since"]
        if f.user_id is not None:
            params["user"] = f.user_id
            where.append("a.user_id = $user")
        if f.variant is not None:
            params["variant"] = f.variant
            where.append(
                "a.search_id IN (SELECT search_id FROM impressions WHERE variant = $variant)"
            )
        rows = self._query(
            f"""SELECT a.name, count(DISTINCT a.event_id), count(DISTINCT a.user_id),
                count(DISTINCT p.product_id)
            FROM actions a
            LEFT JOIN (SELECT event_id, unnest(product_ids) AS product_id FROM actions) p
                ON p.event_id = a.event_id
            WHERE {" AND ".join(where)}
            GROUP BY a.name""",
            params,
        )
        return ranked_actions(ActionTotal(*row) for row in rows)

    def judgment_counts(
        self, f: Filters, min_impressions: int = 1, max_rank: int = 20
    ) -> JudgmentCounts:
        params: dict[str, Any] = {
            "since": naive_utc(f.since),
            "min_impressions": min_impressions,
            "max_rank": max_rank,
        }
        if f.user_id is not None:
            params["user"] = f.user_id
        if f.variant is not None:
            params["variant"] = f.variant
        rows = self._query(queries.judgment_counts_sql(f), params)
        return JudgmentCounts(
            rows=tuple(JudgmentCount(*row[1:]) for row in rows if row[0] == "pair"),
            ranks={row[3]: Counts(row[4], row[5]) for row in rows if row[0] == "rank"},
        )

    def top_products(self, f: Filters, top: int) -> list[ProductClicks]:
        scope = Scope(f)
        rows = self._query(
            f"""{scope.with_clause("click_events")}
            SELECT product_id, count(*) AS clicks, count(DISTINCT user_id), sum(rank)::BIGINT
            FROM {scope.clicks()}
            GROUP BY product_id ORDER BY clicks DESC, product_id LIMIT $top""",
            {**scope.params, "top": top},
        )
        return [ProductClicks(*row) for row in rows]

    def latency_histogram(self, f: Filters) -> dict[float, int]:
        scope = Scope(f)
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
        # replace the result it is fetching from. No time limit: an export takes as long as
        # the data needs.
        if self._broken is not None:
            self._recover()
        if self._db is None:
            raise StoreError(f"{self.label} is not open")
        cursor = self._db.cursor()
        try:
            for kind, table in TABLES.items():
                names = [c.name for c in table.columns]
                cursor.execute(
                    f"SELECT {', '.join(names)} FROM {table.name} WHERE ts >= $since "
                    "ORDER BY ts, event_id",
                    {"since": naive_utc(since) if since else datetime(1, 1, 1)},
                )
                while rows := cursor.fetchmany(batch_rows):
                    yield [table.event_row(kind, row) for row in rows]
        except duckdb.Error as exc:
            self._fatal(exc)
            raise StoreError(f"export failed: {without_paths(str(exc))}") from exc
        finally:
            cursor.close()


def _key(by: ByVariant, value: str | None) -> Key:
    return (str(value),) if by else ()


class _Watch:
    """Stops one query on one cursor once its time is up, never after it ended: an interrupt
    reaches only the query of the cursor it is called on, and only while it runs."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, limit_s: float) -> None:
        self.cursor = cursor
        self.fired = False
        self._done = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(limit_s, self._interrupt)
        self._timer.daemon = True

    def _interrupt(self) -> None:
        with self._lock:
            if not self._done:
                self.fired = True
                self.cursor.interrupt()

    def __enter__(self) -> _Watch:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()
