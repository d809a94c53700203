"""The MongoDB backend: two collections, group-committed unordered bulk inserts, server-side aggregates.

Writes go through the same GroupWriter as DuckDB's: one writer thread per process takes
everything queued and stores it with one unordered ``insert_many`` per collection, acknowledged
with the configured write concern (``majority`` unless the URI sets ``w=``) before any caller
hears "stored". A document's ``_id`` is its event id, so the ``_id`` index is the unique index
that turns a retried event into a duplicate (error 11000) instead of a second count.

Every figure is computed on the server by an aggregation pipeline that ends in ``$group`` or
``$limit``: no read brings raw events back to Python. The exact p95 (DuckDB's quantile_cont)
takes two small queries: a count (with the other latency figures), then the one or two
values around rank 0.95 * (n - 1), found by ``$sort``/``$skip``/``$limit`` from the top.
Only stages MongoDB has had since 3.4 are used, so that the same pipelines run on mongomock;
MongoDB 6.0 is the minimum supported (docs/SCALING.md says why).

The synchronous PyMongo client is used from the writer thread and the request threads alike:
it is thread-safe and pools its connections. See docs/SCALING.md.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

import pymongo
from pymongo.errors import BulkWriteError, PyMongoError
from pymongo.write_concern import WriteConcern

from clickstats.events import ClickEvent, SearchImpression, to_millis, utcnow
from clickstats.store.base import (
    LATENCY_EDGES_MS,
    P95,
    USER_COLUMNS,
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
    UserSums,
)
from clickstats.store.mongo_pipelines import (
    count_if,
    key_text,
    latency_histogram_pipeline,
    linked_clicks,
    resolved_variant,
    search_totals_pipeline,
    top_products_pipeline,
)
from clickstats.store.writer import GroupWriter, GroupWritten

CLICKS = "click_events"
IMPRESSIONS = "impressions"
DEFAULT_DATABASE = "clickstats"
#: How long start-up and each request wait for a reachable server; the URI's
#: serverSelectionTimeoutMS overrides it.
DEFAULT_SERVER_SELECTION_TIMEOUT_MS = 5_000
#: How long a write waits for its write concern (a majority of the replica set) before it
#: fails with a 503, unless the URI sets wtimeoutMS or timeoutMS: without a limit, a write
#: would wait as long as a majority is down.
DEFAULT_WTIMEOUT_MS = 10_000
DUPLICATE_KEY = 11000
#: Rows per group commit; insert_many splits further at the server's message limits.
DEFAULT_MAX_BATCH_ROWS = 10_000

#: Secondary indexes of both collections, created (idempotently) by open(). The unique index
#: on the event id is the built-in ``_id_`` index: ``_id`` holds the event id.
INDEXES: dict[str, list[tuple[str, int]]] = {
    "timestamp": [("timestamp", pymongo.ASCENDING)],
    "user_id_timestamp": [("user_id", pymongo.ASCENDING), ("timestamp", pymongo.ASCENDING)],
    "variant_timestamp": [("variant", pymongo.ASCENDING), ("timestamp", pymongo.ASCENDING)],
    "search_id": [("search_id", pymongo.ASCENDING)],
}

#: Builds a client from a URI and keyword options: pymongo.MongoClient, or a stand-in.
ClientFactory = Callable[..., Any]
Doc = dict[str, Any]

# -- URIs --------------------------------------------------------------------------------------

_SECRET_OPTIONS = ("password", "token", "secret", "authmechanismproperties")


def split_uri(uri: str) -> tuple[str, str, str, str]:
    """scheme, authority (user:password@hosts), database ('' if none), query string."""
    scheme, _, rest = uri.partition("://")
    authority, _, tail = rest.partition("/")
    if "?" in authority:  # mongodb://host?opts (no slash) is not valid, but don't misread it
        authority, _, query = authority.partition("?")
        return scheme, authority, "", query
    database, _, query = tail.partition("?")
    return scheme, authority, unquote(database), query


def uri_options(uri: str) -> dict[str, str]:
    """The URI's options, keys lower-cased (MongoDB URI options are case-insensitive)."""
    query = split_uri(uri)[3]
    return {key.lower(): value for key, value in parse_qsl(query, keep_blank_values=True)}


