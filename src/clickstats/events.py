"""The events clickstats records: a search (impression), a click on one of its results, a
conversion (an add to cart, a purchase, or another goal the site names), and any other action a
user takes (a product view, a hover, a share: what Algolia's view events and UBI's other action
names carry)."""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

#: Beacons from a device whose clock runs slightly ahead are fine; anything further out is a bug.
MAX_CLOCK_SKEW = timedelta(minutes=5)
MAX_CLOCK_SKEW_S = MAX_CLOCK_SKEW.total_seconds()
MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 1024
MAX_RESULTS = 1000
MAX_BATCH_EVENTS = 1000
#: Products of one conversion (Algolia's limit on objectIDs is 20; an order may hold more).
MAX_CONVERSION_PRODUCTS = 100
#: The largest price or value taken: beyond it an amount is a unit mix-up (cents vs euros).
MAX_AMOUNT = 1e12
MAX_QUANTITY = 1_000_000
#: Stored as a 32-bit integer.
MAX_RANK = 2**31 - 1
#: One hour: a longer "response time" is a unit mix-up (seconds vs microseconds), not a search.
MAX_RESPONSE_TIME_MS = 3_600_000.0

#: Epoch milliseconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: what datetime holds.
MIN_EPOCH_MS = -62_135_596_800_000
MAX_EPOCH_MS = 253_402_300_799_999
#: What a text timestamp must start with: a date. Digits alone ("1700000000") would be read as
#: epoch seconds or milliseconds by guessing; a JSON number is always milliseconds.
_DATE_PREFIX = re.compile(r"\d{4}-\d{2}-\d{2}")
SURROGATE = (
    "contains a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not text: "
    "send valid Unicode"
)


def unicode_text(value: str) -> str:
    """`value`, unless it holds a lone surrogate. json.loads turns "\\ud800" into one; it
    cannot be written as UTF-8, so it would fail in the store or in the answer instead."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(SURROGATE) from None
    return value


#: A string without a length limit that must be text (no lone surrogates).
Unicode = Annotated[str, AfterValidator(unicode_text)]
# A length limit makes pydantic-core read the string as UTF-8, which refuses lone surrogates
# ("unable to parse raw data as a unicode string") at no cost: every string of an event has
# one (tests/test_events.py holds every field to it). A Python validator on each string
# would cost the ingestion path about a sixth of its validation time.
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
Text = Annotated[str, Field(max_length=MAX_TEXT_LENGTH)]


def integral(value: Any) -> Any:
    """3.0 as 3: JSON Schema's integers include it, and some JSON writers write no other."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Numbers are strict: a JSON true/false or "12" is no number (lax mode would read them as 1
# and 12). A strict float takes integers; an integer field takes 3.0 (`integral`). In each
# Annotated, the limits come before any validator: after one, pydantic checks them in Python.
Millis = Annotated[float, Strict(), Field(ge=0, le=MAX_RESPONSE_TIME_MS, allow_inf_nan=False)]

#: The variant of a search sent without one, and of a click whose variant cannot be resolved.
DEFAULT_VARIANT = "default"


