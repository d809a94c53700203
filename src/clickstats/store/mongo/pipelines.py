"""Every aggregation pipeline of the MongoDB backend, and the compiler of the metric registry
(`clickstats.metrics`) into aggregation expressions.

Each pipeline ends in ``$group`` (or ``$sort``/``$limit`` after one, or ``$limit`` of at most
two documents): only figures come back, never raw events. Days are the viewer's:
``$year``/``$month``/``$dayOfMonth`` take an IANA time zone, so a day's bucket follows that
zone's daylight-saving rules. The exact p95 (DuckDB's quantile_cont) takes two small queries:
a count (with the other latency figures), then the one or two values around rank
0.95 * (n - 1), found by ``$sort``/``$skip``/``$limit`` from the top. Only stages MongoDB has
had since 3.4 are used, so that the same pipelines run on mongomock.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clickstats import metrics
from clickstats.events import DEFAULT_VARIANT
from clickstats.metrics import AllOf, Compare, Divide, Expr, Fact, Minus, Num, Of, When
from clickstats.store.base import (
    LATENCY_EDGES_MS,
    P95,
    Filters,
    Grouping,
    GroupKey,
    SumOptions,
)
from clickstats.store.fields import naive_utc
from clickstats.store.mongo.connection import CLICKS, IMPRESSIONS
from clickstats.store.mongo.rollup import Straddling, linked_stages

Doc = dict[str, Any]

# -- the metric registry, compiled -------------------------------------------------------------

#: Each fact of a search, over the rows of per_search_stages (one row per search).
FACTS: dict[Fact, Any] = {
    "clicks": "$n",
    "first_rank": "$first_rank",
    "rank_sum": "$rank_sum",
    "results_count": "$results_count",
    # date - date is milliseconds
    "ms_to_first_click": {"$subtract": ["$first_ts", "$timestamp"]},
    # the search's attributed conversions, looked up from the attribution (a search without
    # any has no "v")
    **{fact: {"$ifNull": [f"$v.{fact}", 0]} for fact in sorted(metrics.CONVERSION_FACTS)},
}
#: The facts that are null for a search without a click, and the field that is null then.
_NULLABLE: dict[Fact, str] = {"first_rank": "$first_rank", "ms_to_first_click": "$first_ts"}
_OPS = {">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte", "=": "$eq"}


def condition(expr: Compare | AllOf) -> Doc:
    """A boolean expression. A comparison that reads a fact that is null never holds (MongoDB
    orders null below every number, so ``null < 1`` would)."""
    if isinstance(expr, AllOf):
        return {"$and": [condition(c) for c in expr.conditions]}
    compared: Doc = {_OPS[expr.op]: [value(expr.left), value(expr.right)]}
    present = [{"$gt": [_NULLABLE[f], None]} for f in dict.fromkeys(metrics.facts(expr))
               if f in _NULLABLE]  # fmt: skip
    return {"$and": [*present, compared]} if present else compared


def value(expr: Expr) -> Any:
    """A numeric expression over one row per search (a condition as 1 or 0)."""
    match expr:
        case Of(fact):
            return FACTS[fact]
        case Num(number):
            return number
        case Compare() | AllOf():
            return {"$cond": [condition(expr), 1, 0]}
        case Divide(left, right):
            return {"$divide": [value(left), value(right)]}
        case Minus(left, right):
            return {"$subtract": [value(left), value(right)]}
        case When(cond, then):
            return {"$cond": [condition(cond), value(then), 0]}
    raise TypeError(f"not a metric expression: {expr!r}")  # pragma: no cover


def column_sums(names: list[str]) -> Doc:
    """``$group`` accumulators summing each of the columns `names` over per-search rows,
    compiled now (a metric added at run time is seen); over one user's rows, a per-user
    column is 1."""
    return {name: accumulate(name, value(metrics.COLUMNS[name].value)) for name in names}


def accumulate(name: str, expr: Any) -> Doc:
    return {"$max": 1} if metrics.COLUMNS[name].per_user else {"$sum": expr}


def reads_conversions(columns: Sequence[str]) -> bool:
    return bool(metrics.needed_facts(list(columns)) & metrics.CONVERSION_FACTS)


#: The fields of a conversion the attribution keeps.
_CONVERSION_FIELDS = (
    "user_id", "timestamp", "search_id", "subtype", "value", "currency", "quantities",
    "product_ids",
)  # fmt: skip
_PURCHASE = {"$eq": ["$subtype", "purchase"]}
_UNITS = {
    "$cond": [{"$gt": ["$quantities", None]}, {"$sum": "$quantities"}, {"$size": "$product_ids"}]
}


def attributed_stages(since: datetime, window_ms: int) -> list[Doc]:
    """The conversions at or after `since`, each with "to": the search it is attributed to (its
    own search_id, else that of the user's latest click, ties to the greater search id, on one
    of its products at most `window_ms` before it; null for none)."""
    unattributed = {"$eq": [{"$ifNull": ["$search_id", None]}, None]}
    candidate = {
        "$and": [
            {"$in": ["$$k.product_id", "$product_ids"]},
            {"$lte": ["$$k.timestamp", "$timestamp"]},
            {"$gte": ["$$k.timestamp", {"$subtract": ["$timestamp", window_ms]}]},
            {"$gt": ["$$k.search_id", None]},
        ]
    }
    kept = _CONVERSION_FIELDS
    return [
        {"$match": {"timestamp": {"$gte": naive_utc(since)}}},
        {
            "$lookup": {
                "from": CLICKS,
                "localField": "user_id",
                "foreignField": "user_id",
                "as": "k",
            }
        },
        {
            "$project": {
                **dict.fromkeys(kept, 1),
                "k": {
                    "$cond": [
                        unattributed,
                        {"$filter": {"input": "$k", "as": "k", "cond": candidate}},
                        [],
                    ]
                },
            }
        },
        {"$unwind": {"path": "$k", "preserveNullAndEmptyArrays": True}},
        {"$sort": {"_id": 1, "k.timestamp": -1, "k.search_id": -1}},
        {
            "$group": {
                "_id": "$_id",
                **{field: {"$first": f"${field}"} for field in kept},
                "inferred": {"$first": "$k.search_id"},
            }
        },
        {"$project": {**dict.fromkeys(kept, 1), "to": {"$ifNull": ["$search_id", "$inferred"]}}},
    ]


def attribution_pipeline(
    since: datetime, window_ms: int, currency: str | None, out: str
) -> list[Doc]:
    """The attributed conversions (attributed_stages) reduced to one document per search: ``_id``
    the search id and the conversion facts (revenue and orders in `currency`), written ($out) to
    the collection `out`, which the search pipelines then look up by search id."""
    in_currency = {"$and": [_PURCHASE, {"$eq": ["$currency", currency]}, {"$gt": ["$value", None]}]}
    return [
        *attributed_stages(since, window_ms),
        {"$match": {"to": {"$ne": None}}},
        {
            "$group": {
                "_id": "$to",
                "conversions": {"$sum": 1},
                "add_to_carts": count_if({"$eq": ["$subtype", "add_to_cart"]}),
                "purchases": count_if(_PURCHASE),
                "revenue": {"$sum": {"$cond": [in_currency, "$value", 0]}},
                "orders": count_if(in_currency),
                "units": {"$sum": {"$cond": [_PURCHASE, _UNITS, 0]}},
            }
        },
        {"$out": out},
    ]


def conversion_totals_pipeline(f: Filters, by: Sequence[str], tz: str, window_ms: int) -> list[Doc]:
    """conversion_totals: the attributed conversions, each with the variant of its search
    (looked up by search id), grouped by `by` and the currency (keys k0, k1, ...)."""
    date = {"date": "$timestamp", "timezone": tz}
    keys: Doc = {
        "variant": {"$ifNull": ["$s.variant", ""]},
        "subtype": "$subtype",
        "day": {"y": {"$year": date}, "m": {"$month": date}, "d": {"$dayOfMonth": date}},
    }
    group_id = {f"k{n}": keys[k] for n, k in enumerate(by)}
    group_id[f"k{len(by)}"] = {"$ifNull": ["$currency", ""]}
    where: Doc = {}
    if f.user_id is not None:
        where["user_id"] = f.user_id
    if f.variant is not None:
        where["s.variant"] = f.variant
    return [
        *attributed_stages(f.since, window_ms),
        {
            "$lookup": {
                "from": IMPRESSIONS,
                "localField": "to",
                "foreignField": "search_id",
                "as": "s",
            }
        },
        {"$unwind": {"path": "$s", "preserveNullAndEmptyArrays": True}},
        # a search id stored twice: its least variant, as DuckDB's min(variant)
        {"$sort": {"_id": 1, "s.variant": 1}},
        {"$group": {"_id": "$_id", **{k: {"$first": f"${k}"} for k in (*_CONVERSION_FIELDS, "s")}}},
        *([{"$match": where}] if where else []),
        {
            "$group": {
                "_id": group_id,
                "conversions": {"$sum": 1},
                "purchases": count_if(_PURCHASE),
                "add_to_carts": count_if({"$eq": ["$subtype", "add_to_cart"]}),
                "revenue": {"$sum": {"$cond": [_PURCHASE, {"$ifNull": ["$value", 0]}, 0]}},
                "orders": count_if({"$and": [_PURCHASE, {"$gt": ["$value", None]}]}),
                "units": {"$sum": {"$cond": [_PURCHASE, _UNITS, 0]}},
                "attributed": count_if({"$gt": ["$s.search_id", None]}),
            }
        },
    ]


# -- filters -----------------------------------------------------------------------------------


def match(f: Filters, *, latency: bool = False) -> Doc:
    """The $match of a Filters; `latency` keeps only searches that have a response time."""
    spec: Doc = {"timestamp": {"$gte": naive_utc(f.since)}}
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


def action_totals_pipeline(f: Filters) -> list[Doc]:
    """One document: per name, the events and distinct users ("users"), and the distinct
    products named ("products"), each grouped twice so that no set is held in memory. With a
    variant: only actions whose search is of that variant ($lookup by search id)."""
    pipeline: list[Doc] = [{"$match": match(Filters(since=f.since, user_id=f.user_id))}]
    if f.variant is not None:
        pipeline += [
            {"$match": {"search_id": {"$ne": None}}},
            {
                "$lookup": {
                    "from": IMPRESSIONS,
                    "localField": "search_id",
                    "foreignField": "search_id",
                    "as": "s",
                }
            },
            {"$match": {"s.variant": f.variant}},
        ]
    per_user = [
        {"$group": {"_id": {"n": "$name", "u": "$user_id"}, "events": {"$sum": 1}}},
        {"$group": {"_id": "$_id.n", "events": {"$sum": "$events"}, "users": {"$sum": 1}}},
    ]
    per_product = [
        {"$unwind": "$product_ids"},
        {"$group": {"_id": {"n": "$name", "p": "$product_ids"}}},
        {"$group": {"_id": "$_id.n", "products": {"$sum": 1}}},
    ]
    pipeline.append({"$facet": {"users": per_user, "products": per_product}})
    return pipeline


def count_if(cond: Doc) -> Doc:
    return {"$sum": {"$cond": [cond, 1, 0]}}


# -- clicks and their variants -----------------------------------------------------------------


def resolved_variant(keys: Doc, sums: Doc, variant: str | None) -> list[Doc]:
    """Clicks grouped by `keys` (with the accumulators `sums`) and by the variant they were
    sent with, those sent without one apart per search they cite; then each group's "variant":
    as sent, else the cited search's, else the default; with `variant`, its groups only.

    The cited search is looked up once per group (on the search_id index), not per click, and
    a group of clicks sent with a variant looks up nothing (a null search_id matches no
    search). Group keys stay in _id, beside "v" and "s": callers group again by them."""
    sent_without = {"$eq": [{"$ifNull": ["$variant", None]}, None]}
    stages: list[Doc] = [
        {
            "$group": {
                "_id": {
                    **keys,
                    "v": "$variant",
                    "s": {"$cond": [sent_without, "$search_id", None]},
                },
                **sums,
            }
        },
        {
            "$lookup": {
                "from": IMPRESSIONS,
                "localField": "_id.s",
                "foreignField": "search_id",
                "as": "cited",
            }
        },
        {
            "$project": {
                **dict.fromkeys(sums, 1),
                "variant": {
                    "$ifNull": [
                        "$_id.v",
                        {"$ifNull": [{"$min": "$cited.variant"}, DEFAULT_VARIANT]},
                    ]
                },
            }
        },
    ]
    if variant is not None:
        stages.append({"$match": {"variant": variant}})
    return stages


def clicks_by(f: Filters, keys: Doc, sums: Doc, regroup: Doc) -> list[Doc]:
    """Clicks grouped by `keys` with `sums`, their variants resolved (resolved_variant), then
    grouped as `regroup` says ("$variant" is the resolved variant)."""
    stages = resolved_variant(keys, sums, f.variant)
    return [{"$match": click_match(f)}, *stages, {"$group": regroup}]


def count_pipeline(spec: Doc, by_variant: bool) -> list[Doc]:
    """Events matching `spec`, counted (per variant as sent with `by_variant`)."""
    return [
        {"$match": spec},
        {"$group": {"_id": "$variant" if by_variant else None, "n": {"$sum": 1}}},
    ]


def click_count_pipeline(f: Filters, by_variant: bool) -> list[Doc]:
    """Clicks counted, per resolved variant with `by_variant`; a filter on the variant
    resolves the clicks' variants too, else they are counted as they are."""
    if not by_variant and f.variant is None:
        return count_pipeline(match(f), by_variant=False)
    regroup = {"_id": "$variant" if by_variant else None, "n": {"$sum": "$n"}}
    return clicks_by(f, {}, {"n": {"$sum": 1}}, regroup)