def redact(uri: str) -> str:
    """The URI without its password (and without option values that are secrets)."""
    scheme, authority, database, query = split_uri(uri)
    userinfo, at, hosts = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.partition(':')[0]}:***@{hosts}"
    if query:
        parts = []
        for key, value in parse_qsl(query, keep_blank_values=True):
            secret = any(word in key.lower() for word in _SECRET_OPTIONS)
            parts.append(f"{key}={'***' if secret else value}")
        query = "&".join(parts)
    out = f"{scheme}://{authority}/{database}"
    return f"{out}?{query}" if query else out


def write_concern_from(options: dict[str, str]) -> WriteConcern:
    """The URI's w / wtimeoutMS / journal; w defaults to "majority", wtimeoutMS to 10 s
    (unless the URI sets timeoutMS, which bounds the whole operation). w=0 is refused."""
    w_text = options.get("w", "majority")
    w: int | str = int(w_text) if w_text.isdigit() else w_text
    if w == 0:
        raise ValueError(
            "w=0 (unacknowledged writes) cannot tell stored events from lost ones or "
            "duplicates: use w=majority (the default) or w=1"
        )
    wtimeout: int | None = DEFAULT_WTIMEOUT_MS
    if "wtimeoutms" in options:
        wtimeout = int(options["wtimeoutms"])
    elif "timeoutms" in options:
        wtimeout = None
    journal = options["journal"].lower() == "true" if "journal" in options else None
    return WriteConcern(w=w, wtimeout=wtimeout, j=journal)


