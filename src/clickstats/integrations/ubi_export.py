"""clickstats events as OpenSearch UBI records: `_bulk` NDJSON for the `ubi_queries` and
`ubi_events` indexes (`clickstats export --format ubi`).

Documents follow the UBI plugin's index mappings (opensearch-project/user-behavior-insights
`src/main/resources/queries-mapping.json` and `events-mapping.json` @ 3fee2d8b) and validate
against the UBI 1.3.0 schemas (tests/integrations/test_ubi_export.py):
- a search -> a `ubi_queries` document (query_id = search_id, hit ids = its results), and one
  `impression` event per result shown, ordinal 0-based (integrations/ubi.py says why);
- a click -> `click`; a conversion -> one `add_to_cart` / `purchase` / <subtype> event per
  product; an action -> an event named as the action. A stored UBI `impression` action that
  repeats an impression already written from its search's results is left out.
- every event carries `user_query` (the Search Relevance Workbench keys its judgments on it):
  its own, else its search's, else "".

Store.export gives the searches first, so a search's query and results are known when its
events come; they are kept in memory (a dict search_id -> (query, results)): about 100 bytes
per search plus its results, fine for millions of searches, not for billions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import IO, Any

import orjson

from clickstats.integrations.ubi import CLICK, IMPRESSION
from clickstats.store.base import EventRow
from clickstats.transfer import iso_millis

APPLICATION = "clickstats"
QUERIES_INDEX = "ubi_queries"
EVENTS_INDEX = "ubi_events"


class UbiBulkWriter:
    """Writes rows of `EventStore.export` (searches first) as `_bulk` action and document
    lines; counts what it wrote."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.searches: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.documents = {QUERIES_INDEX: 0, EVENTS_INDEX: 0}

    def write(self, rows: Sequence[EventRow]) -> None:
        lines: list[bytes] = []
        for row in rows:
            for index, doc_id, document in self._documents(row):
                lines.append(orjson.dumps({"index": {"_index": index, "_id": doc_id}}))
                lines.append(orjson.dumps(document))
                self.documents[index] += 1
        if lines:
            self.file.write(b"\n".join(lines) + b"\n")

    def _documents(self, row: EventRow) -> Iterator[tuple[str, str, dict[str, Any]]]:
        kind = row["type"]
        if kind == "impression":
            yield from self._search(row)
        elif kind == "click":
            yield (
                EVENTS_INDEX,
                row["event_id"],
                self._event(
                    row, CLICK, row["product_id"], row["rank"] - 1, row.get("search_query")
                ),
            )
        elif kind == "conversion":
            products = row["product_ids"]
            for k, product in enumerate(products):
                doc_id = row["event_id"] if len(products) == 1 else f"{row['event_id']}.{k}"
                document = self._event(row, row["subtype"], product, None, None)
                _add_amounts(document, row, k)
                yield EVENTS_INDEX, doc_id, document
        elif kind == "action":
            yield from self._action(row)

    def _search(self, row: EventRow) -> Iterator[tuple[str, str, dict[str, Any]]]:
        search_id, query = row["search_id"], row["query"]
        results = tuple(row.get("results") or ())
        self.searches[search_id] = (query, results)
        document: dict[str, Any] = {
            "application": APPLICATION,
            "query_id": search_id,
            "client_id": row["user_id"],
            "user_query": query,
            "query_attributes": {"variant": row["variant"]},
            "timestamp": iso_millis(row["timestamp"]),
        }
        if row.get("results") is not None:
            document["query_response_hit_ids"] = list(results)
        if row.get("session_id"):
            document["session_id"] = row["session_id"]
        yield QUERIES_INDEX, row["event_id"], document
        for ordinal, product in enumerate(results):
            yield (
                EVENTS_INDEX,
                f"{row['event_id']}.{ordinal}",
                self._event(row, IMPRESSION, product, ordinal, query),
            )

    def _action(self, row: EventRow) -> Iterator[tuple[str, str, dict[str, Any]]]:
        name, products = row["name"], row.get("product_ids") or [None]
        position = row.get("position")
        for k, product in enumerate(products):
            ordinal = position - 1 if position is not None else None
            if name == IMPRESSION and self._already_written(row, product, ordinal):
                continue
            doc_id = row["event_id"] if len(products) == 1 else f"{row['event_id']}.{k}"
            document = self._event(row, name, product, ordinal, row.get("search_query"))
            if row.get("message"):
                document["message"] = row["message"]
            yield EVENTS_INDEX, doc_id, document

    def _already_written(self, row: EventRow, product: str | None, ordinal: int | None) -> bool:
        """Whether this impression action repeats one written from its search's results."""
        search = self.searches.get(row.get("search_id") or "")
        if search is None or product is None:
            return False
        results = search[1]
        if ordinal is None:
            return product in results
        return ordinal < len(results) and results[ordinal] == product

    def _event(
        self,
        row: EventRow,
        action_name: str,
        product: str | None,
        ordinal: int | None,
        user_query: str | None,
    ) -> dict[str, Any]:
        search_id = row.get("search_id")
        query, results = self.searches.get(search_id or "", ("", ()))
        if ordinal is None and product is not None and product in results:
            ordinal = results.index(product)  # where its search showed it
        document: dict[str, Any] = {
            "application": APPLICATION,
            "action_name": action_name,
            "client_id": row["user_id"],
            "timestamp": iso_millis(row["timestamp"]),
            "user_query": user_query or query,
        }
        if search_id:
            document["query_id"] = search_id
        if row.get("session_id"):
            document["session_id"] = row["session_id"]
        if ordinal is not None:
            attributes: dict[str, Any] = {"position": {"ordinal": ordinal}}
            if product is not None:
                attributes["object"] = {"object_id": product}
            document["event_attributes"] = attributes
        elif product is not None:
            # UBI 1.3.0 requires a position in event_attributes; with none known the object
            # id goes in extra_info (ubi.js's place for extras), which no consumer reads.
            document["extra_info"] = {"object_id": product}
        return document


def _add_amounts(document: dict[str, Any], row: EventRow, k: int) -> None:
    """A conversion's price, quantity and currency, where integrations/ubi.py reads them."""
    detail: dict[str, Any] = {}
    if row.get("prices"):
        detail["price"] = row["prices"][k]
    if row.get("quantities"):
        detail["quantity"] = row["quantities"][k]
    if not detail or not row.get("currency"):
        return
    detail["currency"] = row["currency"]
    target = document.get("event_attributes", {}).get("object")
    if target is None:
        target = document.setdefault("extra_info", {})
    target["object_detail"] = detail
