"""The two events clickstats records: a click on a result, and the search that showed it."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
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
#: Stored as a 32-bit integer.
MAX_RANK = 2**31 - 1
#: One hour: a longer "response time" is a unit mix-up (seconds vs microseconds), not a search.
MAX_RESPONSE_TIME_MS = 3_600_000.0

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
Text = Annotated[str, Field(max_length=MAX_TEXT_LENGTH)]
Millis = Annotated[float, Field(ge=0, le=MAX_RESPONSE_TIME_MS, allow_inf_nan=False)]

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


class ClickSource(StrEnum):
    SEARCH_RESULTS = "SEARCH_RESULTS"
    RECOMMENDATIONS = "RECOMMENDATIONS"
    AUTOCOMPLETE = "AUTOCOMPLETE"
    OTHER = "OTHER"


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: Id = "anonymous"
    session_id: Id | None = None
    timestamp: datetime = Field(default_factory=event_time_now)
    event_id: Id = Field(default_factory=new_id)

    @field_validator("timestamp")
    @classmethod
    def _utc_and_not_future(cls, value: datetime) -> datetime:
        # A naive timestamp is taken as UTC: that is what every beacon and log line means by it.
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if value.timestamp() - time.time() > MAX_CLOCK_SKEW_S:
            raise ValueError("is more than 5 minutes in the future; send UTC, or omit it")
        return to_millis(value)

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
    rank: Annotated[int, Field(ge=1, le=MAX_RANK, description="1-based position of the result")]
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
    results_count: Annotated[int, Field(ge=0, le=MAX_RANK)] = Field(
        default=0,
        description="how many results the search found; omitted: the length of results (0 "
        "without results)",
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

    @model_validator(mode="after")
    def _a_team_per_result(self) -> SearchImpression:
        if self.teams is not None and len(self.teams) != len(self.results or ()):
            raise ValueError("teams must name one team per entry of results")
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchImpression:
        return cls.model_validate(data)

    @classmethod
    def from_json(cls, data: str | bytes) -> SearchImpression:
        return cls.model_validate_json(data)


Event = Annotated[ClickEvent | SearchImpression, Field(discriminator="type")]
_events_adapter: TypeAdapter[list[ClickEvent | SearchImpression]] = TypeAdapter(list[Event])
_event_adapter: TypeAdapter[ClickEvent | SearchImpression] = TypeAdapter(Event)


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    errors: list[dict[str, Any]]


def _describe(error: Mapping[str, Any]) -> dict[str, Any]:
    if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
        return {"field": "type", "problem": "must be 'click' or 'impression'"}
    # The first location part is the union tag ("click"/"impression"), not a field.
    loc = [str(part) for part in error["loc"][1:]]
    return {"field": ".".join(loc) or None, "problem": error["msg"]}


def parse_events(
    items: Sequence[Any], default_user: str | None = None
) -> tuple[list[tuple[int, ClickEvent | SearchImpression]], list[Rejection]]:
    """Validate a batch item by item: good events are kept, bad ones come back with reasons.

    The whole list is validated in one call (fast: the loop runs in pydantic-core); only
    when that fails are the items validated one by one to sort the good from the bad.
    """
    prepared: list[Any] = []
    for item in items:
        if default_user is not None and isinstance(item, dict) and "user_id" not in item:
            item = {**item, "user_id": default_user}
        prepared.append(item)
    try:
        return list(enumerate(_events_adapter.validate_python(prepared))), []
    except ValidationError:
        pass
    good: list[tuple[int, ClickEvent | SearchImpression]] = []
    bad: list[Rejection] = []
    for index, item in enumerate(prepared):
        try:
            good.append((index, _event_adapter.validate_python(item)))
        except ValidationError as exc:
            bad.append(Rejection(index, [_describe(e) for e in exc.errors()]))
    return good, bad
