"""Algolia Insights events, as `search-insights` (npm, 2.17) and Algolia's REST API send them to
`POST /1/events`: the event with Algolia's validation rules, and its mapping onto clickstats'
events (docs/INTEGRATIONS.md, "Algolia Insights").

The rules are those of Algolia's OpenAPI spec (algolia/api-clients-automation,
specs/insights/common/schemas/EventAttributes.yml and the event schemas beside it), with the
error texts Algolia gives where it documents one. `parse_batch` validates a whole body and
raises `InsightsError` at the first invalid event: Algolia stores all of a batch or none of it.
`to_events` is the mapping, a pure function of one valid event.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
)

from clickstats.events import (
    ADD_TO_CART,
    CONVERSION,
    MAX_BATCH_EVENTS,
    MAX_CLOCK_SKEW,
    MAX_EPOCH_MS,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    MIN_EPOCH_MS,
    PURCHASE,
    ActionEvent,
    AnyEvent,
    ClickEvent,
    ClickSource,
    ConversionEvent,
    integral,
    too_old,
)

#: "The request body must be smaller than 2 MB" (pushEvents.yml).
MAX_BODY_BYTES = 2 * 1024 * 1024
#: objectIDs, positions, objectData and filters: at most 20 entries each.
MAX_ITEMS = 20
#: Action names of the events that clickstats has no event for (see `to_events`).
CLICK = "click"
VIEW = "view"
FILTER_ACTIONS = {"click": "filter_click", "conversion": "filter_conversion", "view": "filter_view"}
_SUBTYPES = {"addToCart": ADD_TO_CART, "purchase": PURCHASE, None: CONVERSION}
#: Where a clickstats field's error is reported, in Algolia's terms.
_ALGOLIA_FIELD = {
    "product_ids": "objectIDs",
    "product_id": "objectIDs",
    "prices": "objectData.price",
    "discounts": "objectData.discount",
    "quantities": "objectData.quantity",
    "rank": "positions",
    "search_id": "queryID",
    "user_id": "userToken",
}


class InsightsError(Exception):
    """A request Algolia would refuse: its status (400, 422) and Algolia-style message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _pattern(regex: str, problem: str) -> AfterValidator:
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(problem)
        return value

    return AfterValidator(check)


def _number(value: Any) -> Any:
    """A price, discount or value: a JSON number, or a string holding one ("9.99")."""
    if isinstance(value, bool):
        raise ValueError("must be a number or a numeric string, not true or false")
    if isinstance(value, str):
        if len(value) > 16:
            raise ValueError("must be at most 16 characters long as a string")
        try:
            value = float(value)
        except ValueError:
            raise ValueError("must be a number or a string holding one, such as '9.99'") from None
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError("must be a finite number from 0")
        return float(value)
    raise ValueError("must be a number or a numeric string")


def _filter(value: str) -> str:
    # search-insights URL-encodes each filter whole ("brand%3AApple%20Inc"); the REST API
    # takes them encoded too ("discount:10%25"): decoded once here.
    decoded = unquote(value)
    facet, colon, _ = decoded.partition(":")
    if not colon or not facet:
        raise ValueError("must be facet:value, such as brand:Apple (URL-encoded)")
    return decoded


_TOKEN = r"[a-zA-Z0-9_=/+-]{1,129}"
UserToken = Annotated[
    str,
    Strict(),
    _pattern(
        _TOKEN,
        "must contain only alphanumeric, equal, plus, slash, hyphen, or underscore characters, "
        "and be between 1 and 129 characters long",
    ),
]
QueryID = Annotated[
    str, Strict(), _pattern(r"[0-9a-f]{32}", "must be a search query ID (32 lowercase hex digits)")
]
Amount = Annotated[float, BeforeValidator(_number)]
Count = Annotated[int, Strict(), Field(ge=1, le=2**31 - 1), BeforeValidator(integral)]
ObjectID = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_ID_LENGTH)]
Filter = Annotated[str, Strict(), Field(min_length=1), AfterValidator(_filter)]
Items = Field(min_length=1, max_length=MAX_ITEMS)


class ObjectData(BaseModel):
    """One converted object's price, discount and quantity, and the search it came from."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    price: Amount | None = None
    discount: Amount | None = None
    quantity: Count | None = None
    query_id: QueryID | None = Field(None, alias="queryID")


class InsightsEvent(BaseModel):
    """One Algolia Insights event. Fields Algolia does not define are accepted and ignored (the
    client adds some, e.g. objectIDsWithInferredQueryID)."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    event_type: Literal["click", "conversion", "view"] = Field(alias="eventType")
    event_subtype: Literal["addToCart", "purchase"] | None = Field(None, alias="eventSubtype")
    event_name: Annotated[
        str,
        Strict(),
        _pattern(
            r"[\x20-\x7E]{1,64}",
            "must contain only visible ASCII characters, and be between 1 and 64 characters long",
        ),
    ] = Field(alias="eventName")
    index: Annotated[str, Strict(), Field(min_length=1)]
    user_token: UserToken = Field(alias="userToken")
    authenticated_user_token: UserToken | None = Field(None, alias="authenticatedUserToken")
    timestamp: (
        Annotated[int, Strict(), Field(ge=MIN_EPOCH_MS, le=MAX_EPOCH_MS), BeforeValidator(integral)]
        | None
    ) = None
    query_id: QueryID | None = Field(None, alias="queryID")
    object_ids: Annotated[list[ObjectID], Items] | None = Field(None, alias="objectIDs")
    filters: Annotated[list[Filter], Items] | None = None
    positions: Annotated[list[Count], Items] | None = None
    object_data: Annotated[list[ObjectData], Items] | None = Field(None, alias="objectData")
    value: Amount | None = None
    currency: (
        Annotated[str, Strict(), _pattern(r"[A-Za-z]{3}", "must be 3 letters, such as USD")] | None
    ) = None