def new_id() -> str:
    """A random 128-bit id; cheaper than uuid4() on the ingestion path and just as unique."""
    return os.urandom(16).hex()


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_millis(value: datetime) -> datetime:
    """Event times are kept to the millisecond: what browsers send, and what every store keeps."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


_now_cache: tuple[int, datetime] = (0, datetime.fromtimestamp(0, UTC))


def event_time_now() -> datetime:
    """Now, to the millisecond. Cached per millisecond: a 1,000-event batch asks ~1,000 times."""
    global _now_cache
    millis = time.time_ns() // 1_000_000
    cached = _now_cache
    if cached[0] != millis:
        cached = _now_cache = (millis, datetime.fromtimestamp(millis / 1000, UTC))
    return cached[1]


def _event_time_input(value: Any) -> Any:
    """A number is epoch milliseconds (what `Date.now()` gives); text must start with a date."""
    if isinstance(value, bool):
        raise ValueError("must be a date and time or epoch milliseconds, not true or false")
    if isinstance(value, int | float):
        if not (math.isfinite(value) and MIN_EPOCH_MS <= value <= MAX_EPOCH_MS):
            raise ValueError(
                "is out of range: epoch milliseconds must lie between years 1 and 9999"
            )
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=value)
    if isinstance(value, str) and not _DATE_PREFIX.match(value):
        raise ValueError(
            "must be an ISO 8601 date and time such as 2026-11-28T17:50:58.123Z, or a number "
            "of epoch milliseconds"
        )
    return value


def _iso_text(value: Any) -> Any:
    if isinstance(value, int | float) or (isinstance(value, str) and not _DATE_PREFIX.match(value)):
        raise ValueError("must be an ISO 8601 date and time such as 2026-11-28T17:50:58Z")
    return value


#: A date and time given as ISO 8601 text, as the schema says (lax mode also reads numbers and
#: digits as epoch seconds).
IsoTime = Annotated[datetime, BeforeValidator(_iso_text)]


def _utc_and_not_future(value: datetime) -> datetime:
    # A naive timestamp is taken as UTC: that is what every beacon and log line means by it.
    if value.tzinfo is not UTC:
        try:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00:00+05:00 is before year 1 in UTC
            raise ValueError(
                "is out of range: in UTC it falls before year 1 or after 9999"
            ) from None
    if value.timestamp() - time.time() > MAX_CLOCK_SKEW_S:
        raise ValueError("is more than 5 minutes in the future; send UTC, or omit it")
    return to_millis(value) if value.microsecond % 1000 else value


#: ISO 8601 as browsers and log lines write it ("2026-11-28T17:50:58.123Z"): for text of this
#: form datetime.fromisoformat and pydantic agree, so it is read without pydantic's parser.
_ISO_COMMON = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _event_time(value: Any, parse: ValidatorFunctionWrapHandler) -> datetime:
    """The event time from its input, in one Python call per event: this runs on every event
    of every batch, and was half of a batch's validation as a before and an after validator.

    The common forms (`_ISO_COMMON` text, integer epoch milliseconds) are read here; any other
    input, and any the fast path cannot read, goes through pydantic's parser (`parse`), so that
    every error is pydantic's own, as before.
    """
    if type(value) is str and _ISO_COMMON.fullmatch(value):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:  # 2026-02-30 and the like: pydantic says what is wrong
            parsed = parse(value)
    elif type(value) is int and MIN_EPOCH_MS <= value <= MAX_EPOCH_MS:
        parsed = _EPOCH + timedelta(milliseconds=value)
    else:
        parsed = parse(_event_time_input(value))
    if (  # the usual case, without another call: UTC, in milliseconds, not ahead
        parsed.tzinfo is UTC
        and not parsed.microsecond % 1000
        and parsed.timestamp() - time.time() <= MAX_CLOCK_SKEW_S
    ):
        return parsed
    return _utc_and_not_future(parsed)


#: When an event happened: ISO 8601 text (UTC unless it carries an offset) or a JSON number of
#: epoch milliseconds; kept in UTC to the millisecond; never more than 5 minutes ahead.
EventTime = Annotated[
    datetime,
    WrapValidator(
        _event_time,
        json_schema_input_type=datetime
        | Annotated[float, Field(ge=MIN_EPOCH_MS, le=MAX_EPOCH_MS, allow_inf_nan=False)],
    ),
    Field(
        description="when it happened: ISO 8601 date and time (UTC unless it has an offset), "
        "or a number of milliseconds since 1970-01-01T00:00:00Z as Date.now() gives; "
        "at most 5 minutes in the future; default now"
    ),
]


def too_old(timestamp: datetime, max_age_days: int) -> str | None:
    """Why an event at `timestamp` is too old to ingest over HTTP, or None (0 days: any age).

    Late beacons are normal for minutes or hours; events days old are a replay or a bug, and
    they would change reports that were already read. `clickstats import` loads any age.
    """
    if max_age_days <= 0 or timestamp >= _oldest_taken(max_age_days):
        return None
    return _too_old_problem(max_age_days)


def _oldest_taken(max_age_days: int) -> datetime:
    return event_time_now() - timedelta(days=max_age_days)


def _too_old_problem(max_age_days: int) -> str:
    days = "1 day" if max_age_days == 1 else f"{max_age_days} days"
    return (
        f"is more than {days} old: the server takes events of the last {days} "
        "(max_event_age_days); load older ones with `clickstats import`"
    )


class ClickSource(StrEnum):
    SEARCH_RESULTS = "SEARCH_RESULTS"
    RECOMMENDATIONS = "RECOMMENDATIONS"
    AUTOCOMPLETE = "AUTOCOMPLETE"
    OTHER = "OTHER"


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: Id = "anonymous"
    session_id: Id | None = None
    timestamp: EventTime = Field(default_factory=event_time_now)
    event_id: Id = Field(default_factory=new_id)

    @classmethod
    def coerce(cls, event: Self | Mapping[str, Any] | None = None, **fields: Any) -> Self:
        """The event itself, or one validated from a dict and/or keyword fields."""
        if event is None or isinstance(event, Mapping):
            return cls.model_validate({**(event or {}), **fields})
        return event

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (timestamps as ISO 8601 strings)."""
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return self.model_dump_json()