def rank_pipeline(f: Filters, by_variant: bool) -> list[Doc]:
    """Clicks per rank (_id.rank), per resolved variant (_id.variant) with `by_variant`."""
    if not by_variant and f.variant is None:
        return [{"$match": match(f)}, {"$group": {"_id": {"rank": "$rank"}, "n": {"$sum": 1}}}]
    regroup_id: Doc = {"rank": "$_id.rank"}
    if by_variant:
        regroup_id = {"variant": "$variant", **regroup_id}
    return clicks_by(
        f, {"rank": "$rank"}, {"n": {"$sum": 1}}, {"_id": regroup_id, "n": {"$sum": "$n"}}
    )


def span_pipeline(f: Filters) -> list[Doc]:
    """The first and last of the clicks of `f.variant` (resolved)."""
    span = {"first": {"$min": "$timestamp"}, "last": {"$max": "$timestamp"}}
    regroup = {"_id": None, "first": {"$min": "$first"}, "last": {"$max": "$last"}}
    return clicks_by(f, {}, span, regroup)


def edge_pipeline(spec: Doc, direction: int) -> list[Doc]:
    """The earliest (`direction` 1) or latest (-1) event time: one index walk."""
    return [
        {"$match": spec},
        {"$sort": {"timestamp": direction}},
        {"$limit": 1},
        {"$project": {"_id": 0, "timestamp": 1}},
    ]