def _rules(event: InsightsEvent) -> Iterator[tuple[str, str]]:
    """Algolia's rules across fields, as (field, problem), in the spec's words where it has some."""
    if event.event_subtype is not None and event.event_type != "conversion":
        yield "eventSubtype", "only a conversion event may have one (addToCart or purchase)"
    if event.object_ids is None and event.filters is None:
        yield "objectIDs", "Event should specify either some ObjectIDs or some Filters"
    if event.object_ids is not None and event.filters is not None:
        yield "filters", "Event should specify either some ObjectIDs or some Filters, but not both"
    if event.positions is not None:
        if event.event_type != "click":
            yield "positions", "Only event of type click should specify the positions attribute"
        elif event.query_id is None:
            yield "positions", "Event of type click with positions should specify a queryID"
        elif len(event.positions) != len(event.object_ids or ()):
            yield (
                "positions",
                "Event of type click should have the same number of ObjectIDs and Positions",
            )
    if event.object_data is not None and len(event.object_data) != len(event.object_ids or ()):
        yield "objectData", "must have the same length as objectIDs"
    priced = event.value is not None or any(d.price is not None for d in event.object_data or ())
    if priced and event.currency is None:
        yield "currency", "is needed when objectData has prices or value is given"


@dataclass(frozen=True, slots=True)
class Received:
    """A valid event, the JSON it came as (what its event ids derive from), and when."""

    event: InsightsEvent
    raw: Mapping[str, Any]
    at: datetime


def _message(index: int, field: str, problem: str) -> str:
    return f"event {index}: {field}: {problem}" if field else f"event {index}: {problem}"


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    field = ".".join(str(part) for part in error["loc"])
    if error["type"] == "missing":
        return field, "is required"
    problem = str(error["msg"]).removeprefix("Value error, ")
    return field, problem


def parse_batch(payload: Any, *, received_at: datetime, max_age_days: int) -> list[AnyEvent]:
    """The clickstats events of a body `{"events": [...]}` (`to_events`) when every event is
    valid; else `InsightsError` (422) naming the first invalid event (from 0) and its field."""
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise InsightsError(422, 'Invalid payload: the body must be {"events": [...]}')
    items: list[Any] = payload["events"]
    if not items:
        raise InsightsError(422, "No events to process")
    if len(items) > MAX_BATCH_EVENTS:
        raise InsightsError(422, f"Cannot process more than {MAX_BATCH_EVENTS} events in a batch")
    events: list[AnyEvent] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InsightsError(422, _message(index, "", "must be a JSON object"))
        try:
            event = InsightsEvent.model_validate(item)
        except ValidationError as exc:
            raise InsightsError(422, _message(index, *_describe(exc.errors()[0]))) from None
        problem = next(_rules(event), None)
        if problem is None:
            problem = _timing(event, received_at, max_age_days)
        if problem is not None:
            raise InsightsError(422, _message(index, *problem))
        try:  # what clickstats refuses beyond Algolia's rules (an unknown currency) fails here
            events.extend(to_events(Received(event, item, received_at)))
        except ValidationError as exc:
            field, text = _describe(exc.errors()[0])
            head, _, rest = field.partition(".")
            field = ".".join(filter(None, [_ALGOLIA_FIELD.get(head, head), rest]))
            raise InsightsError(422, _message(index, field, text)) from None
    return events


def _timing(event: InsightsEvent, now: datetime, max_age_days: int) -> tuple[str, str] | None:
    if event.timestamp is None:
        return None
    at = _time(event.timestamp)
    if at - now > MAX_CLOCK_SKEW:
        return (
            "timestamp",
            "is more than 5 minutes in the future; send UTC milliseconds, or omit it",
        )
    problem = too_old(at, max_age_days)
    if problem is None:
        return None
    return "timestamp", "is too far in the past: " + problem.removeprefix("is ")


def _time(millis: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)


def user_id(event: InsightsEvent) -> str:
    """The clickstats user: the authenticated token if there is one, else the user token. A
    129-character token (Algolia's limit; clickstats' is 128) keeps its first 96 characters
    and a digest of the whole, so that it stays one user."""
    token = event.authenticated_user_token or event.user_token
    if len(token) <= MAX_ID_LENGTH:
        return token
    return token[:96] + hashlib.sha256(token.encode()).hexdigest()[:32]


