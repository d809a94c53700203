"""The MongoDB backend: two collections, group-committed unordered bulk inserts, server-side aggregates.

Writes go through the same GroupWriter as DuckDB's: one writer thread per process takes
everything queued and stores it with one unordered ``insert_many`` per collection, acknowledged
with the configured write concern (``majority`` unless the URI sets ``w=``) before any caller
hears "stored". A document's ``_id`` is its event id, so the ``_id`` index is the unique index
that turns a retried event into a duplicate (error 11000) instead of a second count
(`writing`).

Every figure is computed on the server by an aggregation pipeline (`pipelines`, which also
compiles the metric registry): no read brings raw events back to Python. Each read passes the
store's time limit as ``maxTimeMS``; a read the server stops raises ReadTimeout. MongoDB 6.0 is
the minimum supported (docs/SCALING.md says why).

The synchronous PyMongo client (`connection`) is used from the writer thread and the request
threads alike: it is thread-safe and pools its connections. See docs/SCALING.md.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pymongo
from pymongo.errors import ExecutionTimeout, PyMongoError

from clickstats import metrics
from clickstats.events import ClickEvent, to_millis, utcnow
from clickstats.store.base import (
    LATENCY_EDGES_MS,
    ActionTotal,
    Activity,
    Batch,
    ByVariant,
    Cap,
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
    SumOptions,
    UserSums,
    ranked_actions,
)
from clickstats.store.fields import aware, naive_utc
from clickstats.store.mongo import rollup
from clickstats.store.mongo.connection import (
    ACTIONS,
    CLICKS,
    COLLECTIONS,
    CONVERSIONS,
    DEFAULT_DATABASE,
    DEFAULT_SERVER_SELECTION_TIMEOUT_MS,
    DEFAULT_WTIMEOUT_MS,
    DUPLICATE_KEY,
    IMPRESSIONS,
    INDEXES,
    ClientFactory,
    client_options,
    mongomock_client,
    reason,
    redact,
    split_uri,
    uri_options,
    write_concern_from,
)
from clickstats.store.mongo.pipelines import (
    Doc,
    action_totals_pipeline,
    attribution_pipeline,
    bucket_values_pipeline,
    click_count_pipeline,
    conversion_totals_pipeline,
    count_pipeline,
    edge_pipeline,
    interpolate,
    judgment_counts_pipeline,
    key_text,
    latency_histogram_pipeline,
    latency_pipeline,
    match,
    p95_histogram_pipeline,
    p95_queries,
    per_user_pipeline,
    preference_pipeline,
    rank_pipeline,
    reads_conversions,
    search_totals_pipeline,
    searches_per_user_pipeline,
    span_pipeline,
    top_products_pipeline,
    variant_sums_pipeline,
)
from clickstats.store.mongo.writing import FIELDS, document, event_row, insert
from clickstats.store.writer import GroupWriter, GroupWritten

# The names tests and callers import from here (the module's names before it was a package).
_insert = insert
_reason = reason

__all__ = [
    "CLICKS",
    "CONVERSIONS",
    "DEFAULT_DATABASE",
    "DEFAULT_MAX_BATCH_ROWS",
    "DEFAULT_SERVER_SELECTION_TIMEOUT_MS",
    "DEFAULT_WTIMEOUT_MS",
    "DUPLICATE_KEY",
    "IMPRESSIONS",
    "INDEXES",
    "ClientFactory",
    "MongoStore",
    "_insert",
    "_reason",
    "interpolate",
    "mongomock_client",
    "p95_histogram_pipeline",
    "p95_queries",
    "redact",
    "split_uri",
    "uri_options",
    "write_concern_from",
]

#: Rows per group commit; insert_many splits further at the server's message limits.
DEFAULT_MAX_BATCH_ROWS = 10_000


def _preference(row: Doc) -> PreferenceSums:
    return PreferenceSums(
        units=row["units"],
        **{k: float(row[k]) for k in ("wins_a", "wins_b", "ties", "wins_a2", "wins_b2", "wins_ab")},
    )


def _totals(grouping: Grouping, rows: list[Doc]) -> dict[Key, SearchTotals]:
    integer = {name: metrics.COLUMNS[name].integer for name in metrics.columns(dashboard=True)}
    out: dict[Key, SearchTotals] = {}
    for row in rows:
        if not row["searches"]:  # mongomock groups an empty input into one empty row
            continue
        ids = row["_id"] or {}
        key = tuple(key_text(k, ids[f"k{n}"]) for n, k in enumerate(grouping.by))
        sums = {
            name: int(row[name if name in row else "users"]) if whole else float(row[name])
            for name, whole in integer.items()
        }  # a per-user column (not summed per search) is the group's users
        out[key] = SearchTotals(users=row["users"], sums=sums)
    return out


def _key(row: Doc, by: ByVariant) -> Key:
    return (row["_id"],) if by else ()


class MongoStore(GroupWritten, EventStore):
    kind = "mongodb"

    def __init__(
        self,
        uri: str,
        *,
        client_factory: ClientFactory | None = None,
        read_timeout_s: float | None = None,
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
    ) -> None:
        self.uri = uri
        self.display_uri = redact(uri)
        self.label = f"the MongoDB store at {self.display_uri}"
        options = uri_options(uri)
        self.database_name = split_uri(uri)[2] or DEFAULT_DATABASE
        self.write_concern = write_concern_from(options)
        self.client_options: dict[str, Any] = client_options(options)
        self.read_timeout_s = read_timeout_s
        self.max_batch_rows = max_batch_rows
        self._client_factory: ClientFactory = client_factory or pymongo.MongoClient
        self._client: Any = None
        #: each collection by name (CLICKS, IMPRESSIONS, CONVERSIONS), while open
        self._collections: dict[str, Any] = {}
        self._writer: GroupWriter | None = None
        #: whether reads take each search's clicks from the rollup (rollup.py); False: from
        #: the clicks (the full recomputation the tests compare the rollup with)
        self.use_rollup = True

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        if self._client is not None:
            return
        try:
            client = self._client_factory(self.uri, **self.client_options)
        except PyMongoError as exc:  # a malformed URI, an SRV record that does not resolve
            raise StoreError(f"cannot use MongoDB at {self.display_uri}: {reason(exc)}") from exc
        step = "cannot reach MongoDB"
        try:
            client.admin.command("ping")
            step = "cannot create the indexes on MongoDB"
            database = client.get_database(self.database_name)
            collections = {
                name: database.get_collection(name, write_concern=self.write_concern)
                for name in COLLECTIONS.values()
            }
            for collection in collections.values():
                for name, keys in INDEXES.items():
                    collection.create_index(keys, name=name)
        except PyMongoError as exc:
            client.close()
            raise StoreError(f"{step} at {self.display_uri}: {reason(exc)}") from exc
        try:
            step = "cannot build the click rollup on MongoDB"
            database = client.get_database(self.database_name)
            rollup.ensure(collections[CLICKS], self._rollup_collection(database))
        except PyMongoError as exc:
            client.close()
            raise StoreError(f"{step} at {self.display_uri}: {reason(exc)}") from exc
        self._client, self._collections = client, collections
        self._writer = GroupWriter(
            self.display_uri,
            self._write,
            self._delete,
            max_batch_rows=self.max_batch_rows,
        )
        self._writer.start()

    def close(self) -> None:
        if self._client is None:
            return
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        self._client.close()
        self._client, self._collections = None, {}

    def _rollup_collection(self, database: Any = None) -> Any:
        if database is None:
            if self._client is None:
                raise StoreError(f"the MongoDB store at {self.display_uri} is not open")
            database = self._client.get_database(self.database_name)
        return database.get_collection(rollup.SEARCH_CLICKS, write_concern=self.write_concern)

    @contextlib.contextmanager
    def _linked(self, since: datetime) -> Iterator[rollup.Straddling | None]:
        """How the read inside the block links searches to their clicks at or after `since`:
        through the rollup (with the straddling searches in a temporary collection, rollup.py),
        or None: through the clicks (`use_rollup` off, or too many straddling searches)."""
        if not self.use_rollup:
            yield None
            return
        with self._temporary() as name:
            try:
                straddle = rollup.straddling(
                    self._collection(CLICKS),
                    self._rollup_collection(),
                    naive_utc(since),
                    self._collection(name),
                )
            except PyMongoError as exc:
                raise StoreError(
                    f"query on MongoDB at {self.display_uri} failed: {reason(exc)}"
                ) from exc
            yield straddle

    # -- writes: through the writer thread -------------------------------------------------

    def _write(self, batch: Batch) -> dict[str, set[str]]:
        """One unordered insert_many per collection. Should a later one fail, the earlier ones'
        events stay stored and the callers get an error: their retry finds them duplicates."""
        received_at = naive_utc(to_millis(utcnow()))
        try:
            fresh = {
                kind: insert(
                    self._collection(COLLECTIONS[kind]),
                    [document(FIELDS[kind], e, received_at) for e in events],
                )
                for kind, events in batch.items()
            }
            # every cited search, duplicates too: a retry repairs what a failed write left
            cited = [e.search_id for e in batch.get("click", ()) if isinstance(e, ClickEvent)]
            rollup.recompute(self._collection(CLICKS), self._rollup_collection(), cited)
            return fresh
        except PyMongoError as exc:  # the writer answers every caller with a StoreError (503)
            raise StoreError(reason(exc)) from exc

    def _delete(self, selection: Selection) -> Deleted:
        """One delete_many per collection (no transaction: a standalone server has none);
        should the second fail, the caller hears of it, and a retry finishes the job."""
        spec: Doc = {}
        if selection.user_id is not None:
            spec["user_id"] = selection.user_id  # the user_id_timestamp index
        if selection.before is not None:
            spec["timestamp"] = {"$lt": naive_utc(selection.before)}
        try:
            clicks, searches = self._collection(CLICKS), self._rollup_collection()
            if not spec:
                touched = None
            elif selection.user_id is None:  # every search with a click before the cutoff
                touched = [
                    d["_id"] for d in searches.find({"first_ts": spec["timestamp"]}, {"_id": 1})
                ]
            else:
                touched = clicks.distinct("search_id", spec)
            deleted = {
                kind: self._collection(name).delete_many(spec).deleted_count
                for kind, name in COLLECTIONS.items()
            }
            if touched is None:
                searches.delete_many({})
            else:
                rollup.recompute(clicks, searches, touched)
        except PyMongoError as exc:
            raise StoreError(reason(exc)) from exc
        return Deleted(
            clicks=deleted["click"],
            impressions=deleted["impression"],
            conversions=deleted["conversion"],
            actions=deleted["action"],
        )

    # -- reads: aggregation pipelines ------------------------------------------------------

    def _collection(self, name: str) -> Any:
        collection = self._collections.get(name)
        if collection is None and self._client is not None and name.startswith("tmp."):
            return self._client.get_database(self.database_name).get_collection(name)
        if collection is None:
            raise StoreError(f"the MongoDB store at {self.display_uri} is not open")
        return collection

    def _max_time_ms(self) -> int | None:
        """The read time limit in ms for maxTimeMS (at least 1: 0 would mean none)."""
        if self.read_timeout_s is None:
            return None
        return max(1, int(self.read_timeout_s * 1000))

    def _aggregate(self, name: str, pipeline: list[Doc]) -> list[Doc]:
        # allowDiskUse: a $group or $sort over millions of searches may pass the server's
        # 100 MB per stage; then it spills to disk instead of failing. mongomock accepts both
        # options (and ignores them), so they are passed to every client.
        max_time_ms = self._max_time_ms()
        options: dict[str, Any] = {"allowDiskUse": True}
        if max_time_ms is not None:
            options["maxTimeMS"] = max_time_ms
        try:
            return list(self._collection(name).aggregate(pipeline, **options))
        except ExecutionTimeout as exc:
            raise ReadTimeout(self.read_timeout_s or 0.0) from exc
        except PyMongoError as exc:
            raise StoreError(
                f"query on MongoDB at {self.display_uri} failed: {reason(exc)}"
            ) from exc

    def ping(self) -> None:
        if self._client is None:
            raise StoreError(f"the MongoDB store at {self.display_uri} is not open")
        try:
            self._client.admin.command("ping")
        except PyMongoError as exc:
            raise StoreError(f"cannot reach MongoDB at {self.display_uri}: {reason(exc)}") from exc

    def counts(self, f: Filters, by: ByVariant = ()) -> dict[Key, Counts]:
        """Impressions counted per variant (or not); clicks likewise, their variants resolved
        where they are grouped or filtered by variant."""
        by_variant = bool(by)
        impressions = {
            _key(row, by): row["n"]
            for row in self._aggregate(IMPRESSIONS, count_pipeline(match(f), by_variant))
        }
        clicks = {
            _key(row, by): row["n"]
            for row in self._aggregate(CLICKS, click_count_pipeline(f, by_variant))
        }
        keys = impressions.keys() | clicks.keys() | ({()} if not by else set())
        return {
            key: Counts(impressions=impressions.get(key, 0), clicks=clicks.get(key, 0))
            for key in keys
        }

    def rank_histogram(self, f: Filters, by: ByVariant = ()) -> dict[Key, RankHistogram]:
        out: dict[Key, RankHistogram] = {} if by else {(): {}}
        for row in self._aggregate(CLICKS, rank_pipeline(f, bool(by))):
            key: Key = (row["_id"]["variant"],) if by else ()
            out.setdefault(key, {})[int(row["_id"]["rank"])] = row["n"]
        return out

    def _latency(self, spec: Doc, row: Doc) -> LatencyStats:
        histogram = self._aggregate(IMPRESSIONS, p95_histogram_pipeline(spec))
        ranked, queries = p95_queries([(float(h["_id"]), int(h["n"])) for h in histogram])
        values = [
            float(doc["v"])
            for q in queries
            for doc in self._aggregate(IMPRESSIONS, bucket_values_pipeline(spec, q))
        ]
        return LatencyStats(
            count=int(row["count"]),
            mean=row["mean"],
            minimum=row["minimum"],
            maximum=row["maximum"],
            p95=interpolate(ranked, values),
        )

    def latency(self, f: Filters, by: ByVariant = ()) -> dict[Key, LatencyStats]:
        """One (grouped) pipeline, then one p95 query per group (on variant_timestamp)."""
        spec = match(f, latency=True)
        rows = self._aggregate(IMPRESSIONS, latency_pipeline(spec, bool(by)))
        if not by:
            return {(): self._latency(spec, rows[0]) if rows else LatencyStats()}
        return {(row["_id"],): self._latency({**spec, "variant": row["_id"]}, row) for row in rows}

    def _edge(self, name: str, spec: Doc, direction: int) -> datetime | None:
        rows = self._aggregate(name, edge_pipeline(spec, direction))
        return aware(rows[0]["timestamp"]) if rows else None

    def preference_sums(
        self,
        since: datetime,
        label: str,
        top_queries: int | None = None,
        outcome: Outcome = "clicks",
    ) -> dict[Key, PreferenceSums]:
        window_ms = int(self.attribution_window.total_seconds() * 1000)
        pipeline = preference_pipeline(since, label, top_queries, outcome, window_ms)
        rows = self._aggregate(CONVERSIONS if outcome == "purchases" else IMPRESSIONS, pipeline)
        if top_queries is None:
            return {(): _preference(rows[0]) if rows else PreferenceSums()}
        return {(row["_id"],): _preference(row) for row in rows}

    def user_sums(
        self,
        since: datetime,
        variants: Sequence[str],
        max_searches: int | None = None,
        options: SumOptions | None = None,
    ) -> dict[str, UserSums]:
        """Conversions attributed first (attribution_pipeline, into a temporary collection);
        then one pipeline: each search with its clicks ($lookup on the search_id index) and
        conversions, per user the registry's columns (and CUPED's pre-exposure values), written
        to a second temporary collection; the caps' percentiles are read from that by a count
        and a sort, as the p95; then per variant, capped."""
        options = options or SumOptions()
        columns, pairs = metrics.columns(), metrics.pairs()
        pre_since = naive_utc(since) - timedelta(days=options.pre_days)
        with (
            self._attributed(pre_since if options.pre_columns else since, options.currency) as (
                attributed
            ),
            self._temporary() as users,
            self._linked(pre_since if options.pre_columns else since) as straddle,
        ):
            self._aggregate(
                IMPRESSIONS,
                per_user_pipeline(
                    since,
                    variants,
                    max_searches,
                    options,
                    pre_since,
                    attributed,
                    users,
                    straddle,
                ),
            )
            caps: dict[str, float] = {}
            for name, cap in options.caps:
                value = self._cap(users, name, cap)
                if value is not None:
                    caps[name] = value
            rows = self._aggregate(users, variant_sums_pipeline(options, caps))
        pre = [c for c in options.pre_columns if c in columns]
        return {
            row["_id"]: UserSums(
                users=row["users"],
                sums={c: float(row[f"sum_{c}"]) for c in columns},
                squares={c: float(row[f"sq_{c}"]) for c in columns},
                products={pair: float(row[f"p{n}"]) for n, pair in enumerate(pairs)},
                caps=caps,
                pre={
                    c: PreSums(
                        int(row[f"pre_users_{c}"]),
                        float(row[f"pre_sum_{c}"]),
                        float(row[f"pre_sq_{c}"]),
                        float(row[f"pre_p_{c}"]),
                    )
                    for c in pre
                },
            )
            for row in rows
        }

    def _cap(self, users: str, column: str, cap: Cap) -> float | None:
        """A cap's value: absolute, or the percentile of the column's non-zero values over
        the users in the collection `users` (linear interpolation, as quantile_cont)."""
        if cap.percentile is None:
            return cap.absolute
        nonzero = {"$match": {column: {"$gt": 0}}}  # zeros left out (store.base.Cap)
        counted = self._aggregate(users, [nonzero, {"$group": {"_id": None, "n": {"$sum": 1}}}])
        count = counted[0]["n"] if counted else 0
        if not count:
            return None
        h = (count - 1) * cap.percentile
        lo, hi = math.floor(h), math.ceil(h)
        rows = self._aggregate(
            users,
            [
                nonzero,
                {"$project": {"_id": 0, "v": f"${column}"}},
                {"$sort": {"v": 1}},
                *([{"$skip": lo}] if lo else []),
                {"$limit": hi - lo + 1},
            ],
        )
        values = [float(row["v"]) for row in rows]
        if not values:
            return None
        return values[0] + (values[-1] - values[0]) * (h - lo)

    @contextlib.contextmanager
    def _temporary(self) -> Iterator[str]:
        """The name of a collection this read may write ($out) and which is dropped after."""
        name = f"tmp.{uuid.uuid4().hex}"
        try:
            yield name
        finally:
            database = self._client.get_database(self.database_name) if self._client else None
            if database is not None:
                with contextlib.suppress(PyMongoError):
                    database.drop_collection(name)

    @contextlib.contextmanager
    def _attributed(self, since: datetime, currency: str | None) -> Iterator[str]:
        """A temporary collection of each search's attributed conversions since `since`
        (attribution_pipeline), for the read inside the block."""
        window_ms = int(self.attribution_window.total_seconds() * 1000)
        with self._temporary() as name:
            self._aggregate(CONVERSIONS, attribution_pipeline(since, window_ms, currency, name))
            yield name

    def searches_per_user(
        self, since: datetime, variants: Sequence[str]
    ) -> dict[str, SearchesHistogram]:
        """Two $group stages over the impressions (variant_timestamp index); no clicks."""
        pipeline = searches_per_user_pipeline(since, variants)
        out: dict[str, SearchesHistogram] = {}
        for row in sorted(
            self._aggregate(IMPRESSIONS, pipeline),
            key=lambda r: (r["_id"]["variant"], r["_id"]["searches"]),
        ):
            out.setdefault(row["_id"]["variant"], {})[int(row["_id"]["searches"])] = row["users"]
        return out

    def activity(self, f: Filters) -> Activity:
        """Four index walks (first and last event of each collection), not a scan; the clicks
        of a variant are grouped instead, their variants resolved."""
        spec = match(f)
        names = (IMPRESSIONS, CLICKS) if f.variant is None else (IMPRESSIONS,)
        firsts = [self._edge(name, spec, 1) for name in names]
        lasts = [self._edge(name, spec, -1) for name in names]
        if f.variant is not None:
            for row in self._aggregate(CLICKS, span_pipeline(f)):
                firsts.append(aware(row["first"]))
                lasts.append(aware(row["last"]))
        return Activity(
            first_seen=min((t for t in firsts if t is not None), default=None),
            last_seen=max((t for t in lasts if t is not None), default=None),
        )

    def search_totals_many(
        self, f: Filters, groupings: Sequence[Grouping]
    ) -> list[dict[Key, SearchTotals]]:
        """One pipeline: each search's clicks (and attributed conversions) looked up once, then
        a $facet per grouping. A grouping by query without a top could outgrow a document
        (16 MB): it runs alone."""
        if not groupings:
            return []
        with self._linked(f.since) as straddle:
            if not reads_conversions(metrics.columns(dashboard=True)):
                return self._search_totals(f, groupings, None, straddle)
            with self._attributed(f.since, f.currency) as attributed:
                return self._search_totals(f, groupings, attributed, straddle)

    def _search_totals(
        self,
        f: Filters,
        groupings: Sequence[Grouping],
        attributed: str | None,
        straddle: rollup.Straddling | None,
    ) -> list[dict[Key, SearchTotals]]:
        unbounded = any("query" in g.by and g.top is None for g in groupings)
        if len(groupings) == 1 or unbounded:
            return [
                _totals(
                    g,
                    self._aggregate(
                        IMPRESSIONS, search_totals_pipeline(f, [g], attributed, straddle)
                    ),
                )
                for g in groupings
            ]
        (facets,) = self._aggregate(
            IMPRESSIONS, search_totals_pipeline(f, groupings, attributed, straddle)
        )
        return [_totals(g, facets[f"g{n}"]) for n, g in enumerate(groupings)]

    def conversion_totals(
        self, f: Filters, by: tuple[ConversionKey, ...] = (), tz: str = "UTC"
    ) -> dict[Key, ConversionTotals]:
        """One pipeline over the conversions: attributed ($lookup of the user's clicks), the
        variant of their search looked up, then grouped."""
        window_ms = int(self.attribution_window.total_seconds() * 1000)
        rows = self._aggregate(CONVERSIONS, conversion_totals_pipeline(f, by, tz, window_ms))
        keys = [*by, "currency"]
        out = {
            tuple(
                key_text("day", row["_id"][f"k{n}"]) if k == "day" else str(row["_id"][f"k{n}"])
                for n, k in enumerate(keys)
            ): ConversionTotals(
                conversions=row["conversions"],
                purchases=row["purchases"],
                add_to_carts=row["add_to_carts"],
                revenue=float(row["revenue"]),
                orders=row["orders"],
                units=int(row["units"]),
                attributed=row["attributed"],
            )
            for row in rows
            if row["conversions"]
        }
        return dict(sorted(out.items()))

    def action_totals(self, f: Filters) -> list[ActionTotal]:
        (facets,) = self._aggregate(ACTIONS, action_totals_pipeline(f))
        products = {r["_id"]: r["products"] for r in facets["products"]}
        return ranked_actions(
            ActionTotal(r["_id"], r["events"], r["users"], products.get(r["_id"], 0))
            for r in facets["users"]
        )

    def judgment_counts(
        self, f: Filters, min_impressions: int = 1, max_rank: int = 20
    ) -> JudgmentCounts:
        pipeline = judgment_counts_pipeline(f, min_impressions, max_rank)
        (facets,) = self._aggregate(IMPRESSIONS, pipeline)
        rows = (
            JudgmentCount(p["_id"]["q"], p["_id"]["p"], int(r["r"]), r["i"], r["c"])
            for p in facets["pairs"]
            for r in p["ranks"]
        )
        return JudgmentCounts(
            rows=tuple(sorted(rows, key=lambda j: (j.query, j.product_id, j.rank))),
            ranks={int(r["_id"]): Counts(r["impressions"], r["clicks"]) for r in facets["ranks"]},
        )

    def top_products(self, f: Filters, top: int) -> list[ProductClicks]:
        rows = self._aggregate(CLICKS, top_products_pipeline(f, top))
        return [ProductClicks(r["_id"], r["clicks"], r["users"], r["rank_sum"]) for r in rows]

    def latency_histogram(self, f: Filters) -> dict[float, int]:
        rows = self._aggregate(IMPRESSIONS, latency_histogram_pipeline(match(f, latency=True)))
        counts = {float(row["_id"]): row["n"] for row in rows}
        return {edge: counts.get(float(edge), 0) for edge in LATENCY_EDGES_MS}

    def export(
        self, since: datetime | None = None, batch_rows: int = 10_000
    ) -> Iterator[list[EventRow]]:
        spec = {"timestamp": {"$gte": naive_utc(since)}} if since else {}
        for kind, name in COLLECTIONS.items():
            fields = FIELDS[kind]
            cursor = (
                self._collection(name)
                .find(spec, {"received_at": 0}, max_time_ms=self._max_time_ms())
                .sort([("timestamp", 1), ("_id", 1)])
                .batch_size(batch_rows)
            )
            batch: list[EventRow] = []
            try:
                for doc in cursor:
                    batch.append(event_row(kind, fields, doc))
                    if len(batch) >= batch_rows:
                        yield batch
                        batch = []
            except ExecutionTimeout as exc:
                raise ReadTimeout(self.read_timeout_s or 0.0) from exc
            except PyMongoError as exc:
                raise StoreError(
                    f"export from MongoDB at {self.display_uri} failed: {reason(exc)}"
                ) from exc
            if batch:
                yield batch