def top_products_pipeline(f: Filters, top: int) -> list[Doc]:
    """Over the clicks (of `f.variant`, resolved as resolved_variant does, if given)."""
    pair: Doc = {"product": "$product_id", "user": "$user_id"}
    sums: Doc = {"clicks": {"$sum": 1}, "rank_sum": {"$sum": "$rank"}}
    per_pair: list[Doc] = [{"$group": {"_id": pair, **sums}}]
    if f.variant is not None:
        per_pair = [
            *resolved_variant(pair, sums, f.variant),
            {
                "$group": {
                    "_id": {"product": "$_id.product", "user": "$_id.user"},
                    "clicks": {"$sum": "$clicks"},
                    "rank_sum": {"$sum": "$rank_sum"},
                }
            },
        ]
    return [
        {"$match": click_match(f)},
        *per_pair,
        {
            "$group": {
                "_id": "$_id.product",
                "clicks": {"$sum": "$clicks"},
                "users": {"$sum": 1},
                "rank_sum": {"$sum": "$rank_sum"},
            }
        },
        {"$sort": {"clicks": -1, "_id": 1}},
        {"$limit": top},
    ]


# -- response times ----------------------------------------------------------------------------

LATENCY_GROUP: Doc = {
    "count": {"$sum": 1},
    "mean": {"$avg": "$response_time_ms"},
    "minimum": {"$min": "$response_time_ms"},
    "maximum": {"$max": "$response_time_ms"},
}