def _ids(one: Received) -> Iterator[str]:
    """Event ids from the event's JSON: a batch sent again is stored once. An event without a
    timestamp also takes the day it arrived: a repeat on another day is a new event."""
    text = json.dumps(one.raw, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    if one.event.timestamp is None:
        text += one.at.date().isoformat()
    digest = hashlib.sha256(text.encode()).hexdigest()[:40]
    n = 0
    while True:
        yield f"algolia-{digest}-{n}"
        n += 1


def to_events(one: Received) -> list[AnyEvent]:
    """The clickstats events of one valid Algolia event (docs/INTEGRATIONS.md has the table):

    - a click with positions (clickedObjectIDsAfterSearch): one `ClickEvent` per object, at its
      position, with search_id = queryID;
    - a click without positions (clickedObjectIDs): an `ActionEvent` "click" (no rank: no
      clickstats click);
    - a conversion: `ConversionEvent`s (add_to_cart, purchase, or conversion), one per queryID
      among its objects (see `_conversions`);
    - a view: an `ActionEvent` "view" naming its objects;
    - an event on filters (clickedFilters, convertedFilters, viewedFilters): an `ActionEvent`
      filter_click / filter_conversion / filter_view, its filters in `message`.

    Actions carry the eventName in `message`. The index is not stored.
    """
    event, ids = one.event, _ids(one)
    common: dict[str, Any] = {
        "user_id": user_id(event),
        "timestamp": one.at if event.timestamp is None else _time(event.timestamp),
    }
    if event.filters is not None:
        message = json.dumps({"eventName": event.event_name, "filters": event.filters})
        if len(message) > MAX_TEXT_LENGTH:
            message = event.event_name
        return [
            ActionEvent(
                **common,
                event_id=next(ids),
                name=FILTER_ACTIONS[event.event_type],
                search_id=event.query_id,
                message=message,
            )
        ]
    objects = event.object_ids or []
    if event.event_type == "conversion":
        return [
            ConversionEvent.model_validate({**common, "event_id": next(ids), **fields})
            for fields in _conversions(event)
        ]
    if event.event_type == "click" and event.positions is not None:
        return [
            ClickEvent(
                **common,
                event_id=next(ids),
                product_id=product,
                rank=position,
                search_id=event.query_id,
                source=ClickSource.SEARCH_RESULTS,
            )
            for product, position in zip(objects, event.positions, strict=True)
        ]
    return [
        ActionEvent(
            **common,
            event_id=next(ids),
            name=CLICK if event.event_type == "click" else VIEW,
            product_ids=objects,
            search_id=event.query_id,
            message=event.event_name,
        )
    ]


def _conversions(event: InsightsEvent) -> list[dict[str, Any]]:
    """The fields of each ConversionEvent of a conversion.

    Each object belongs to the search its objectData names (queryID), else to the event's
    queryID, else (when other objects name one) to the first search named. Objects of different
    searches make one conversion per search, so that each search
    is credited with its own products; a `value` is then shared out in proportion to each
    part's (price - discount) x quantity, or to its number of units when prices are missing.
    """
    objects = event.object_ids or []
    data = event.object_data or [ObjectData() for _ in objects]
    parts: dict[str | None, list[int]] = {}
    for i, item in enumerate(data):
        parts.setdefault(item.query_id or event.query_id, []).append(i)
    if None in parts and len(parts) > 1:
        # Objects that name no search go with the order's first search: one order stays one
        # purchase unless its products came from two searches or more.
        unnamed = parts.pop(None)
        first = next(iter(parts))
        parts[first] = sorted(parts[first] + unnamed)
    priced = all(d.price is not None for d in data)
    weights = [
        ((d.price or 0.0) - (d.discount or 0.0)) * (d.quantity or 1)
        if priced
        else float(d.quantity or 1)
        for d in data
    ]
    total = math.fsum(weights)
    if total <= 0:  # all free: shared by units
        weights = [float(d.quantity or 1) for d in data]
        total = math.fsum(weights)
    conversions: list[dict[str, Any]] = []
    for search_id, members in parts.items():
        part = [data[i] for i in members]
        fields: dict[str, Any] = {
            "subtype": _SUBTYPES[event.event_subtype],
            "product_ids": [objects[i] for i in members],
            "search_id": search_id,
            "currency": event.currency.upper() if event.currency else None,
        }
        if event.object_data is not None:
            if all(d.price is not None for d in part):
                fields["prices"] = [d.price for d in part]
            if any(d.quantity is not None for d in part):
                fields["quantities"] = [d.quantity or 1 for d in part]
            if any(d.discount is not None for d in part):
                fields["discounts"] = [d.discount or 0.0 for d in part]
        if event.value is not None:
            share = math.fsum(weights[i] for i in members) / total
            fields["value"] = event.value if len(parts) == 1 else round(event.value * share, 6)
        conversions.append(fields)
    return conversions
