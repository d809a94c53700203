"""OpenSearch User Behavior Insights (UBI 1.3.0, https://o19s.github.io/ubi/): the query and
event records `ubi.js` POSTs, read leniently, and their mapping onto clickstats' events.

Lenient where real clients are: extra keys are kept out of the way (allowed, not stored),
`null` is read as absent and "" as no id, `object_id` may be a number, timestamps may be
ISO 8601 with `Z`, `+hh:mm` or `+hhmm`, or epoch milliseconds, and an event may name no object
(the spec's own sample does not). Ids and text keep clickstats' limits (ids of 128
characters, text of 1,024), which are wider than UBI's.

Positions: UBI's `event_attributes.position.ordinal` is ZERO-based, as the consumer of these
records reads it: the Search Relevance Workbench computes its rank CTRs over
`for (int rank = 0; rank < maxRank; rank++)` and its sample data gives the top hit
`"ordinal": 0` (opensearch-project/search-relevance `CoecClickModel.java` @ d8be5d1b,
l.128-141; `src/test/data-esci/ubi_queries_events.ndjson`). clickstats ranks are 1-based, so
rank = ordinal + 1 on the way in and ordinal = rank - 1 on the way out (`ubi_export.py`).

Mapping (docs: /work/plan/doc-ubi.md, assembled into docs/INTEGRATIONS.md):
- a query record -> SearchImpression: search_id = query_id (none: one derived from the
  record), query = user_query, results = query_response_hit_ids, user = user_id or client_id,
  variant = query_attributes.variant when it is a string (else the default variant);
  `application` is not stored.
- click -> ClickEvent; add_to_cart / purchase -> ConversionEvent; impression and any other
  action name -> ActionEvent under that name. A click, add_to_cart or purchase that names no
  object (or a click without an ordinal) cannot be a click or a conversion, which need a
  product (and a rank): it is stored as an ActionEvent of that name instead, never dropped.
- Records carry no event id: each event's id is a hash of its record (a query's, of its
  query_id), so a retried POST is stored once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError

from clickstats.events import (
    ADD_TO_CART,
    MAX_ID_LENGTH,
    MAX_RANK,
    MAX_RESULTS,
    MAX_TEXT_LENGTH,
    PURCHASE,
    ActionEvent,
    AnyEvent,
    ClickEvent,
    ConversionEvent,
    EventTime,
    Id,
    Rejection,
    SearchImpression,
    Text,
    event_time_now,
    integral,
    too_old,
)

CLICK = "click"
IMPRESSION = "impression"
#: The action names that become conversions (ConversionEvent.subtype keeps the name).
CONVERSIONS = (ADD_TO_CART, PURCHASE)
#: A query's attribute naming clickstats' variant (UBI has no such field).
VARIANT_ATTRIBUTE = "variant"


def _absent_if_empty(value: Any) -> Any:
    """ "" is no id: ubi.js sends `user_id: ''` when the user is not logged in."""
    return None if value == "" else value


#: The integers taken as object ids (UBI: `anyOf` string | integer): JavaScript's safe
#: integers, what ubi.js can send (and each exactly a float, so 3.0 and 3 are one id).
MIN_INTEGER_ID, MAX_INTEGER_ID = -(2**53 - 1), 2**53 - 1


def _id_text(value: Any) -> Any:
    """UBI allows integer object ids (3.0 is one, as in JSON Schema); kept as text."""
    value = integral(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not MIN_INTEGER_ID <= value <= MAX_INTEGER_ID:
            raise ValueError("must be a string or an integer of at most 2**53 - 1 in size")
        return str(value)
    return _absent_if_empty(value)


def _text_or_empty(value: Any) -> Any:
    return "" if value is None else value


def _none_if_empty(value: Any) -> Any:
    # `position: {}` and `event_attributes: null` both occur in published samples.
    return None if value == {} else value


#: What the schemas (OpenAPI) say is taken: "" and null as well as ids.
_ID_INPUT = Annotated[str, Field(max_length=MAX_ID_LENGTH)] | None
UbiId = Annotated[Id | None, BeforeValidator(_absent_if_empty, json_schema_input_type=_ID_INPUT)]
ObjectId = Annotated[
    Id | None,
    BeforeValidator(
        _id_text,
        json_schema_input_type=_ID_INPUT
        | Annotated[int, Field(ge=MIN_INTEGER_ID, le=MAX_INTEGER_ID)],
    ),
]
UbiText = Annotated[
    Text,
    BeforeValidator(
        _text_or_empty,
        json_schema_input_type=Annotated[str, Field(max_length=MAX_TEXT_LENGTH)] | None,
    ),
]
Ordinal = Annotated[
    int,
    Strict(),
    Field(ge=0, le=MAX_RANK - 1, description="0-based position of the result"),
    BeforeValidator(integral),
]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class UbiPosition(_Lenient):
    ordinal: Ordinal | None = None


class UbiObject(_Lenient):
    object_id: ObjectId = None
    object_id_field: str | None = None


class UbiEventAttributes(_Lenient):
    position: Annotated[UbiPosition | None, BeforeValidator(_none_if_empty)] = None
    object: Annotated[UbiObject | None, BeforeValidator(_none_if_empty)] = None
    # ubi_data_generator.py and SRW's sample put session_id here rather than at the top.
    session_id: UbiId = None


class UbiQuery(_Lenient):
    """A UBI query record (query.request.schema.json): only `user_query` is required."""

    user_query: Text
    query_id: UbiId = None
    client_id: UbiId = None
    user_id: UbiId = None
    session_id: UbiId = None
    application: str | None = None
    query_attributes: Annotated[dict[str, Any] | None, BeforeValidator(_none_if_empty)] = None
    timestamp: EventTime | None = None
    query_response_hit_ids: Annotated[list[Id], Field(max_length=MAX_RESULTS)] | None = None


class UbiEvent(_Lenient):
    """A UBI event record (event.schema.json): `action_name` and `timestamp` are required."""

    action_name: Id
    timestamp: EventTime
    query_id: UbiId = None
    client_id: UbiId = None
    user_id: UbiId = None
    session_id: UbiId = None
    user_query: UbiText = ""
    message: UbiText = ""
    application: str | None = None
    event_attributes: Annotated[UbiEventAttributes | None, BeforeValidator(_none_if_empty)] = None

    @property
    def object_id(self) -> str | None:
        attributes = self.event_attributes
        return attributes.object.object_id if attributes and attributes.object else None

    @property
    def ordinal(self) -> int | None:
        attributes = self.event_attributes
        return attributes.position.ordinal if attributes and attributes.position else None


def record_id(kind: str, record: Any) -> str:
    """A stable id for a record without one: the same record gives the same id, so a retried
    POST is stored once. (Two records identical in every field, time included, are one.)"""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return f"ubi-{kind}-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def unwrap_query(record: Any) -> Any:
    """A `_search` body with an `ext.ubi` block (the spec's samples/query-opensearch.json) is
    read as that block."""
    if isinstance(record, Mapping) and "user_query" not in record:
        ext = record.get("ext")
        if isinstance(ext, Mapping) and isinstance(ext.get("ubi"), Mapping):
            return ext["ubi"]
    return record


def _user(*candidates: str | None) -> str:
    return next(c for c in candidates if c)


def query_to_impression(
    query: UbiQuery, record: Any, default_user: str = "anonymous"
) -> SearchImpression:
    """The search a UBI query record describes. Its id: query_id (a retried or repeated
    query_id is stored once), else derived from the record."""
    attributes = query.query_attributes or {}
    variant = attributes.get(VARIANT_ATTRIBUTE)
    fields: dict[str, Any] = {
        "event_id": record_id("query", query.query_id) if query.query_id else None,
        "search_id": query.query_id,
        "query": query.user_query,
        "results": query.query_response_hit_ids,
        "user_id": _user(query.user_id, query.client_id, default_user),
        "session_id": query.session_id,
        "timestamp": query.timestamp or event_time_now(),
    }
    if fields["event_id"] is None:
        fields["event_id"] = record_id("query", record)
        fields["search_id"] = fields["event_id"]
    if isinstance(variant, str) and variant:
        fields["variant"] = variant
    if query.query_response_hit_ids is None:
        # ubi.js sends no hit ids: how many results the search found is not known, which is
        # not "none" (a zero-result search).
        fields["results_count"] = None
    return SearchImpression.model_validate(fields)


def event_to_clickstats(
    event: UbiEvent, record: Any, default_user: str = "anonymous"
) -> ClickEvent | ConversionEvent | ActionEvent:
    """The clickstats event a UBI event record becomes (see the module's docstring)."""
    attributes = event.event_attributes
    common: dict[str, Any] = {
        "event_id": record_id("event", record),
        "user_id": _user(event.user_id, event.client_id, default_user),
        "session_id": event.session_id or (attributes.session_id if attributes else None),
        "timestamp": event.timestamp,
        "search_id": event.query_id,
    }
    name, product, ordinal = event.action_name, event.object_id, event.ordinal
    if name == CLICK and product is not None and ordinal is not None:
        return ClickEvent.model_validate(
            {
                **common,
                "product_id": product,
                "rank": ordinal + 1,
                "search_query": event.user_query,
            }
        )
    if name in CONVERSIONS and product is not None:
        return ConversionEvent.model_validate(
            {**common, "subtype": name, "product_ids": [product], **_amounts(attributes)}
        )
    return ActionEvent.model_validate(
        {
            **common,
            "name": name,
            "product_ids": [product] if product is not None else None,
            "position": ordinal + 1 if ordinal is not None else None,
            "search_query": event.user_query,
            "message": event.message,
        }
    )


def _amounts(attributes: UbiEventAttributes | None) -> dict[str, Any]:
    """A conversion's price and currency, when the record gives both: UBI has no fields for
    them, so clickstats reads `price` and `currency` in `object.object_detail`, `object` or
    `event_attributes` (and `value` in `event_attributes`). A price without a currency is not
    revenue (the SRW sample's prices look like cents), so it is left out."""
    if attributes is None:
        return {}
    obj = attributes.object
    places: list[Mapping[str, Any]] = []
    if obj is not None:
        detail = (obj.model_extra or {}).get("object_detail")
        if isinstance(detail, Mapping):
            places.append(detail)
        places.append(obj.model_extra or {})
    places.append(attributes.model_extra or {})
    currency = next((p["currency"] for p in places if p.get("currency") is not None), None)
    if currency is None:
        return {}
    price = next((p["price"] for p in places if p.get("price") is not None), None)
    value = (attributes.model_extra or {}).get("value")
    amounts: dict[str, Any] = {"currency": currency}
    if price is not None:
        amounts["prices"] = [price]
    if value is not None:
        amounts["value"] = value
    return amounts if len(amounts) > 1 else {}


#: The UBI field each clickstats field comes from, to name it in an error.
_SOURCES = {
    "search_id": "query_id",
    "query": "user_query",
    "search_query": "user_query",
    "results": "query_response_hit_ids",
    "variant": "query_attributes.variant",
    "user_id": "user_id",
    "product_id": "event_attributes.object.object_id",
    "product_ids": "event_attributes.object.object_id",
    "rank": "event_attributes.position.ordinal",
    "position": "event_attributes.position.ordinal",
    "name": "action_name",
    "currency": "event_attributes.object.object_detail.currency",
    "prices": "event_attributes.object.object_detail.price",
    "value": "event_attributes.value",
}


def _problems(exc: ValidationError, translate: bool) -> list[dict[str, Any]]:
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        if translate and loc:
            loc = [_SOURCES.get(loc[0], loc[0])]
        problems.append({"field": ".".join(loc) or None, "problem": error["msg"]})
    return problems


def one_search_per_query_id(
    good: Sequence[tuple[int, AnyEvent]],
) -> tuple[list[tuple[int, AnyEvent]], list[tuple[int, AnyEvent]]]:
    """Of several query records of one query_id, the one with the most hit ids (the first of
    those): the UBI plugin records every request of a results page under one query_id, facet
    requests of size 0 included (SRW's sample has three records for "tv remote", two of them
    with no hits). Returns the kept ones and, for each other, (its index, the kept one)."""
    best: dict[str, tuple[int, AnyEvent]] = {}
    for index, event in good:
        key = event.search_id or event.event_id
        kept = best.get(key)
        if kept is None or _hits(event) > _hits(kept[1]):
            best[key] = (index, event)
    chosen = {index for index, _ in best.values()}
    kept_list = [(i, e) for i, e in good if i in chosen]
    repeats = [(i, best[e.search_id or e.event_id][1]) for i, e in good if i not in chosen]
    return kept_list, repeats


def _hits(event: AnyEvent) -> int:
    return len(event.results or ()) if isinstance(event, SearchImpression) else 0


def parse_records(
    kind: Literal["query", "event"],
    records: Sequence[Any],
    default_user: str = "anonymous",
    *,
    max_age_days: int = 0,
) -> tuple[list[tuple[int, AnyEvent]], list[Rejection]]:
    """UBI query or event records as clickstats events, record by record: the good ones with
    their index, the others with the UBI field at fault and the problem."""
    good: list[tuple[int, AnyEvent]] = []
    bad: list[Rejection] = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            bad.append(Rejection(index, [{"field": None, "problem": "must be a JSON object"}]))
            continue
        try:
            if kind == "query":
                record = unwrap_query(record)
                query = UbiQuery.model_validate(record)
            else:
                event = UbiEvent.model_validate(record)
        except ValidationError as exc:
            bad.append(Rejection(index, _problems(exc, translate=False)))
            continue
        try:
            mapped: AnyEvent = (
                query_to_impression(query, record, default_user)
                if kind == "query"
                else event_to_clickstats(event, record, default_user)
            )
        except ValidationError as exc:
            bad.append(Rejection(index, _problems(exc, translate=True)))
            continue
        problem = too_old(mapped.timestamp, max_age_days)
        if problem is not None:
            bad.append(Rejection(index, [{"field": "timestamp", "problem": problem}]))
            continue
        good.append((index, mapped))
    return good, bad