class ClickEvent(_Event):
    """A click on a result (or a recommendation, or an autocomplete suggestion)."""

    type: Literal["click"] = "click"
    product_id: Id
    rank: Annotated[
        int,
        Strict(),
        Field(ge=1, le=MAX_RANK, description="1-based position of the result"),
        BeforeValidator(integral),
    ]
    search_query: Text = ""
    response_time_ms: Millis | None = None
    source: ClickSource = ClickSource.SEARCH_RESULTS
    search_id: Id | None = Field(
        default=None, description="the search_id of the impression this click came from"
    )
    # Stored as sent (None when omitted) and resolved by every report at query time, so that
    # a click counts for its search's variant whichever of the two arrives first.
    variant: Id | None = Field(
        default=None,
        description="the variant that served the search; omitted: the variant of the "
        f"impression its search_id names, else {DEFAULT_VARIANT!r}",
    )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClickEvent:
        return cls.model_validate(data)

    @classmethod
    def from_json(cls, data: str | bytes) -> ClickEvent:
        return cls.model_validate_json(data)


class SearchImpression(_Event):
    """One answered search: what was asked, how fast, and what was shown."""

    type: Literal["impression"] = "impression"
    query: Text
    variant: Id = Field(
        default=DEFAULT_VARIANT,
        description="the search variant or experiment arm, e.g. search_v1, search_v2",
    )
    results_count: (
        Annotated[int, Strict(), Field(ge=0, le=MAX_RANK), BeforeValidator(integral)] | None
    ) = Field(
        default=0,
        description="how many results the search found; omitted: the length of results (0 "
        "without results); null: not known (no zero-result or abandonment figure counts it)",
    )
    response_time_ms: Millis | None = None
    search_id: Id = Field(default_factory=new_id)
    results: Annotated[list[Id], Field(max_length=MAX_RESULTS)] | None = Field(
        default=None, description="product ids in rank order, as shown"
    )
    teams: Annotated[list[Literal["A", "B"]], Field(max_length=MAX_RESULTS)] | None = Field(
        default=None,
        description="interleaving: the ranker (team A or B) that contributed each position",
    )

    @model_validator(mode="before")
    @classmethod
    def _count_the_results_shown(cls, data: Any) -> Any:
        # A search that sends the results it showed and no count found at least those.
        if isinstance(data, Mapping) and "results_count" not in data:
            results = data.get("results")
            if isinstance(results, list | tuple):
                return {**data, "results_count": len(results)}
        return data

    @field_validator("teams")
    @classmethod
    def _a_team_per_result(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        # A field validator (results is validated before teams) so that the error names teams.
        # results is missing from info.data only when it failed: its own error says why.
        if value is None or "results" not in info.data:
            return value
        if len(value) != len(info.data["results"] or ()):
            raise ValueError("must name one team per entry of results")
        return value

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchImpression:
        return cls.model_validate(data)

    @classmethod
    def from_json(cls, data: str | bytes) -> SearchImpression:
        return cls.model_validate_json(data)


def _currency(value: str) -> str:
    """An ISO 4217 currency code (pycountry's list), in capitals as the standard writes it."""
    import pycountry  # not at import: the CLI's --help does not need it

    if pycountry.currencies.get(alpha_3=value) is None:
        raise ValueError("must be an ISO 4217 currency code in capitals, such as EUR, USD or JPY")
    return value


#: An ISO 4217 code: three capital letters, checked against the standard's list.
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$"), AfterValidator(_currency)]
#: A price, value or discount: a finite number from 0, in the event's currency.
Amount = Annotated[float, Strict(), Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False)]
Quantity = Annotated[int, Strict(), Field(ge=1, le=MAX_QUANTITY), BeforeValidator(integral)]
#: The subtypes clickstats' metrics count; a site may send any other name.
ADD_TO_CART = "add_to_cart"
PURCHASE = "purchase"
CONVERSION = "conversion"