def latency_pipeline(spec: Doc, by_variant: bool) -> list[Doc]:
    """Count, mean, minimum and maximum of the response times of the searches of `spec`."""
    return [
        {"$match": spec},
        {"$group": {"_id": "$variant" if by_variant else None, **LATENCY_GROUP}},
    ]


def p95_rank(count: int) -> tuple[float, int, int]:
    """quantile_cont's position: h = 0.95 * (n - 1), between ranks floor(h) and ceil(h)."""
    h = (count - 1) * P95
    return h, math.floor(h), math.ceil(h)


#: The edges of the p95's histogram pass, in ms: 0, then 40 buckets per decade from 0.01 ms to
#: past MAX_RESPONSE_TIME_MS, then +inf (no value falls outside).
P95_EDGES: list[float] = [0.0, *(10 ** (k / 40) for k in range(-80, 264)), math.inf]


def p95_histogram_pipeline(spec: Doc) -> list[Doc]:
    """The response times of `spec` counted per bucket of P95_EDGES (empty buckets left out)."""
    return [
        {"$match": spec},
        {
            "$bucket": {
                "groupBy": "$response_time_ms",
                "boundaries": P95_EDGES,
                "output": {"n": {"$sum": 1}},
            }
        },
    ]


@dataclass(frozen=True, slots=True)
class BucketQuery:
    """Values [skip, skip + limit) (0-based, ascending) of those in [low, high)."""

    low: float
    high: float
    skip: int
    limit: int


def p95_queries(histogram: Sequence[tuple[float, int]]) -> tuple[int, list[BucketQuery]]:
    """From the histogram pass ((lower edge, count) per non-empty bucket), the number of values
    and the queries that fetch the values at ranks floor(h) and ceil(h): one per bucket they
    fall in (one bucket, nearly always), so that only that bucket's values are sorted."""
    count = sum(n for _, n in histogram)
    if count == 0:
        return 0, []
    _, lo, hi = p95_rank(count)
    following = dict(itertools.pairwise(P95_EDGES))
    edges = {edge: following[edge] for edge, _ in histogram}
    queries: dict[float, BucketQuery] = {}
    before = 0
    for edge, n in sorted(histogram):
        for rank in (lo, hi):
            if before <= rank < before + n:
                q = queries.get(edge)
                skip = rank - before
                if q is None:
                    queries[edge] = BucketQuery(edge, edges[edge], skip, 1)
                else:  # both ranks in this bucket: one query for the two
                    queries[edge] = BucketQuery(edge, q.high, q.skip, skip - q.skip + 1)
        before += n
    return count, [queries[edge] for edge in sorted(queries)]


def bucket_values_pipeline(spec: Doc, q: BucketQuery) -> list[Doc]:
    """The values a BucketQuery asks for, ascending: a sort of one bucket's values only.
    (`spec`'s own condition on the response time, not null, is implied by the range.)"""
    return [
        {"$match": {**spec, "response_time_ms": {"$gte": q.low, "$lt": q.high}}},
        {"$project": {"_id": 0, "v": "$response_time_ms"}},
        {"$sort": {"v": 1}},
        *([{"$skip": q.skip}] if q.skip else []),
        {"$limit": q.limit},
    ]


