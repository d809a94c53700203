"""The per-search click rollup on MongoDB: the ``search_clicks`` collection.

One document per search_id that clicks cite (``_id``): how many clicks (n), the sum of their
ranks, the time and rank of the first (earliest; the lower rank on a tie) and the time of the
last, as store/duckdb/rollup.py keeps them. Without transactions (a standalone server has none)
a write recomputes the documents of every search its batch's clicks cite from the clicks
collection (on its search_id index), duplicates included: whatever an earlier failed write left
behind, a retry puts right. A deletion recomputes the searches whose clicks it removed. At open,
a rollup that does not account for every stored click is rebuilt.

A read joins each search to its one rollup document (on ``_id``) instead of to all its clicks;
the searches whose clicks straddle the window's start (a click before `since`, one at or after)
get their in-window facts from the clicks, written to a temporary collection that the read
looks up too (`Straddling`; none in the usual case, and then no second lookup); when there are more than MAX_STRADDLING of them, the read links the clicks
instead (the rollup is only a shortcut: both give the same answer).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pymongo
from pymongo import ReplaceOne

SEARCH_CLICKS = "search_clicks"
#: The most straddling searches a read looks up before it links the clicks instead (their ids
#: travel in one $in list).
MAX_STRADDLING = 20_000
#: search_ids recomputed per aggregate (an $in list) when a write or deletion touches many.
CHUNK = 5_000

Doc = dict[str, Any]

_FACTS: Doc = {
    "n": {"$sum": 1},
    "rank_sum": {"$sum": "$rank"},
    "first_ts": {"$first": "$timestamp"},
    "first_rank": {"$first": "$rank"},
    "last_ts": {"$max": "$timestamp"},
}


def facts_pipeline(spec: Doc) -> list[Doc]:
    """Per search_id, over the clicks matching `spec`, the rollup's fields (earliest first)."""
    return [
        {"$match": {**spec, "search_id": {"$ne": None}}},
        {"$sort": {"search_id": 1, "timestamp": 1, "rank": 1}},
        {"$group": {"_id": "$search_id", **_FACTS}},
    ]


def recompute(clicks: Any, rollup: Any, search_ids: Iterable[str | None]) -> None:
    """Replace the rollup documents of `search_ids` by their recomputation from the clicks
    (a search left with no click loses its document)."""
    ids = sorted({s for s in search_ids if s is not None})
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        docs = list(clicks.aggregate(facts_pipeline({"search_id": {"$in": chunk}})))
        found = {doc["_id"] for doc in docs}
        if docs:
            rollup.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs])
        gone = [s for s in chunk if s not in found]
        if gone:
            rollup.delete_many({"_id": {"$in": gone}})


def rebuild(clicks: Any, rollup: Any) -> None:
    rollup.delete_many({})
    batch: list[Doc] = []
    for doc in clicks.aggregate(facts_pipeline({}), allowDiskUse=True):
        batch.append(doc)
        if len(batch) >= CHUNK:
            rollup.insert_many(batch, ordered=False)
            batch = []
    if batch:
        rollup.insert_many(batch, ordered=False)


def ensure(clicks: Any, rollup: Any) -> None:
    """The rollup's index, and a rebuild when it does not account for every click that cites
    a search (a database from before the rollup, clicks inserted around the store)."""
    rollup.create_index([("last_ts", pymongo.ASCENDING)], name="last_ts")
    stored = clicks.count_documents({"search_id": {"$ne": None}})
    rows = list(rollup.aggregate([{"$group": {"_id": None, "n": {"$sum": "$n"}}}]))
    if stored != (rows[0]["n"] if rows else 0):
        rebuild(clicks, rollup)


@dataclass(frozen=True, slots=True)
class Straddling:
    """How a read links its searches to the rollup: `collection` holds the searches whose
    clicks straddle the window's start, with their facts over the clicks in the window (None:
    there are none)."""

    collection: str | None = None


def straddling(clicks: Any, rollup: Any, since: datetime, into: Any) -> Straddling | None:
    """The straddling searches at `since` (naive UTC) written to the collection `into`, or
    None when there are more than MAX_STRADDLING (the read then links the clicks)."""
    spec = {"last_ts": {"$gte": since}, "first_ts": {"$lt": since}}
    ids = [d["_id"] for d in rollup.find(spec, {"_id": 1}).limit(MAX_STRADDLING + 1)]
    if len(ids) > MAX_STRADDLING:
        return None
    if not ids:
        return Straddling()
    in_window: Doc = {"search_id": {"$in": ids}, "timestamp": {"$gte": since}}
    docs = list(clicks.aggregate(facts_pipeline(in_window)))
    if not docs:
        return Straddling()
    into.insert_many(docs)
    return Straddling(into.name)


def linked_stages(since: datetime, fields: Sequence[str], straddle: Straddling) -> list[Doc]:
    """Each search (one row) with `fields` and the facts of its clicks at or after `since`:
    n, rank_sum, first_rank and first_ts (null without a click in the window)."""
    in_window = {"$gte": ["$r.first_ts", since]}  # a missing document compares as null: false

    def fact(name: str, default: Any) -> Any:
        rolled = {"$cond": [in_window, f"$r.{name}", default]}
        if straddle.collection is None:
            return rolled
        return {"$ifNull": [f"$s.{name}", rolled]}  # a straddling search has every fact

    def lookup(collection: str, name: str) -> list[Doc]:
        return [
            {
                "$lookup": {
                    "from": collection,
                    "localField": "search_id",
                    "foreignField": "_id",
                    "as": name,
                }
            },
            {"$unwind": {"path": f"${name}", "preserveNullAndEmptyArrays": True}},
        ]

    return [
        *lookup(SEARCH_CLICKS, "r"),
        *(lookup(straddle.collection, "s") if straddle.collection is not None else []),
        {
            "$project": {
                **dict.fromkeys(fields, 1),
                "n": fact("n", 0),
                "rank_sum": fact("rank_sum", 0),
                "first_rank": fact("first_rank", None),
                "first_ts": fact("first_ts", None),
            }
        },
    ]