class ConversionEvent(_Event):
    """A conversion: one or more products put in the cart, bought, or another goal reached.

    It counts for the search it names (`search_id`); without one, for the user's most recent
    search in which they clicked one of its products, within the attribution window
    (docs/CLICK_TRACKING.md, "Attribution"). A purchase's `value`, in `currency`, is its
    revenue; sent without a value it is the sum over its products of (price - discount) x
    quantity, when prices are given.
    """

    type: Literal["conversion"] = "conversion"
    subtype: Id = Field(
        default=CONVERSION,
        description=f"{ADD_TO_CART!r}, {PURCHASE!r}, or a name the site chooses; default "
        f"{CONVERSION!r}",
    )
    product_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_CONVERSION_PRODUCTS)] = (
        Field(description="the products converted (at least one)")
    )
    prices: Annotated[list[Amount], Field(max_length=MAX_CONVERSION_PRODUCTS)] | None = Field(
        default=None, description="the unit price of each product, in currency"
    )
    quantities: Annotated[list[Quantity], Field(max_length=MAX_CONVERSION_PRODUCTS)] | None = Field(
        default=None, description="how many of each product (default 1 each)"
    )
    discounts: Annotated[list[Amount], Field(max_length=MAX_CONVERSION_PRODUCTS)] | None = Field(
        default=None, description="the discount on one unit of each product, in currency"
    )
    value: Amount | None = Field(
        default=None,
        validate_default=True,
        description="the conversion's total value (a purchase's revenue), in currency; omitted: "
        "the sum of (price - discount) x quantity over the products, when prices are given",
    )
    currency: Currency | None = Field(
        default=None,
        validate_default=True,
        description="ISO 4217 code of value and prices, e.g. EUR; needed with either",
    )
    search_id: Id | None = Field(
        default=None,
        description="the search it came from; omitted: the user's most recent search in which "
        "they clicked one of the products, within the attribution window",
    )

    @field_validator("prices", "quantities", "discounts")
    @classmethod
    def _one_per_product(cls, value: list[Any] | None, info: ValidationInfo) -> list[Any] | None:
        if value is None or "product_ids" not in info.data:
            return value
        if len(value) != len(info.data["product_ids"]):
            raise ValueError("must have one entry per entry of product_ids")
        return value

    @field_validator("value")
    @classmethod
    def _value_of_the_products(cls, value: float | None, info: ValidationInfo) -> float | None:
        # Field validators, not a model validator, so that an error names its field. The lists
        # are validated before value: one missing from info.data failed, and says why itself.
        prices = info.data.get("prices")
        if value is not None or prices is None or "quantities" not in info.data:
            return value
        if "discounts" not in info.data:
            return value
        quantities = info.data["quantities"] or [1] * len(prices)
        discounts = info.data["discounts"] or [0.0] * len(prices)
        total = math.fsum(
            (p - d) * q for p, d, q in zip(prices, discounts, quantities, strict=True)
        )
        if total < 0:
            raise ValueError("would be negative: the discounts exceed the prices")
        if total > MAX_AMOUNT:
            raise ValueError(f"would be above {MAX_AMOUNT:.0e}: check the prices and quantities")
        return round(total, 6)

    @field_validator("currency")
    @classmethod
    def _needed_with_amounts(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and (info.data.get("value") is not None or info.data.get("prices")):
            raise ValueError("is needed with value or prices (an ISO 4217 code)")
        return value

    @property
    def units(self) -> int:
        """How many product units it covers (each product's quantity, 1 when not given)."""
        return sum(self.quantities) if self.quantities else len(self.product_ids)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConversionEvent:
        return cls.model_validate(data)

    @classmethod
    def from_json(cls, data: str | bytes) -> ConversionEvent:
        return cls.model_validate_json(data)


#: Products one action names (Algolia's view events name at most 20).
MAX_ACTION_PRODUCTS = 100


class ActionEvent(_Event):
    """Anything else a user did, under its own name: a product page view ("view", what
    Algolia's view events and view-through numbers count), a hover, a share, or any action name
    an OpenSearch UBI client sends. Stored, exported and counted by name; no metric reads it."""

    type: Literal["action"] = "action"
    name: Id = Field(description="what was done, e.g. 'view', 'hover', 'share'")
    product_ids: Annotated[list[Id], Field(max_length=MAX_ACTION_PRODUCTS)] | None = Field(
        default=None, description="the products it concerns, if any"
    )
    position: (
        Annotated[int, Strict(), Field(ge=1, le=MAX_RANK), BeforeValidator(integral)] | None
    ) = Field(default=None, description="1-based position of the result it concerns, if any")
    search_id: Id | None = Field(default=None, description="the search it came from, if any")
    search_query: Text = Field(default="", description="the text of that search")
    message: Text = Field(default="", description="free text the client attached")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionEvent:
        return cls.model_validate(data)


AnyEvent = ClickEvent | SearchImpression | ConversionEvent | ActionEvent

Event = Annotated[AnyEvent, Field(discriminator="type")]
_events_adapter: TypeAdapter[list[AnyEvent]] = TypeAdapter(list[Event])
_event_adapter: TypeAdapter[AnyEvent] = TypeAdapter(Event)


class EventProblem(BaseModel):
    field: str | None = Field(description="the field at fault (dotted path); null: the event")
    problem: str


class EventResult(BaseModel):
    """What became of one event of a batch."""

    index: int = Field(description="its position in the batch, from 0")
    status: Literal["accepted", "duplicate", "rejected", "dropped_bot"] = Field(
        description="accepted: stored; duplicate: its event_id was already stored; rejected: "
        "not valid (see errors); dropped_bot: sent by a known crawler, not stored"
    )
    event_id: str | None = Field(None, description="absent when rejected")
    search_id: str | None = Field(None, description="an impression's search id")
    errors: list[EventProblem] | None = Field(None, description="why it was rejected")


class BatchResult(BaseModel):
    """The answer to POST /analytics/events: counts, then each event in the batch's order."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResult]


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    errors: list[dict[str, Any]]


def _describe(error: Mapping[str, Any]) -> dict[str, Any]:
    if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
        return {
            "field": "type",
            "problem": "must be 'click', 'impression', 'conversion' or 'action'",
        }
    # The first location part is the union tag ("click", ...), not a field.
    loc = [str(part) for part in error["loc"][1:]]
    return {"field": ".".join(loc) or None, "problem": error["msg"]}


def parse_events(
    items: Sequence[Any], default_user: str | None = None, *, max_age_days: int = 0
) -> tuple[list[tuple[int, AnyEvent]], list[Rejection]]:
    """Validate a batch item by item: good events are kept, bad ones come back with reasons.

    The whole list is validated in one call (fast: the loop runs in pydantic-core); only
    when that fails are the items validated one by one to sort the good from the bad.
    `max_age_days` (HTTP ingestion) also rejects events older than that (`too_old`).
    """
    good, bad = _validate(items, default_user)
    if max_age_days <= 0:
        return good, bad
    oldest = _oldest_taken(max_age_days)  # once per batch: too_old() per event costs a call
    kept = [(index, event) for index, event in good if event.timestamp >= oldest]
    if len(kept) == len(good):
        return kept, bad
    problem = _too_old_problem(max_age_days)
    bad += [
        Rejection(index, [{"field": "timestamp", "problem": problem}])
        for index, event in good
        if event.timestamp < oldest
    ]
    bad.sort(key=lambda rejection: rejection.index)
    return kept, bad


def _validate(
    items: Sequence[Any], default_user: str | None
) -> tuple[list[tuple[int, AnyEvent]], list[Rejection]]:
    prepared: list[Any] = []
    for item in items:
        if default_user is not None and isinstance(item, dict) and "user_id" not in item:
            item = {**item, "user_id": default_user}
        prepared.append(item)
    try:
        return list(enumerate(_events_adapter.validate_python(prepared))), []
    except ValidationError:
        pass
    good: list[tuple[int, AnyEvent]] = []
    bad: list[Rejection] = []
    for index, item in enumerate(prepared):
        try:
            good.append((index, _event_adapter.validate_python(item)))
        except ValidationError as exc:
            bad.append(Rejection(index, [_describe(e) for e in exc.errors()]))
    return good, bad


def loads(body: bytes) -> Any:
    """A JSON body, as strict JSON or as JavaScript and Python write it.

    orjson is fast but refuses NaN, Infinity and lone surrogates ("\\ud800") in the whole
    document; the standard json module reads them (1e400 as inf). So one bad event in a
    batch comes back rejected with its field, and the others are stored. ValueError when
    neither can read it (orjson's message, which says where).
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error = exc
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError; deep nesting
        raise ValueError(str(error)) from None