def interpolate(count: int, values: Sequence[float]) -> float | None:
    """Linear interpolation between the two closest ranks (`values`: the value at floor(h),
    then at ceil(h) when it differs in rank), as DuckDB's quantile_cont does it."""
    if not values:  # the events went away between the passes (a reset)
        return None
    h, lo, _ = p95_rank(count)
    lower, upper = values[0], values[-1]
    return lower + (upper - lower) * (h - lo)


def latency_histogram_pipeline(spec: Doc) -> list[Doc]:
    """`spec` keeps searches with a response time; the last bucket is open-ended."""
    return [
        {"$match": spec},
        {
            "$bucket": {
                "groupBy": "$response_time_ms",
                "boundaries": [float(edge) for edge in LATENCY_EDGES_MS] + [float("inf")],
                "output": {"n": {"$sum": 1}},
            }
        },
    ]


# -- searches with their clicks ----------------------------------------------------------------


def linked_clicks(since: datetime, fields: Sequence[str]) -> list[Doc]:
    """Each search with `fields` and, in "clicks", its clicks in the window (``$lookup`` on the
    search_id index of the clicks collection)."""
    in_window = {"$gte": ["$$click.timestamp", since]}
    return [
        {
            "$lookup": {
                "from": CLICKS,
                "localField": "search_id",
                "foreignField": "search_id",
                "as": "clicks",
            }
        },
        {
            "$project": {
                **dict.fromkeys(fields, 1),
                "clicks": {"$filter": {"input": "$clicks", "as": "click", "cond": in_window}},
            }
        },
    ]


def per_search_stages(
    spec: Doc,
    since: datetime,
    fields: Sequence[str],
    columns: list[str],
    attributed: str | None = None,
    straddle: Straddling | None = None,
) -> list[Doc]:
    """Searches matching `spec`, one row each with `fields` and the facts of its clicks in
    the window that `columns` read: n (how many) and rank_sum always; first_rank and first_ts
    (rank and time of the earliest click, the lower rank on a tie; null without a click) only
    when read, since they cost a sort of every linked click. When the columns read conversion
    facts, each search's document of the collection `attributed` (attribution_pipeline) is
    looked up as "v". With `straddle` (the straddling searches at `since`: rollup.py) the facts
    come from the per-search rollup instead, one document per search."""
    if reads_conversions(columns):
        if attributed is None:
            raise ValueError("the columns read conversions: give the attribution collection")
        fields = tuple(dict.fromkeys([*fields, "search_id"]))
        conversion_stages: list[Doc] = [
            {
                "$lookup": {
                    "from": attributed,
                    "localField": "search_id",
                    "foreignField": "_id",
                    "as": "v",
                }
            },
            {"$unwind": {"path": "$v", "preserveNullAndEmptyArrays": True}},
        ]
    else:
        conversion_stages = []
    if straddle is not None:
        return [{"$match": spec}, *linked_stages(since, fields, straddle), *conversion_stages]
    facts = metrics.needed_facts(columns)
    first: Doc = {}
    if "first_rank" in facts:
        first["first_rank"] = {"$first": "$clicks.rank"}
    if "ms_to_first_click" in facts:
        first["first_ts"] = {"$first": "$clicks.timestamp"}
    # One row per (search, click), a search without clicks kept once; earliest click first.
    ordered = [{"$sort": {"_id": 1, "clicks.timestamp": 1, "clicks.rank": 1}}] if first else []
    return [
        {"$match": spec},
        *linked_clicks(since, fields),
        {"$unwind": {"path": "$clicks", "preserveNullAndEmptyArrays": True}},
        *ordered,
        {
            "$group": {  # back to one row per search
                "_id": "$_id",
                **{field: {"$first": f"${field}"} for field in fields},
                "n": count_if({"$gt": ["$clicks.rank", None]}),
                "rank_sum": {"$sum": "$clicks.rank"},
                **first,
            }
        },
        *conversion_stages,
    ]


def _key(key: GroupKey, tz: str) -> Any:
    if key == "day":
        date = {"date": "$timestamp", "timezone": tz}
        return {"y": {"$year": date}, "m": {"$month": date}, "d": {"$dayOfMonth": date}}
    return f"${key}"


def key_text(key: GroupKey, value: Any) -> str:
    """A group key as search_totals returns it: a day as YYYY-MM-DD."""
    if key == "day":
        return f"{value['y']:04d}-{value['m']:02d}-{value['d']:02d}"
    return str(value)


