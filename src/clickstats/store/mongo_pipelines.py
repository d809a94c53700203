"""MongoDB pipelines of the dashboard's aggregates (search totals, products, latency buckets).

Like the rest of the Mongo backend, each ends in ``$group`` (or ``$sort``/``$limit`` after
one): only figures come back. Days are the viewer's: ``$year``/``$month``/``$dayOfMonth``
take an IANA time zone, so a day's bucket follows that zone's daylight-saving rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from clickstats.events import DEFAULT_VARIANT
from clickstats.store.base import LATENCY_EDGES_MS, Grouping, GroupKey

Doc = dict[str, Any]


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


def count_if(condition: Doc) -> Doc:
    return {"$sum": {"$cond": [condition, 1, 0]}}


def linked_clicks(since: datetime, clicks: str, fields: Sequence[str]) -> list[Doc]:
    """Each search with `fields` and, in "clicks", its clicks in the window (``$lookup`` on the
    search_id index of the clicks collection)."""
    in_window = {"$gte": ["$$click.timestamp", since]}
    return [
        {
            "$lookup": {
                "from": clicks,
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


def resolved_variant(keys: Doc, sums: Doc, impressions: str, variant: str | None) -> list[Doc]:
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
                "from": impressions,
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


def per_search_stages(spec: Doc, since: datetime, clicks: str) -> list[Doc]:
    """Searches matching `spec`, each with the number and rank sum of its clicks in the window."""
    fields = ("user_id", "variant", "query", "timestamp", "results_count")
    return [
        {"$match": spec},
        *linked_clicks(since, clicks, fields),
        {"$unwind": {"path": "$clicks", "preserveNullAndEmptyArrays": True}},
        {
            "$group": {  # back to one row per search
                "_id": "$_id",
                **{field: {"$first": f"${field}"} for field in fields},
                "n": count_if({"$gt": ["$clicks.rank", None]}),
                "rank_sum": {"$sum": "$clicks.rank"},
            }
        },
    ]


def grouping_stages(grouping: Grouping) -> list[Doc]:
    """From one row per search: per (group, user), so that users count once per group; then
    per group, ranked and cut as the grouping asks."""
    keys = {f"k{n}": _key(key, grouping.tz) for n, key in enumerate(grouping.by)}
    has_results = {"$gt": ["$results_count", 0]}
    totals = ("searches", "clicked_searches", "clicks", "rank_sum", "zero_results", "abandoned")
    stages: list[Doc] = [
        {
            "$group": {
                "_id": {**keys, "user": "$user_id"},
                "searches": {"$sum": 1},
                "clicked_searches": count_if({"$gt": ["$n", 0]}),
                "clicks": {"$sum": "$n"},
                "rank_sum": {"$sum": "$rank_sum"},
                "zero_results": count_if({"$eq": ["$results_count", 0]}),
                "abandoned": count_if({"$and": [has_results, {"$eq": ["$n", 0]}]}),
            }
        },
        {
            "$group": {
                "_id": {k: f"$_id.{k}" for k in keys} if keys else None,
                "users": {"$sum": 1},
                **{t: {"$sum": f"${t}"} for t in totals},
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
    spec: Doc, since: datetime, clicks: str, groupings: Sequence[Grouping]
) -> list[Doc]:
    """One grouping's rows; several groupings share the per-search stages and come back as
    one document, an array of rows per grouping (``$facet``: g0, g1, ...)."""
    stages = per_search_stages(spec, since, clicks)
    if len(groupings) == 1:
        return [*stages, *grouping_stages(groupings[0])]
    facets = {f"g{n}": grouping_stages(g) for n, g in enumerate(groupings)}
    return [*stages, {"$facet": facets}]


def top_products_pipeline(
    spec: Doc, top: int, impressions: str, variant: str | None = None
) -> list[Doc]:
    """`variant`: only the clicks of that variant (resolved as resolved_variant does)."""
    pair: Doc = {"product": "$product_id", "user": "$user_id"}
    sums: Doc = {"clicks": {"$sum": 1}, "rank_sum": {"$sum": "$rank"}}
    per_pair: list[Doc] = [{"$group": {"_id": pair, **sums}}]
    if variant is not None:
        per_pair = [
            *resolved_variant(pair, sums, impressions, variant),
            {
                "$group": {
                    "_id": {"product": "$_id.product", "user": "$_id.user"},
                    "clicks": {"$sum": "$clicks"},
                    "rank_sum": {"$sum": "$rank_sum"},
                }
            },
        ]
    return [
        {"$match": spec},
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