def _reason(exc: BaseException) -> str:
    """PyMongo's message on one line, without the topology dump of selection timeouts and
    without the documents a bulk write error carries."""
    if isinstance(exc, BulkWriteError):
        details = exc.details
        errors = [e for e in details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
        errors += details.get("writeConcernErrors", [])
        described = [f"{e.get('errmsg', 'error')} (code {e.get('code')})" for e in errors[:3]]
        return "; ".join(described) or "bulk write failed"
    return str(exc).split(", Topology Description:")[0].replace("\n", " ")


# -- mongomock: in-process stand-in for tests and demos ------------------------------------------

_mongomock_clients: dict[str, Any] = {}
_mongomock_lock = threading.Lock()


def mongomock_client(uri: str, **_options: Any) -> Any:
    """The process's mongomock client for this URI's host: every store on it sees one server.

    For tests and demos only: the data lives in this process's memory and dies with it.
    """
    try:
        import mongomock
    except ImportError as exc:  # a dev dependency
        raise StoreError(
            "mongomock:// stores need the mongomock package (pip install mongomock); "
            "they are for tests and demos only: use mongodb:// for real data"
        ) from exc
    host = split_uri(uri)[1].rpartition("@")[2] or "localhost"
    with _mongomock_lock:
        client = _mongomock_clients.get(host)
        if client is None:
            client = _mongomock_clients[host] = mongomock.MongoClient(f"mongodb://{host}/")
        return client


# -- documents -----------------------------------------------------------------------------------


def _naive_utc(value: datetime) -> datetime:
    """BSON datetimes are UTC milliseconds; naive UTC values mean the same to PyMongo and mongomock."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def click_doc(e: ClickEvent, received_at: datetime) -> Doc:
    return {
        "_id": e.event_id,
        "search_id": e.search_id,
        "user_id": e.user_id,
        "session_id": e.session_id,
        "product_id": e.product_id,
        "rank": e.rank,
        "search_query": e.search_query,
        "variant": e.variant,
        "response_time_ms": e.response_time_ms,
        "source": e.source.value,
        "timestamp": _naive_utc(e.timestamp),
        "received_at": received_at,
    }


def impression_doc(e: SearchImpression, received_at: datetime) -> Doc:
    return {
        "_id": e.event_id,
        "search_id": e.search_id,
        "user_id": e.user_id,
        "session_id": e.session_id,
        "query": e.query,
        "variant": e.variant,
        "results_count": e.results_count,
        "response_time_ms": e.response_time_ms,
        "results": e.results,
        "teams": e.teams,
        "timestamp": _naive_utc(e.timestamp),
        "received_at": received_at,
    }


def _insert(collection: Any, docs: list[Doc]) -> set[str]:
    """One unordered bulk insert; returns the ids stored now (the others were stored before)."""
    ids = {doc["_id"] for doc in docs}
    if not docs:
        return ids
    try:
        collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        details = exc.details
        errors = details.get("writeErrors", [])
        if details.get("writeConcernErrors") or any(
            error.get("code") != DUPLICATE_KEY for error in errors
        ):
            raise  # not acknowledged as configured: the callers get a 503 and retry
        ids.difference_update(docs[error["index"]]["_id"] for error in errors)
    return ids


# -- queries -------------------------------------------------------------------------------------


def _totals(grouping: Grouping, rows: list[Doc]) -> dict[tuple[str, ...], SearchTotals]:
    out: dict[tuple[str, ...], SearchTotals] = {}
    for row in rows:
        if not row["searches"]:  # mongomock groups an empty input into one empty row
            continue
        ids = row["_id"] or {}
        key = tuple(key_text(k, ids[f"k{n}"]) for n, k in enumerate(grouping.by))
        out[key] = SearchTotals(
            searches=row["searches"],
            users=row["users"],
            clicked_searches=row["clicked_searches"],
            clicks=row["clicks"],
            rank_sum=row["rank_sum"],
            zero_results=row["zero_results"],
            abandoned=row["abandoned"],
        )
    return out


def match(f: Filters, *, latency: bool = False) -> Doc:
    """The $match of a Filters; `latency` keeps only searches that have a response time."""
    spec: Doc = {"timestamp": {"$gte": _naive_utc(f.since)}}
    if f.user_id is not None:
        spec["user_id"] = f.user_id
    if f.variant is not None:
        spec["variant"] = f.variant
    if latency:
        spec["response_time_ms"] = {"$ne": None}
    return spec


def click_match(f: Filters) -> Doc:
    """The $match of a Filters over clicks: with a variant, the clicks sent with it and those
    sent without one, whose variant resolved_variant then resolves."""
    spec = match(Filters(since=f.since, user_id=f.user_id))
    if f.variant is not None:
        spec["variant"] = {"$in": [f.variant, None]}
    return spec


_LATENCY_GROUP: Doc = {
    "count": {"$sum": 1},
    "mean": {"$avg": "$response_time_ms"},
    "minimum": {"$min": "$response_time_ms"},
    "maximum": {"$max": "$response_time_ms"},
}


def _if_clicked(then: Any) -> Doc:
    return {"$cond": [{"$gt": ["$n", 0]}, then, 0]}


def user_sums_pipeline(
    since: datetime,
    variants: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    max_searches: int | None = None,
) -> list[Doc]:
    """Impressions in the window, each with its clicks in the window; per user the
    USER_COLUMNS (users with more than `max_searches` searches left out); per variant their
    sums, squares and the products of `pairs`."""
    has_results = {"$gt": ["$results_count", 0]}
    per_user: Doc = {
        "searches": {"$sum": 1},
        "clicked_searches": {"$sum": _if_clicked(1)},
        "clicks": {"$sum": "$n"},
        "rr": {"$sum": _if_clicked({"$divide": [1, "$first_rank"]})},
        "rank_sum": {"$sum": "$rank_sum"},
        "with_results": {"$sum": {"$cond": [has_results, 1, 0]}},
        "abandoned": {"$sum": {"$cond": [{"$and": [has_results, {"$eq": ["$n", 0]}]}, 1, 0]}},
        "zero_results": {"$sum": {"$cond": [{"$eq": ["$results_count", 0]}, 1, 0]}},
        # date - date is milliseconds
        "ttfc_ms": {"$sum": _if_clicked({"$subtract": ["$first_ts", "$timestamp"]})},
    }
    per_variant: Doc = {"_id": "$_id.variant", "users": {"$sum": 1}}
    for c in USER_COLUMNS:
        per_variant[f"sum_{c}"] = {"$sum": f"${c}"}
        per_variant[f"sq_{c}"] = {"$sum": {"$multiply": [f"${c}", f"${c}"]}}
    for a, b in pairs:
        per_variant[f"p_{a}_{b}"] = {"$sum": {"$multiply": [f"${a}", f"${b}"]}}
    return [
        {"$match": {"timestamp": {"$gte": since}, "variant": {"$in": list(variants)}}},
        *linked_clicks(since, CLICKS, ("variant", "user_id", "timestamp", "results_count")),
        # One row per (search, click), a search without clicks kept once; earliest click first.
        {"$unwind": {"path": "$clicks", "preserveNullAndEmptyArrays": True}},
        {"$sort": {"_id": 1, "clicks.timestamp": 1, "clicks.rank": 1}},
        {
            "$group": {
                "_id": "$_id",
                "variant": {"$first": "$variant"},
                "user_id": {"$first": "$user_id"},
                "timestamp": {"$first": "$timestamp"},
                "results_count": {"$first": "$results_count"},
                "n": {"$sum": {"$cond": [{"$gt": ["$clicks.rank", None]}, 1, 0]}},
                "first_rank": {"$first": "$clicks.rank"},
                "rank_sum": {"$sum": "$clicks.rank"},
                "first_ts": {"$first": "$clicks.timestamp"},
            }
        },
        {"$group": {"_id": {"variant": "$variant", "user": "$user_id"}, **per_user}},
        *([] if max_searches is None else [{"$match": {"searches": {"$lte": max_searches}}}]),
        {"$group": per_variant},
    ]


def searches_per_user_pipeline(since: datetime, variants: Sequence[str]) -> list[Doc]:
    return [
        {"$match": {"timestamp": {"$gte": since}, "variant": {"$in": list(variants)}}},
        {"$group": {"_id": {"variant": "$variant", "user": "$user_id"}, "n": {"$sum": 1}}},
        {"$group": {"_id": {"variant": "$_id.variant", "searches": "$n"}, "users": {"$sum": 1}}},
    ]


def preference_pipeline(since: datetime, label: str, unit: list[str], top: int | None) -> list[Doc]:
    """Interleaved searches with their distinct clicked positions credited to the teams of those
    positions; per unit (`unit` fields) the searches A won, B won and ties; then summed (per
    query when "query" is a unit field, the `top` queries first)."""
    by_query = "query" in unit
    totals: Doc = {
        "_id": "$_id.query" if by_query else None,
        "units": {"$sum": 1},
        "wins_a": {"$sum": "$wa"},
        "wins_b": {"$sum": "$wb"},
        "ties": {"$sum": "$t"},
        "wins_a2": {"$sum": {"$multiply": ["$wa", "$wa"]}},
        "wins_b2": {"$sum": {"$multiply": ["$wb", "$wb"]}},
        "wins_ab": {"$sum": {"$multiply": ["$wa", "$wb"]}},
    }
    pipeline: list[Doc] = [
        {"$match": {"timestamp": {"$gte": since}, "variant": label, "teams": {"$ne": None}}},
        {
            "$lookup": {
                "from": CLICKS,
                "localField": "search_id",
                "foreignField": "search_id",
                "as": "clicks",
            }
        },
        {"$unwind": "$clicks"},
        {"$match": {"clicks.timestamp": {"$gte": since}}},
        {
            "$group": {  # distinct clicked positions of each search
                "_id": {"search": "$_id", "rank": "$clicks.rank"},
                "user_id": {"$first": "$user_id"},
                "query": {"$first": "$query"},
                "teams": {"$first": "$teams"},
            }
        },
        {
            "$project": {
                "user_id": 1,
                "query": 1,
                "team": {"$arrayElemAt": ["$teams", {"$subtract": ["$_id.rank", 1]}]},
            }
        },
        {
            "$group": {
                "_id": "$_id.search",
                "user_id": {"$first": "$user_id"},
                "query": {"$first": "$query"},
                "a": count_if({"$eq": ["$team", "A"]}),
                "b": count_if({"$eq": ["$team", "B"]}),
            }
        },
        {"$match": {"$expr": {"$gt": [{"$add": ["$a", "$b"]}, 0]}}},
        {
            "$group": {
                "_id": {field: f"${field}" for field in unit},
                "wa": count_if({"$gt": ["$a", "$b"]}),
                "wb": count_if({"$gt": ["$b", "$a"]}),
                "t": count_if({"$eq": ["$a", "$b"]}),
            }
        },
        {"$group": totals},
    ]
    if top is not None:
        pipeline += [
            {"$addFields": {"searches": {"$add": ["$wins_a", "$wins_b", "$ties"]}}},
            {"$sort": {"searches": -1, "_id": 1}},
            {"$limit": top},
        ]
    return pipeline


def _preference(row: Doc) -> PreferenceSums:
    return PreferenceSums(
        units=row["units"],
        **{k: float(row[k]) for k in ("wins_a", "wins_b", "ties", "wins_a2", "wins_b2", "wins_ab")},
    )


def p95_rank(count: int) -> tuple[float, int, int]:
    """quantile_cont's position: h = 0.95 * (n - 1), between ranks floor(h) and ceil(h)."""
    h = (count - 1) * P95
    return h, math.floor(h), math.ceil(h)


def p95_pipeline(spec: Doc, count: int) -> list[Doc]:
    """The values at ranks ceil(h) and floor(h) (0-based, ascending), largest first.

    Sorted from the top, so that the server's top-k sort keeps only the largest ~5% of
    the values in memory rather than 95% of them.
    """
    _, lo, hi = p95_rank(count)
    skip = count - 1 - hi
    return [
        {"$match": spec},
        {"$project": {"_id": 0, "v": "$response_time_ms"}},
        {"$sort": {"v": -1}},
        *([{"$skip": skip}] if skip else []),
        {"$limit": hi - lo + 1},
    ]


def interpolate(count: int, values: Sequence[float]) -> float | None:
    """Linear interpolation between the two closest ranks, as DuckDB's quantile_cont does it."""
    if not values:  # the events went away between the count and this query (a reset)
        return None
    h, lo, _ = p95_rank(count)
    upper, lower = values[0], values[-1]
    return lower + (upper - lower) * (h - lo)


class MongoStore(GroupWritten, EventStore):
    kind = "mongodb"

    def __init__(
        self,
        uri: str,
        *,
        client_factory: ClientFactory = pymongo.MongoClient,
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
    ) -> None:
        self.uri = uri
        self.display_uri = redact(uri)
        self.label = f"the MongoDB store at {self.display_uri}"
        options = uri_options(uri)
        self.database_name = split_uri(uri)[2] or DEFAULT_DATABASE
        self.write_concern = write_concern_from(options)
        self.client_options: dict[str, Any] = {}
        if "serverselectiontimeoutms" not in options:
            self.client_options["serverSelectionTimeoutMS"] = DEFAULT_SERVER_SELECTION_TIMEOUT_MS
        if "appname" not in options:
            self.client_options["appname"] = "clickstats"
        self.max_batch_rows = max_batch_rows
        self._client_factory = client_factory
        self._client: Any = None
        self._clicks: Any = None
        self._impressions: Any = None
        self._writer: GroupWriter | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        if self._client is not None:
            return
        try:
            client = self._client_factory(self.uri, **self.client_options)
        except PyMongoError as exc:  # a malformed URI, an SRV record that does not resolve
            raise StoreError(f"cannot use MongoDB at {self.display_uri}: {_reason(exc)}") from exc
        step = "cannot reach MongoDB"
        try:
            client.admin.command("ping")
            step = "cannot create the indexes on MongoDB"
            database = client.get_database(self.database_name)
            clicks = database.get_collection(CLICKS, write_concern=self.write_concern)
            impressions = database.get_collection(IMPRESSIONS, write_concern=self.write_concern)
            for collection in (clicks, impressions):
                for name, keys in INDEXES.items():
                    collection.create_index(keys, name=name)
        except PyMongoError as exc:
            client.close()
            raise StoreError(f"{step} at {self.display_uri}: {_reason(exc)}") from exc
        self._client, self._clicks, self._impressions = client, clicks, impressions
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
        self._client = self._clicks = self._impressions = None

    # -- writes: through the writer thread -------------------------------------------------

    def _write(
        self, clicks: list[ClickEvent], impressions: list[SearchImpression]
    ) -> tuple[set[str], set[str]]:
        """One unordered insert_many per collection. Should the second fail, the first's
        events stay stored and the callers get an error: their retry finds them duplicates."""
        received_at = _naive_utc(to_millis(utcnow()))
        try:
            return (
                _insert(self._clicks, [click_doc(e, received_at) for e in clicks]),
                _insert(self._impressions, [impression_doc(e, received_at) for e in impressions]),
            )
        except PyMongoError as exc:  # the writer answers every caller with a StoreError (503)
            raise StoreError(_reason(exc)) from exc

    def _delete(self, selection: Selection) -> Deleted:
        """One delete_many per collection (no transaction: a standalone server has none);
        should the second fail, the caller hears of it, and a retry finishes the job."""
        spec: Doc = {}
        if selection.user_id is not None:
            spec["user_id"] = selection.user_id  # the user_id_timestamp index
        if selection.before is not None:
            spec["timestamp"] = {"$lt": _naive_utc(selection.before)}
        try:
            clicks = self._clicks.delete_many(spec).deleted_count
            impressions = self._impressions.delete_many(spec).deleted_count
        except PyMongoError as exc:
            raise StoreError(_reason(exc)) from exc
        return Deleted(clicks=clicks, impressions=impressions)

    # -- reads: aggregation pipelines ------------------------------------------------------

    def _collection(self, name: str) -> Any:
        collection = self._clicks if name == CLICKS else self._impressions
        if collection is None:
            raise StoreError(f"the MongoDB store at {self.display_uri} is not open")
        return collection

    def _aggregate(self, name: str, pipeline: list[Doc]) -> list[Doc]:
        try:
            return list(self._collection(name).aggregate(pipeline))
        except PyMongoError as exc:
            raise StoreError(
                f"query on MongoDB at {self.display_uri} failed: {_reason(exc)}"
            ) from exc

    def ping(self) -> None:
        if self._client is None:
            raise StoreError(f"the MongoDB store at {self.display_uri} is not open")
        try:
            self._client.admin.command("ping")
        except PyMongoError as exc:
            raise StoreError(f"cannot reach MongoDB at {self.display_uri}: {_reason(exc)}") from exc

    def _count_by_variant(self, name: str, f: Filters) -> dict[str, int]:
        rows = self._aggregate(
            name, [{"$match": match(f)}, {"$group": {"_id": "$variant", "n": {"$sum": 1}}}]
        )
        return {row["_id"]: row["n"] for row in rows}

    def _clicks_by(self, f: Filters, keys: Doc, sums: Doc, regroup: Doc) -> list[Doc]:
        """Clicks grouped by `keys` with `sums`, their variants resolved (resolved_variant),
        then grouped as `regroup` says ("$variant" is the resolved variant)."""
        stages = resolved_variant(keys, sums, IMPRESSIONS, f.variant)
        return self._aggregate(CLICKS, [{"$match": click_match(f)}, *stages, {"$group": regroup}])

    def counts_by_variant(self, f: Filters) -> dict[str, Counts]:
        impressions = self._count_by_variant(IMPRESSIONS, f)
        rows = self._clicks_by(f, {}, {"n": {"$sum": 1}}, {"_id": "$variant", "n": {"$sum": "$n"}})
        clicks = {row["_id"]: row["n"] for row in rows}
        return {
            variant: Counts(impressions=impressions.get(variant, 0), clicks=clicks.get(variant, 0))
            for variant in impressions.keys() | clicks.keys()
        }

    def rank_histogram(self, f: Filters) -> RankHistogram:
        if f.variant is None:
            rows = self._aggregate(
                CLICKS, [{"$match": match(f)}, {"$group": {"_id": "$rank", "n": {"$sum": 1}}}]
            )
        else:
            rows = self._clicks_by(
                f,
                {"rank": "$rank"},
                {"n": {"$sum": 1}},
                {"_id": "$_id.rank", "n": {"$sum": "$n"}},
            )
        return {int(row["_id"]): row["n"] for row in rows}

    def rank_histogram_by_variant(self, f: Filters) -> dict[str, RankHistogram]:
        rows = self._clicks_by(
            f,
            {"rank": "$rank"},
            {"n": {"$sum": 1}},
            {"_id": {"variant": "$variant", "rank": "$_id.rank"}, "n": {"$sum": "$n"}},
        )
        out: dict[str, RankHistogram] = {}
        for row in rows:
            out.setdefault(row["_id"]["variant"], {})[int(row["_id"]["rank"])] = row["n"]
        return out

    def _latency(self, spec: Doc, row: Doc) -> LatencyStats:
        count = int(row["count"])
        values = [doc["v"] for doc in self._aggregate(IMPRESSIONS, p95_pipeline(spec, count))]
        return LatencyStats(
            count=count,
            mean=row["mean"],
            minimum=row["minimum"],
            maximum=row["maximum"],
            p95=interpolate(count, values),
        )

    def latency(self, f: Filters) -> LatencyStats:
        spec = match(f, latency=True)
        rows = self._aggregate(
            IMPRESSIONS, [{"$match": spec}, {"$group": {"_id": None, **_LATENCY_GROUP}}]
        )
        return self._latency(spec, rows[0]) if rows else LatencyStats()

    def latency_by_variant(self, f: Filters) -> dict[str, LatencyStats]:
        """One grouped pipeline, then one p95 query per variant (each on variant_timestamp)."""
        spec = match(f, latency=True)
        rows = self._aggregate(
            IMPRESSIONS, [{"$match": spec}, {"$group": {"_id": "$variant", **_LATENCY_GROUP}}]
        )
        return {row["_id"]: self._latency({**spec, "variant": row["_id"]}, row) for row in rows}

    def _edge(self, name: str, spec: Doc, direction: int) -> datetime | None:
        rows = self._aggregate(
            name,
            [
                {"$match": spec},
                {"$sort": {"timestamp": direction}},
                {"$limit": 1},
                {"$project": {"_id": 0, "timestamp": 1}},
            ],
        )
        return _aware(rows[0]["timestamp"]) if rows else None

    def preference_sums(self, f: Filters, label: str) -> PreferenceSums:
        rows = self._aggregate(
            IMPRESSIONS, preference_pipeline(_naive_utc(f.since), label, ["user_id"], None)
        )
        return _preference(rows[0]) if rows else PreferenceSums()

    def preference_sums_by_query(
        self, f: Filters, label: str, top: int
    ) -> dict[str, PreferenceSums]:
        pipeline = preference_pipeline(_naive_utc(f.since), label, ["user_id", "query"], top)
        return {row["_id"]: _preference(row) for row in self._aggregate(IMPRESSIONS, pipeline)}

    def user_sums(
        self,
        f: Filters,
        variants: Sequence[str],
        pairs: Sequence[tuple[str, str]],
        max_searches: int | None = None,
    ) -> dict[str, UserSums]:
        """One pipeline: each search with its clicks ($lookup on the search_id index), its
        earliest click first; per user; then per variant."""
        pipeline = user_sums_pipeline(_naive_utc(f.since), variants, pairs, max_searches)
        rows = self._aggregate(IMPRESSIONS, pipeline)
        return {
            row["_id"]: UserSums(
                users=row["users"],
                sums={c: float(row[f"sum_{c}"]) for c in USER_COLUMNS},
                squares={c: float(row[f"sq_{c}"]) for c in USER_COLUMNS},
                products={(a, b): float(row[f"p_{a}_{b}"]) for a, b in pairs},
            )
            for row in rows
        }

    def searches_per_user(
        self, f: Filters, variants: Sequence[str]
    ) -> dict[str, SearchesHistogram]:
        """Two $group stages over the impressions (variant_timestamp index); no clicks."""
        pipeline = searches_per_user_pipeline(_naive_utc(f.since), variants)
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
            span = {"first": {"$min": "$timestamp"}, "last": {"$max": "$timestamp"}}
            regroup = {"_id": None, "first": {"$min": "$first"}, "last": {"$max": "$last"}}
            for row in self._clicks_by(f, {}, span, regroup):
                firsts.append(_aware(row["first"]))
                lasts.append(_aware(row["last"]))
        return Activity(
            first_seen=min((t for t in firsts if t is not None), default=None),
            last_seen=max((t for t in lasts if t is not None), default=None),
        )

    def search_totals(self, f: Filters, grouping: Grouping) -> dict[tuple[str, ...], SearchTotals]:
        pipeline = search_totals_pipeline(match(f), _naive_utc(f.since), CLICKS, [grouping])
        return _totals(grouping, self._aggregate(IMPRESSIONS, pipeline))

    def search_totals_many(
        self, f: Filters, groupings: Sequence[Grouping]
    ) -> list[dict[tuple[str, ...], SearchTotals]]:
        """One pipeline: each search's clicks looked up once, then a $facet per grouping. A
        grouping by query without a top could outgrow a document (16 MB): it runs alone."""
        unbounded = any("query" in g.by and g.top is None for g in groupings)
        if len(groupings) < 2 or unbounded:
            return [self.search_totals(f, g) for g in groupings]
        pipeline = search_totals_pipeline(match(f), _naive_utc(f.since), CLICKS, groupings)
        (facets,) = self._aggregate(IMPRESSIONS, pipeline)
        return [_totals(g, facets[f"g{n}"]) for n, g in enumerate(groupings)]

    def top_products(self, f: Filters, top: int) -> list[ProductClicks]:
        pipeline = top_products_pipeline(click_match(f), top, IMPRESSIONS, f.variant)
        rows = self._aggregate(CLICKS, pipeline)
        return [ProductClicks(r["_id"], r["clicks"], r["users"], r["rank_sum"]) for r in rows]

    def latency_histogram(self, f: Filters) -> dict[float, int]:
        rows = self._aggregate(IMPRESSIONS, latency_histogram_pipeline(match(f, latency=True)))
        counts = {float(row["_id"]): row["n"] for row in rows}
        return {edge: counts.get(float(edge), 0) for edge in LATENCY_EDGES_MS}

    def export(
        self, since: datetime | None = None, batch_rows: int = 10_000
    ) -> Iterator[list[EventRow]]:
        spec = {"timestamp": {"$gte": _naive_utc(since)}} if since else {}
        for name, kind in ((IMPRESSIONS, "impression"), (CLICKS, "click")):
            cursor = (
                self._collection(name)
                .find(spec, {"received_at": 0})
                .sort([("timestamp", 1), ("_id", 1)])
                .batch_size(batch_rows)
            )
            batch: list[EventRow] = []
            try:
                for doc in cursor:
                    event_id = doc.pop("_id")
                    batch.append(
                        {
                            "type": kind,
                            "event_id": event_id,
                            **doc,
                            "timestamp": _aware(doc["timestamp"]),
                        }
                    )
                    if len(batch) >= batch_rows:
                        yield batch
                        batch = []
            except PyMongoError as exc:
                raise StoreError(
                    f"export from MongoDB at {self.display_uri} failed: {_reason(exc)}"
                ) from exc
            if batch:
                yield batch