def grouping_stages(grouping: Grouping, sums: Doc) -> list[Doc]:
    """From one row per search: per (group, user) the column `sums`, so that users count once
    per group; then per group, ranked and cut as the grouping asks."""
    keys = {f"k{n}": _key(key, grouping.tz) for n, key in enumerate(grouping.by)}
    stages: list[Doc] = [
        {"$group": {"_id": {**keys, "user": "$user_id"}, **sums}},
        {
            "$group": {
                "_id": {k: f"$_id.{k}" for k in keys} if keys else None,
                "users": {"$sum": 1},
                **{name: {"$sum": f"${name}"} for name in sums},
            }
        },
    ]
    sort: Doc = {f"_id.{k}": 1 for k in keys}
    if grouping.order is not None:
        stages.append({"$match": {grouping.order: {"$gt": 0}}})
        sort = {grouping.order: -1, **sort}
    if sort:
        stages.append({"$sort": sort})
    if grouping.top is not None:
        stages.append({"$limit": grouping.top})
    return stages


def search_totals_pipeline(
    f: Filters,
    groupings: Sequence[Grouping],
    attributed: str | None = None,
    straddle: Straddling | None = None,
) -> list[Doc]:
    """One grouping's rows; several groupings share the per-search stages and come back as
    one document, an array of rows per grouping (``$facet``: g0, g1, ...). The columns are
    `metrics.columns(dashboard=True)`, compiled now. `straddle`: as per_search_stages."""
    fields = ("user_id", "variant", "query", "timestamp", "results_count")
    columns = metrics.columns(dashboard=True)
    stages = per_search_stages(match(f), naive_utc(f.since), fields, columns, attributed, straddle)
    sums = {
        name: {"$sum": value(metrics.COLUMNS[name].value)}
        for name in columns
        if not metrics.COLUMNS[name].per_user
    }
    if len(groupings) == 1:
        return [*stages, *grouping_stages(groupings[0], sums)]
    facets = {f"g{n}": grouping_stages(g, sums) for n, g in enumerate(groupings)}
    return [*stages, {"$facet": facets}]


def per_user_pipeline(
    since: datetime,
    variants: Sequence[str],
    max_searches: int | None,
    options: SumOptions,
    pre_since: datetime,
    attributed: str,
    out: str,
    straddle: Straddling | None = None,
) -> list[Doc]:
    """Searches in the window (and, for CUPED, the `options.pre_days` before it), each with its
    clicks and attributed conversions; per (variant, user) of `variants` the columns of
    `metrics.columns()` summed over the user's searches in the window (users with more than
    `max_searches` left out) and, per CUPED column, ``pre_<column>``: the sum over the user's
    searches (of any variant) in the `pre_days` before their first in the window, and
    ``has_pre`` (whether there was one); written ($out) to the collection `out`. `straddle`:
    as per_search_stages, at `pre_since` when there are CUPED columns, else at `since`."""
    columns = metrics.columns()
    since = naive_utc(since)
    pre = [c for c in options.pre_columns if c in columns]
    in_analysis: Doc = {
        "$and": [{"$gte": ["$timestamp", since]}, {"$in": ["$variant", list(variants)]}]
    }
    fields = ("variant", "user_id", "timestamp", "results_count")
    per_user: Doc = {"$group": {"_id": {"variant": "$variant", "user": "$user_id"},
                                "first_ts": {"$min": "$timestamp"}, **column_sums(columns)}}  # fmt: skip
    outliers = [] if max_searches is None else [{"$match": {"searches": {"$lte": max_searches}}}]
    if not pre:
        spec = {"timestamp": {"$gte": since}, "variant": {"$in": list(variants)}}
        return [
            *per_search_stages(spec, since, fields, columns, attributed, straddle),
            per_user,
            *outliers,
            {"$out": out},
        ]
    # Per user, in one $group: each variant's sums of the columns over the user's searches in
    # the analysis (the variants are known: a conditional sum each) and the time and CUPED
    # values of every search of the user; then one row per (variant, user) in the analysis,
    # whose pre-exposure searches are filtered out of that list and summed. No stage unwinds a
    # user's searches, so a heavy user (a crawler) costs O(searches), not O(searches^2).
    pre_ms = options.pre_days * 86_400_000
    accumulators: Doc = {
        "items": {
            "$push": {
                "ts": "$timestamp",
                **{f"p{n}": value(metrics.COLUMNS[c].value) for n, c in enumerate(pre)},
            }
        }
    }
    rows: list[int] = []
    for k, variant in enumerate(variants):
        mine: Doc = {"$and": [in_analysis, {"$eq": ["$variant", variant]}]}
        accumulators[f"first{k}"] = {"$min": {"$cond": [mine, "$timestamp", None]}}
        for n, c in enumerate(columns):
            column = metrics.COLUMNS[c]
            per_search = 1 if column.per_user else value(column.value)
            accumulators[f"v{k}c{n}"] = (
                {"$max": {"$cond": [mine, 1, 0]}}
                if column.per_user
                else {"$sum": {"$cond": [mine, per_search, 0]}}
            )
        rows.append(k)
    earlier = {
        "$filter": {
            "input": "$items",
            "as": "it",
            "cond": {
                "$and": [
                    {"$gte": ["$$it.ts", {"$subtract": ["$first_ts", pre_ms]}]},
                    {"$lt": ["$$it.ts", "$first_ts"]},
                ]
            },
        }
    }
    return [
        *per_search_stages(
            {"timestamp": {"$gte": pre_since}}, pre_since, fields, columns, attributed, straddle
        ),
        {"$group": {"_id": "$user_id", **accumulators}},
        {"$addFields": {"k": {"$literal": rows}}},
        {"$unwind": "$k"},  # one row per variant (a handful), each with the user's searches
        {
            "$project": {
                "items": 1,
                "variant": _pick([{"$literal": v} for v in variants]),
                "first_ts": _pick([f"$first{k}" for k in rows]),
                **{c: _pick([f"$v{k}c{n}" for k in rows]) for n, c in enumerate(columns)},
            }
        },
        {"$match": {"first_ts": {"$ne": None}}},  # the variants the user is in
        {"$addFields": {"items": earlier}},  # the user's searches in the pre-exposure window
        {
            "$project": {
                "_id": {"variant": "$variant", "user": "$_id"},
                "first_ts": 1,
                **dict.fromkeys(columns, 1),
                "has_pre": {"$gt": [{"$size": "$items"}, 0]},
                **{f"pre_{c}": {"$sum": f"$items.p{n}"} for n, c in enumerate(pre)},
            }
        },
        *outliers,
        {"$out": out},
    ]


