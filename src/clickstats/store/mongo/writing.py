"""Documents and inserts: an event's document holds its stored fields
(`clickstats.store.fields`), ``_id`` = its event id, times as naive UTC BSON datetimes, and
``received_at`` (when it was stored). Export reads the same fields back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from pymongo.errors import BulkWriteError

from clickstats.store.base import EventRow
from clickstats.store.fields import (
    ACTION_FIELDS,
    CLICK_FIELDS,
    CONVERSION_FIELDS,
    IMPRESSION_FIELDS,
    Field,
    aware,
    naive_utc,
)
from clickstats.store.mongo.connection import DUPLICATE_KEY

Doc = dict[str, Any]


def document(fields: tuple[Field, ...], event: BaseModel, received_at: datetime) -> Doc:
    """The document of an event: ``_id`` (the event id), its other stored fields, then
    ``received_at``."""
    values = {
        f.name: naive_utc(v) if f.kind == "time" and v is not None else v
        for f in fields
        for v in [f.value(event)]
    }
    return {"_id": values.pop("event_id"), **values, "received_at": received_at}


#: The stored fields of each event type.
FIELDS: dict[str, tuple[Field, ...]] = {
    "impression": IMPRESSION_FIELDS,
    "click": CLICK_FIELDS,
    "conversion": CONVERSION_FIELDS,
    "action": ACTION_FIELDS,
}


def event_row(kind: str, fields: tuple[Field, ...], doc: Doc) -> EventRow:
    """An exported event from its document: the stored fields it has (a document written
    before a field was added lacks it: the model's default stands), times as aware UTC."""
    row: EventRow = {"type": kind, "event_id": doc["_id"]}
    for f in fields:
        if f.name != "event_id" and f.name in doc:
            value = doc[f.name]
            row[f.name] = aware(value) if f.kind == "time" else value
    return row


def insert(collection: Any, docs: list[Doc]) -> set[str]:
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
