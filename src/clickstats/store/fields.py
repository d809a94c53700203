"""What every backend stores of an event, derived once from the Pydantic models, and the time
helpers the backends share.

Each stored field is one of the model's fields (all but ``type``, which the table or collection
says), with a kind a backend maps to its own types. A field added to an event model is stored, exported and imported by every backend without another edit.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Literal

from pydantic import BaseModel

from clickstats.events import ActionEvent, ClickEvent, ConversionEvent, SearchImpression

Kind = Literal["text", "integer", "number", "texts", "integers", "numbers", "time"]
#: The kind of a list of each scalar kind.
LISTS: dict[str, Kind] = {"text": "texts", "integer": "integers", "number": "numbers"}


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    #: whether the model's value may be an enum (stored as its value)
    enum: bool = False

    def value(self, event: BaseModel) -> Any:
        """The event's value of this field as stored (an enum as its value)."""
        value = getattr(event, self.name)
        return value.value if isinstance(value, enum.Enum) else value

    def values(self, events: Sequence[BaseModel]) -> list[Any]:
        """`value` of each event, in one pass: the writer's hot path, where a method call per
        event and field cost as much as the rest of turning a batch into columns."""
        values = list(map(attrgetter(self.name), events))
        if self.enum:
            return [v.value if isinstance(v, enum.Enum) else v for v in values]
        return values


def _kind(annotation: Any) -> Kind:
    """The stored kind of a field's annotation (Optional and Annotated unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _kind(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _kind(inner)
    if origin is list:
        return LISTS[_kind(typing.get_args(annotation)[0])]
    if origin is Literal or annotation is str:
        return "text"
    if isinstance(annotation, type):
        if issubclass(annotation, bool):
            raise TypeError("booleans are not stored")
        if issubclass(annotation, datetime):
            return "time"
        if issubclass(annotation, enum.Enum | str):
            return "text"
        if issubclass(annotation, int):
            return "integer"
        if issubclass(annotation, float):
            return "number"
    raise TypeError(f"no stored kind for {annotation!r}")


def _holds_enum(annotation: Any) -> bool:
    """Whether a value of the annotation (Optional and Annotated unwrapped) may be an enum."""
    if typing.get_origin(annotation) in (typing.Annotated, typing.Union, types.UnionType):
        return any(_holds_enum(a) for a in typing.get_args(annotation))
    return isinstance(annotation, type) and issubclass(annotation, enum.Enum)


def stored_fields(model: type[BaseModel]) -> tuple[Field, ...]:
    """The model's fields as stored, in the model's order, without ``type``."""
    return tuple(
        Field(name, _kind(info.annotation), _holds_enum(info.annotation))
        for name, info in model.model_fields.items()
        if name != "type"
    )


CLICK_FIELDS = stored_fields(ClickEvent)
IMPRESSION_FIELDS = stored_fields(SearchImpression)
CONVERSION_FIELDS = stored_fields(ConversionEvent)
ACTION_FIELDS = stored_fields(ActionEvent)


def naive_utc(value: datetime) -> datetime:
    """UTC wall-clock time without a zone: what DuckDB TIMESTAMP columns and BSON datetimes
    hold (PyMongo and mongomock read naive values as UTC)."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def aware(value: datetime | None) -> datetime | None:
    """A stored (naive UTC, or aware) time as an aware UTC datetime."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