def _pick(choices: list[Any]) -> Any:
    """The choice whose index is the row's "k" (nested $cond: the variants are few)."""
    out = choices[-1]
    for k in range(len(choices) - 2, -1, -1):
        out = {"$cond": [{"$eq": ["$k", k]}, choices[k], out]}
    return out


def variant_sums_pipeline(options: SumOptions, caps: dict[str, float]) -> list[Doc]:
    """Over the per-user documents of per_user_pipeline: per variant "users" and the sums
    (sum_<column>), squares (sq_<column>) and products of `metrics.pairs()` (p<n>) of the
    columns, each capped at its cap in `caps` first, and per CUPED column the users with
    history (pre_users_<c>) and the sums of the capped pre-exposure value, its square and its
    product with the capped value in the window."""
    columns = metrics.columns()

    def capped(field: str, column: str) -> Any:
        return {"$min": [f"${field}", caps[column]]} if column in caps else f"${field}"

    group: Doc = {"_id": "$_id.variant", "users": {"$sum": 1}}
    for c in columns:
        group[f"sum_{c}"] = {"$sum": capped(c, c)}
        group[f"sq_{c}"] = {"$sum": {"$multiply": [capped(c, c), capped(c, c)]}}
    for n, (a, b) in enumerate(metrics.pairs()):
        group[f"p{n}"] = {"$sum": {"$multiply": [capped(a, a), capped(b, b)]}}
    for c in options.pre_columns:
        if c not in columns:
            continue
        before = capped(f"pre_{c}", c)
        group[f"pre_users_{c}"] = count_if({"$eq": ["$has_pre", True]})
        group[f"pre_sum_{c}"] = {"$sum": before}
        group[f"pre_sq_{c}"] = {"$sum": {"$multiply": [before, before]}}
        group[f"pre_p_{c}"] = {"$sum": {"$multiply": [capped(c, c), before]}}
    return [{"$group": group}]


def searches_per_user_pipeline(since: datetime, variants: Sequence[str]) -> list[Doc]:
    """Per (variant, number of searches in the window): how many users made that many."""
    return [
        {"$match": {"timestamp": {"$gte": naive_utc(since)}, "variant": {"$in": list(variants)}}},
        {"$group": {"_id": {"variant": "$variant", "user": "$user_id"}, "n": {"$sum": 1}}},
        {"$group": {"_id": {"variant": "$_id.variant", "searches": "$n"}, "users": {"$sum": 1}}},
    ]


# -- interleaving ------------------------------------------------------------------------------


def preference_pipeline(
    since: datetime,
    label: str,
    top_queries: int | None,
    outcome: str = "clicks",
    window_ms: int = 0,
) -> list[Doc]:
    """Interleaved searches credited to the teams of their distinct clicked positions (outcome
    "clicks", over the impressions) or of the distinct products of their attributed purchases
    (outcome "purchases", over the conversions; a product's team is that of its first position
    in the search's results); per unit (a user, or a user within a query with `top_queries`)
    the searches A won, B won and ties; then summed (per query, the `top_queries` with the most
    decided or tied searches first, with `top_queries`)."""
    since = naive_utc(since)
    unit = ["user_id", "query"] if top_queries is not None else ["user_id"]
    totals: Doc = {
        "_id": "$_id.query" if top_queries is not None else None,
        "units": {"$sum": 1},
        "wins_a": {"$sum": "$wa"},
        "wins_b": {"$sum": "$wb"},
        "ties": {"$sum": "$t"},
        "wins_a2": {"$sum": {"$multiply": ["$wa", "$wa"]}},
        "wins_b2": {"$sum": {"$multiply": ["$wb", "$wb"]}},
        "wins_ab": {"$sum": {"$multiply": ["$wa", "$wb"]}},
    }
    credited = (
        _purchased_teams(since, label, window_ms)
        if outcome == "purchases"
        else _clicked_teams(since, label)
    )
    pipeline: list[Doc] = [
        *credited,
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
    if top_queries is not None:
        pipeline += [
            {"$addFields": {"searches": {"$add": ["$wins_a", "$wins_b", "$ties"]}}},
            {"$sort": {"searches": -1, "_id": 1}},
            {"$limit": top_queries},
        ]
    return pipeline


def _clicked_teams(since: datetime, label: str) -> list[Doc]:
    """Over the impressions: one row per (search, distinct clicked position) with its team."""
    return [
        {"$match": {"timestamp": {"$gte": since}, "variant": label, "teams": {"$ne": None}}},
        *linked_clicks(since, ("user_id", "query", "teams")),
        {"$unwind": "$clicks"},  # searches without a click in the window drop out
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
    ]


def _purchased_teams(since: datetime, label: str, window_ms: int) -> list[Doc]:
    """Over the conversions: one row per (search, distinct purchased product shown in it) with
    the team of the product's first position."""
    return [
        *attributed_stages(since, window_ms),
        {"$match": {"subtype": "purchase", "to": {"$ne": None}}},
        {"$unwind": "$product_ids"},
        {"$group": {"_id": {"to": "$to", "product": "$product_ids"}}},
        {
            "$lookup": {
                "from": IMPRESSIONS,
                "localField": "_id.to",
                "foreignField": "search_id",
                "as": "s",
            }
        },
        {"$unwind": "$s"},
        {"$match": {"s.timestamp": {"$gte": since}, "s.variant": label, "s.teams": {"$ne": None}}},
        {"$unwind": {"path": "$s.results", "includeArrayIndex": "position"}},
        {"$match": {"$expr": {"$eq": ["$s.results", "$_id.product"]}}},
        {"$sort": {"_id.to": 1, "_id.product": 1, "position": 1}},
        {
            "$group": {
                "_id": {"search": "$s._id", "product": "$_id.product"},
                "user_id": {"$first": "$s.user_id"},
                "query": {"$first": "$s.query"},
                "team": {"$first": {"$arrayElemAt": ["$s.teams", "$position"]}},
            }
        },
    ]


# -- implicit relevance judgments ---------------------------------------------------------------


def judgment_counts_pipeline(f: Filters, min_impressions: int, max_rank: int) -> list[Doc]:
    """One document: in "pairs", per (query, product) shown in at least `min_impressions`
    searches, its counts per rank ("ranks": r, i, c); in "ranks", per rank ("_id") the
    impressions and clicks over every pair. A search counts once (duplicate impressions of one
    search_id are one search), a product once per search at its first position (1-based), and
    its clicks in the window (by search_id) at most once per search."""
    in_window = {"$gte": ["$$click.timestamp", naive_utc(f.since)]}
    window_clicks = {"$filter": {"input": "$clicks", "as": "click", "cond": in_window}}
    per_pair = [
        {
            "$group": {
                "_id": {"q": "$_id.q", "p": "$_id.p"},
                "shown": {"$sum": "$impressions"},
                "ranks": {"$push": {"r": "$_id.r", "i": "$impressions", "c": "$clicks"}},
            }
        },
        {"$match": {"shown": {"$gte": min_impressions}}},
    ]
    per_rank = [
        {
            "$group": {
                "_id": "$_id.r",
                "impressions": {"$sum": "$impressions"},
                "clicks": {"$sum": "$clicks"},
            }
        }
    ]
    return [
        {"$match": {**match(f), "results": {"$ne": None}}},
        {
            "$lookup": {
                "from": CLICKS,
                "localField": "search_id",
                "foreignField": "search_id",
                "as": "clicks",
            }
        },
        {
            "$project": {
                "search_id": 1,
                "query": 1,
                "results": 1,
                "clicked": {
                    "$map": {"input": window_clicks, "as": "click", "in": "$$click.product_id"}
                },
            }
        },
        {"$unwind": {"path": "$results", "includeArrayIndex": "position"}},
        {"$match": {"position": {"$lt": max_rank}}},
        {
            "$group": {  # one row per (search, product): its first position
                "_id": {"s": "$search_id", "p": "$results"},
                "query": {"$first": "$query"},
                "position": {"$min": "$position"},
                "clicked": {"$max": {"$cond": [{"$in": ["$results", "$clicked"]}, 1, 0]}},
            }
        },
        {
            "$group": {
                "_id": {"q": "$query", "p": "$_id.p", "r": {"$add": ["$position", 1]}},
                "impressions": {"$sum": 1},
                "clicks": {"$sum": "$clicked"},
            }
        },
        {"$facet": {"pairs": per_pair, "ranks": per_rank}},
    ]
